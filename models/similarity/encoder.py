"""Turns texts into contextual token vectors with a BERT-like encoder.

Tokenizing and the forward pass are separate steps on purpose: tokenizing is cheap and is where
a text is checked against the token limit (and cut, if asked), while the forward pass is the
expensive part that a server batches across requests.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.loader import DTypeSetting, LoadedModel, load_encoder_model
from models.similarity.packed_model import PackedModel, PackingUnsupportedError, layer_output
from models.similarity.packing import pack
from models.similarity.transport import unit_rows

logger = logging.getLogger(__name__)

PACKED_ROW_LENGTH = 64
"""Token slots per packed row. Short rows keep attention cheap (each slot attends to its whole
row before the mask applies); texts longer than this share wider rows of their own."""

PACKING_MIN_COSINE = 0.999
"""Packed and padded vectors of a token must agree this well for packing to be used. Both are
the same computation, so they differ only by rounding, which bf16 weights make larger than fp32 ones
(measured in bench/results/bf16.md). A model that ignores the position ids or the mask falls far below."""

_PACKING_CHECK_TEXTS = (
    "A man is playing a guitar on the street.",
    "Two dogs run.",
    "The committee postponed its decision on the new budget until next spring.",
)
_PACKING_CHECK_LONG_TEXT = " ".join(["the longer texts get wider rows of their own"] * 9)


def _round_up(length: int, multiple: int = 8) -> int:
    """``length`` rounded up to a multiple of ``multiple`` (fewer distinct tensor shapes)."""
    return -(-length // multiple) * multiple


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two ``(n, d)`` arrays."""
    return (unit_rows(a) * unit_rows(b)).sum(axis=1)


