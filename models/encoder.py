"""Turns texts into contextual token vectors with a BERT-like encoder.

Tokenizing and the forward pass are separate steps on purpose: tokenizing is cheap and is where
a text is checked against the token limit (and cut, if asked), while the forward pass is the
expensive part that a server batches across requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.loader import LoadedModel


class TextTooLongError(ValueError):
    """Text number ``index`` has more tokens than the limit and truncation was not asked for."""

    def __init__(self, index: int, token_count: int, limit: int) -> None:
        super().__init__(f"text {index} has {token_count} tokens, more than the limit of {limit}")
        self.index = index
        self.token_count = token_count
        self.limit = limit


@dataclass(frozen=True)
class TokenizedText:
    """One text as the model will read it, special tokens included.

    ``offsets[i]`` is the character span of token ``i`` in the text (``(0, 0)`` for special
    tokens); ``truncated`` says whether the text was cut to the token limit.
    """

    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    special: tuple[bool, ...]
    truncated: bool

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class EncodedText:
    """Token vectors of one text: ``vectors`` is ``(n, d)`` float32, one row per token."""

    vectors: np.ndarray
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    special: np.ndarray
    truncated: bool

    def __len__(self) -> int:
        return len(self.tokens)

    def without_special_tokens(self) -> EncodedText:
        """The same text without [CLS]/[SEP]-like tokens (kept whole if nothing else is left)."""
        keep = ~self.special
        if not keep.any() or keep.all():
            return self
        positions = np.flatnonzero(keep)
        return EncodedText(
            vectors=self.vectors[keep],
            tokens=tuple(self.tokens[i] for i in positions),
            offsets=tuple(self.offsets[i] for i in positions),
            special=self.special[keep],
            truncated=self.truncated,
        )


class TokenEncoder:
    """Token vectors from one hidden layer of an encoder, with padding removed.

    ``layer`` indexes the hidden states as transformers returns them: 0 is the embedding
    output, -1 (the default) the last layer. ``max_tokens`` counts special tokens too.
    ``batch_size`` is how many texts go through one forward pass; texts are sorted by length
    first so that little compute is spent on padding.
    """

    def __init__(self, loaded: LoadedModel, layer: int = -1, max_tokens: int = 256, batch_size: int = 32) -> None:
        layers = getattr(loaded.model.config, "num_hidden_layers", None)
        if layers is not None and not -(layers + 1) <= layer <= layers:
            raise ValueError(f"layer {layer} is out of range for a model with {layers} layers")
        positions = getattr(loaded.model.config, "max_position_embeddings", None)
        if positions is not None and max_tokens > positions:
            raise ValueError(f"max_tokens {max_tokens} exceeds the model's {positions} positions")
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.layer = layer
        self.max_tokens = max_tokens
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        return self.loaded.name

    def tokenize(self, texts: Sequence[str], truncate: bool = False) -> list[TokenizedText]:
        """Tokenizes ``texts``; raises :class:`TextTooLongError` for the first text over the limit
        unless ``truncate`` is set, in which case such texts are cut to ``max_tokens``."""
        full = self._tokenize(texts, truncation=False)
        too_long = [i for i, ids in enumerate(full["input_ids"]) if len(ids) > self.max_tokens]
        if too_long and not truncate:
            first = too_long[0]
            raise TextTooLongError(first, len(full["input_ids"][first]), self.max_tokens)
        cut = self._tokenize([texts[i] for i in too_long], truncation=True) if too_long else None
        result = [self._pack(full, i, truncated=False) for i in range(len(texts))]
        for row, i in enumerate(too_long):
            result[i] = self._pack(cut, row, truncated=True)
        return result

    def _tokenize(self, texts: Sequence[str], truncation: bool) -> dict:
        return self.tokenizer(
            list(texts),
            truncation=truncation,
            max_length=self.max_tokens if truncation else None,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )

    def _pack(self, batch: dict, row: int, truncated: bool) -> TokenizedText:
        ids = batch["input_ids"][row]
        return TokenizedText(
            ids=tuple(ids),
            tokens=tuple(self.tokenizer.convert_ids_to_tokens(ids)),
            offsets=tuple((int(s), int(e)) for s, e in batch["offset_mapping"][row]),
            special=tuple(bool(flag) for flag in batch["special_tokens_mask"][row]),
            truncated=truncated,
        )

    def embed(self, texts: Sequence[TokenizedText]) -> list[EncodedText]:
        """Runs the encoder over tokenized texts, in length-sorted batches; keeps input order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        encoded: list[EncodedText | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, vectors in zip(chunk, self._forward([texts[i] for i in chunk]), strict=True):
                text = texts[i]
                encoded[i] = EncodedText(
                    vectors=vectors,
                    tokens=text.tokens,
                    offsets=text.offsets,
                    special=np.asarray(text.special, dtype=bool),
                    truncated=text.truncated,
                )
        return encoded  # type: ignore[return-value]

    def _forward(self, texts: Sequence[TokenizedText]) -> list[np.ndarray]:
        # Lengths padded to a multiple of 8: fewer distinct shapes, so the CPU kernels built for
        # one shape are reused instead of rebuilt (bench/bf16.py: a first-seen bf16 shape is 1.4-3x slower).
        padded = self.tokenizer.pad(
            {"input_ids": [list(t.ids) for t in texts]}, pad_to_multiple_of=8, return_tensors="pt"
        )
        want_all_layers = self.layer != -1
        with torch.inference_mode():
            output = self.loaded.model(**padded, output_hidden_states=want_all_layers)
        hidden = output.hidden_states[self.layer] if want_all_layers else output.last_hidden_state
        hidden = hidden.float().numpy()
        return [hidden[row, : len(text)] for row, text in enumerate(texts)]

    def encode(self, texts: Sequence[str], truncate: bool = False) -> list[EncodedText]:
        """Tokenizes and embeds ``texts`` in one call (see :meth:`tokenize` and :meth:`embed`)."""
        return self.embed(self.tokenize(texts, truncate=truncate))

    def embed_sentences(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length vector per text: the mean of its token vectors (sentence-transformers' pooling),
        ``(len(texts), d)`` float32. Texts over the token limit are cut."""
        vectors = np.stack([text.vectors.mean(axis=0) for text in self.encode(texts, truncate=True)])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def warm_up(self) -> None:
        """Runs one small forward pass so that the first request does not pay for lazy setup."""
        self.encode(["warm up the encoder", "a second sentence of another length"])