class TextError(ValueError):
    """Text number ``index`` of a call cannot be encoded; ``problem`` says why, without the index."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(f"text {index} {problem}")
        self.index = index
        self.problem = problem


class TextTooLongError(TextError):
    """Text number ``index`` has more tokens than the limit and truncation was not asked for."""

    def __init__(self, index: int, token_count: int, limit: int) -> None:
        super().__init__(index, f"has {token_count} tokens, more than the limit of {limit} (set truncate to cut it)")
        self.token_count = token_count
        self.limit = limit


class EmptyTextError(TextError):
    """Text number ``index`` has no token but [CLS]/[SEP]-like ones once the tokenizer has normalised
    it (white space, control and zero-width characters, a lone byte-order mark): nothing to compare."""

    def __init__(self, index: int) -> None:
        super().__init__(index, "has no tokens once normalised (only white space, control or zero-width characters)")


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


@dataclass(frozen=True)
class EncoderSpec:
    """How to build a :class:`TokenEncoder`, as plain values: a server builds its encoder from one,
    and a bulk job sends one to each worker process, which loads the model once."""

    model: str = "embedded"
    dtype: DTypeSetting = "fp32"
    layer: int = -1
    max_tokens: int = 256
    batch_tokens: int = 4096
    pack_texts: bool = True

    def load(self) -> TokenEncoder:
        """Loads the model and wraps it (errors as in :func:`models.loader.load_encoder_model`)."""
        loaded = load_encoder_model(self.model, self.dtype)
        return TokenEncoder(loaded, self.layer, self.max_tokens, self.batch_tokens, self.pack_texts)


class TokenEncoder:
    """Token vectors from one hidden layer of an encoder, with padding removed.

    ``layer`` indexes the hidden states as transformers returns them: 0 is the embedding
    output, -1 (the default) the last layer. ``max_tokens`` counts special tokens too.
    ``batch_tokens`` is how many token slots one forward pass holds.

    With ``pack_texts`` (the default), several texts share each row of a forward pass
    (:mod:`models.similarity.packing`), so almost no compute goes to padding, and the forward pass is
    traced (:mod:`models.similarity.packed_model`), so it runs without Python's global lock and can run in
    several threads at once. That relies on the model taking ``position_ids`` and a 4-D
    attention mask as BERT does; it is checked once here on a few sentences, and a model that
    gives other vectors packed than padded gets padded batches of length-sorted texts instead
    (``packing`` says which is in use). ``embed`` may be called from several threads at once.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        layer: int = -1,
        max_tokens: int = 256,
        batch_tokens: int = 4096,
        pack_texts: bool = True,
    ) -> None:
        layers = getattr(loaded.model.config, "num_hidden_layers", None)
        if layers is not None and not -(layers + 1) <= layer <= layers:
            raise ValueError(f"layer {layer} is out of range for a model with {layers} layers")
        positions = getattr(loaded.model.config, "max_position_embeddings", None)
        if positions is not None and max_tokens > positions:
            raise ValueError(f"max_tokens {max_tokens} exceeds the model's {positions} positions")
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self._tokenizer_lock = threading.Lock()
        self.layer = layer
        self.max_tokens = max_tokens
        self.batch_tokens = batch_tokens
        self._packed_model = self._packed_model_if_exact() if pack_texts else None

    @property
    def packing(self) -> bool:
        """Whether texts are packed into shared rows (else padded batches are used)."""
        return self._packed_model is not None

    @property
    def name(self) -> str:
        return self.loaded.name

    @functools.cached_property
    def identity(self) -> str:
        """What shapes :meth:`embed_sentences`' vectors: the model (its name and a digest of its
        weights), the layer and the pooling. An index's name vectors record it, and a linker refuses
        vectors from another."""
        return f"{self.name} (weights {self.loaded.weights_digest()}), layer {self.layer}, mean of token vectors"

    def tokenize(self, texts: Sequence[str], truncate: bool = False) -> list[TokenizedText]:
        """Tokenizes ``texts``; raises :class:`TextTooLongError` for the first text over the limit
        unless ``truncate`` is set, in which case such texts are cut to ``max_tokens``, and
        :class:`EmptyTextError` for the first text with nothing but special tokens."""
        full = self._tokenize(texts, truncation=False)
        for index, special in enumerate(full["special_tokens_mask"]):
            if all(special):
                raise EmptyTextError(index)
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
        """One tokenizer call. Calls are serialised: a fast tokenizer keeps its truncation setting in
        shared state, which transformers switches per call, so a cutting call in one thread could
        otherwise cut (or break) another thread's call."""
        with self._tokenizer_lock:
            return self._call_tokenizer(texts, truncation)

    def _call_tokenizer(self, texts: Sequence[str], truncation: bool) -> dict:
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
        """Runs the encoder over tokenized texts, ``batch_tokens`` slots per forward pass; keeps input order."""
        if self._packed_model is not None:
            vectors = self._packed_vectors(texts, self._packed_model)
        else:
            vectors = self._padded_vectors(texts)
        return [
            EncodedText(
                vectors=row,
                tokens=text.tokens,
                offsets=text.offsets,
                special=np.asarray(text.special, dtype=bool),
                truncated=text.truncated,
            )
            for text, row in zip(texts, vectors, strict=True)
        ]

    def _packed_vectors(self, texts: Sequence[TokenizedText], model: PackedModel) -> list[np.ndarray]:
        """Texts that fit :data:`PACKED_ROW_LENGTH` share rows of that length; longer ones share
        rows as wide as the longest of them, so a few long texts do not widen every row."""
        vectors: list[np.ndarray] = [np.empty(0)] * len(texts)
        fits = [len(text) <= PACKED_ROW_LENGTH for text in texts]
        for group in ([i for i, f in enumerate(fits) if f], [i for i, f in enumerate(fits) if not f]):
            if group:
                width = max(PACKED_ROW_LENGTH, _round_up(max(len(texts[i]) for i in group)))
                rows = self._forward_packed([texts[i] for i in group], width, model)
                for i, row in zip(group, rows, strict=True):
                    vectors[i] = row
        return vectors

    def _forward_packed(self, texts: Sequence[TokenizedText], row_length: int, model: PackedModel) -> list[np.ndarray]:
        """Each text's vectors, the texts packed into rows of ``row_length`` slots and run
        ``batch_tokens`` slots per forward pass."""
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        packed = pack([text.ids for text in texts], row_length, pad_id)
        rows_per_pass = max(1, self.batch_tokens // row_length)
        hidden = [model(packed, start, start + rows_per_pass) for start in range(0, packed.rows, rows_per_pass)]
        return packed.split(np.concatenate(hidden))

    def _padded_vectors(self, texts: Sequence[TokenizedText]) -> list[np.ndarray]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: list[np.ndarray] = [np.empty(0)] * len(texts)
        chunk: list[int] = []
        for i in order:  # shortest first, so each chunk's longest text is its last
            if chunk and (len(chunk) + 1) * _round_up(len(texts[i])) > self.batch_tokens:
                self._fill_padded(texts, chunk, vectors)
                chunk = []
            chunk.append(i)
        if chunk:
            self._fill_padded(texts, chunk, vectors)
        return vectors

    def _fill_padded(self, texts: Sequence[TokenizedText], chunk: list[int], vectors: list[np.ndarray]) -> None:
        # Lengths padded to a multiple of 8: fewer distinct shapes, so the CPU kernels built for
        # one shape are reused instead of rebuilt (a first-seen bf16 shape is slower: bench/results/bf16.md).
        padded = self.tokenizer.pad(
            {"input_ids": [list(texts[i].ids) for i in chunk]}, pad_to_multiple_of=8, return_tensors="pt"
        )
        hidden = self._run_model(**padded)
        for row, i in enumerate(chunk):
            vectors[i] = hidden[row, : len(texts[i])]

    def _run_model(self, **inputs: torch.Tensor) -> np.ndarray:
        """The chosen layer's hidden states, ``(rows, row_length, d)`` float32."""
        with torch.inference_mode():
            return layer_output(self.loaded.model, self.layer, **inputs).float().numpy()

    def _packed_model_if_exact(self) -> PackedModel | None:
        """The traced packed forward pass, if it gives this model's texts the vectors they get in
        padded batches; None (and a warning saying why) otherwise. Checked on rows of two widths,
        several rows each, none of the shape the trace was made on."""
        texts = self.tokenize([*_PACKING_CHECK_TEXTS * 3, _PACKING_CHECK_LONG_TEXT], truncate=True)
        example = pack([text.ids for text in texts[:2]], 32, pad_id=0)
        try:
            packed_model = PackedModel.trace(self.loaded.model, self.layer, example)
            packed = self._packed_vectors(texts, packed_model)
        except (PackingUnsupportedError, RuntimeError) as error:
            logger.warning("packing texts is off for %s: the model refused packed inputs (%s)", self.name, error)
            return None
        padded = self._padded_vectors(texts)
        if any(_cosines(a, b).min() < PACKING_MIN_COSINE for a, b in zip(padded, packed, strict=True)):
            logger.warning("packing texts is off for %s: packed and padded token vectors differ", self.name)
            return None
        return packed_model

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
