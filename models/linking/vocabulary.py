"""Grows a linker's vocabulary to the characters of a knowledge base that its tokenizer cannot spell.

The embedded MiniLM's English WordPiece vocabulary holds a few thousand CJK characters; every other
character becomes ``[UNK]`` (WordPiece turns a whole word into ``[UNK]`` when one of its characters
is missing), so the model can neither read nor write a name made of them: on KgCLUE, 61 % of the
characters of the questions, subjects and predicates. :func:`extend_vocabulary` adds each such character as a
token of its own, grows the model's embeddings and output layer to match, and reports the share of
``[UNK]`` characters before and after.

Characters are added as ordinary (not special) added tokens, in the form the tokenizer's normalizer
gives them (uncased BERT lower-cases and strips accents before it matches added tokens). The fast
tokenizer and its Rust backend (:func:`models.linking.seq2seq.names_backend`, which the index
builder uses) then split them out of any text alike, and the tokenizer saved with the model carries
them. BERT's pre-tokenizer already cuts CJK text into single characters, so for CJK text an added
character is exactly one token.

Decoding is lossy for such tokens (BERT's decoder joins tokens with spaces: ``刘 晓 华``), which is
why nothing here decodes: a generated name is looked up by its token ids in the index's trie and
store, which give back the knowledge base's own string.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from models.linking.seq2seq import LINKING_TOKENS, OutputVocabulary, Seq2SeqModel, resize_embeddings
from models.linking.training_data import Example

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VocabularyReport:
    """What :func:`extend_vocabulary` did: tokens added, and how many of the texts' characters (not
    counting white space) were inside ``[UNK]`` tokens before and after."""

    added: int
    characters: int
    unknown_before: int
    unknown_after: int
    sample: tuple[str, ...] = ()

    @property
    def share_before(self) -> float:
        return self.unknown_before / max(self.characters, 1)

    @property
    def share_after(self) -> float:
        return self.unknown_after / max(self.characters, 1)

    def to_json(self) -> dict[str, Any]:
        shares = {"unk_share_before": self.share_before, "unk_share_after": self.share_after}
        return {**asdict(self), "sample": list(self.sample), **shares}

    def __str__(self) -> str:
        shown = "".join(self.sample)
        return (
            f"added {self.added} token(s){f' ({shown}...)' if shown else ''}; [UNK] share of the knowledge "
            f"base's characters {100 * self.share_before:.1f}% -> {100 * self.share_after:.1f}%"
        )


def example_texts(examples: Iterable[Example]) -> list[str]:
    """Every distinct text the model reads or writes in training: inputs (without their task tags
    and mention markers), names and predicates."""
    texts: dict[str, None] = {}
    for example in examples:
        texts[_without_linking_tokens(example.source)] = None
        texts.update(dict.fromkeys(example.target_texts()))
    return list(texts)


def _without_linking_tokens(source: str) -> str:
    for token in LINKING_TOKENS:
        source = source.replace(token, "")
    return " ".join(source.split())


def _normalize(tokenizer: Any, text: str) -> str:
    """``text`` as the tokenizer's normalizer sees it (lower-cased, accents stripped, ... for uncased BERT)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = backend.normalizer if backend is not None else None
    return normalizer.normalize_str(text) if normalizer is not None else text


def unknown_spans(tokenizer: Any, texts: Sequence[str]) -> tuple[Counter[str], int]:
    """The pieces of ``texts`` that became ``[UNK]`` (with their counts), and how many non-space
    characters the texts hold. Needs a tokenizer that :func:`can_measure`."""
    unknown: Counter[str] = Counter()
    encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"], strict=True):
        unknown.update(
            text[start:end] for token, (start, end) in zip(ids, offsets, strict=True) if token == tokenizer.unk_token_id
        )
    return unknown, sum(len(text) - sum(map(str.isspace, text)) for text in texts)


def _non_space(spans: Counter[str]) -> int:
    return sum(count * sum(not char.isspace() for char in span) for span, count in spans.items())


def missing_characters(tokenizer: Any, spans: Iterable[str]) -> list[str]:
    """The characters of ``[UNK]`` pieces that the tokenizer cannot spell even alone, normalized as
    its normalizer does, in order of first appearance. A character that it spells alone is left out:
    adding it would cut it out of every word that holds it."""
    candidates = dict.fromkeys(char for span in spans for char in _normalize(tokenizer, span) if not char.isspace())
    if not candidates:
        return []
    alone = tokenizer(list(candidates), add_special_tokens=False)["input_ids"]
    return [char for char, ids in zip(candidates, alone, strict=True) if tokenizer.unk_token_id in ids]


def grow_embeddings(model: Any, first_new: int, size: int, seed: int = 0) -> None:
    """Gives ``model`` rows for token ids up to ``size`` in its input embeddings (the encoder's and the
    decoder's) and its output layer, and draws the rows of ids ``first_new`` and up from a normal
    distribution with the mean and covariance of the rows before them (each output bias gets their
    mean bias).

    A new character has no pieces to start from (it was ``[UNK]``); a draw looks like a typical row
    of its matrix and, unlike a copy of the mean, tells the new characters apart from the first step.
    """
    if model.get_input_embeddings().weight.shape[0] < size:
        resize_embeddings(model, size)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for matrix in _vocabulary_matrices(model):
            matrix[first_new:size] = _draws(matrix[:first_new], size - first_new, generator)
        for bias in _output_biases(model):
            bias[first_new:size] = bias[:first_new].mean()


def _draws(rows: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` draws from the normal distribution with the mean and covariance of ``rows``."""
    data = rows.detach().to(torch.float64)
    mean = data.mean(dim=0)
    centred = data - mean
    covariance = centred.T @ centred / max(len(data) - 1, 1)
    jitter = 1e-6 * covariance.diagonal().mean().clamp_min(1e-12)
    factor = torch.linalg.cholesky(covariance + jitter * torch.eye(len(mean), dtype=torch.float64))
    noise = torch.randn(count, len(mean), generator=generator, dtype=torch.float64)
    return (mean + noise @ factor.T).to(rows.dtype)


def _token_modules(model: Any) -> list[Any]:
    """The modules with one row (or output) per token: input embeddings and output layer, of the
    model and, for an ``EncoderDecoderModel``, of each half; the encoder's only when the decoder has
    an :class:`~models.linking.seq2seq.OutputVocabulary` (its rows are tokens of its own choosing)."""
    if OutputVocabulary.of(getattr(model, "config", None)) is not None:
        parts = [model.encoder]
    else:
        parts = [model, *(getattr(model, half, None) for half in ("encoder", "decoder"))]
    modules = []
    for part in parts:
        for getter in ("get_input_embeddings", "get_output_embeddings"):
            module = getattr(part, getter)() if hasattr(part, getter) else None
            if module is not None:
                modules.append(module)
    return modules


def _distinct(tensors: Iterable[torch.Tensor | None]) -> list[torch.Tensor]:
    """The tensors that are not None, each storage once (tied weights are one matrix)."""
    found: dict[int, torch.Tensor] = {}
    for tensor in tensors:
        if tensor is not None:
            found.setdefault(tensor.data_ptr(), tensor)
    return list(found.values())


def _vocabulary_matrices(model: Any) -> list[torch.Tensor]:
    """The distinct weight matrices with one row per token: the input embeddings (the encoder's and
    the decoder's, when they are separate) and the output layer, when it is not tied to an input."""
    return _distinct(getattr(module, "weight", None) for module in _token_modules(model))


def _output_biases(model: Any) -> list[torch.Tensor]:
    """The output layer's bias (one entry per token), if it has one."""
    return _distinct(getattr(module, "bias", None) for module in _token_modules(model))


def can_measure(tokenizer: Any) -> bool:
    """Whether the tokenizer tells where its ``[UNK]`` tokens come from: a fast tokenizer (character
    offsets) with an ``[UNK]`` token. (A byte-level tokenizer spells everything: nothing to add.)"""
    return bool(getattr(tokenizer, "is_fast", False)) and tokenizer.unk_token_id is not None


def vocabulary_coverage(tokenizer: Any, texts: Sequence[str]) -> VocabularyReport | None:
    """How many of the texts' characters are ``[UNK]``, with nothing added; None if the tokenizer
    cannot tell (:func:`can_measure`)."""
    if not can_measure(tokenizer):
        return None
    spans, characters = unknown_spans(tokenizer, list(dict.fromkeys(texts)))
    unknown = _non_space(spans)
    return VocabularyReport(0, characters, unknown, unknown)


def extend_vocabulary(model: Seq2SeqModel, texts: Sequence[str], seed: int = 0) -> VocabularyReport | None:
    """Adds to ``model``'s tokenizer every character of ``texts`` it cannot spell, and grows the model
    to match (:func:`grow_embeddings`); returns the counts before and after, or None (and changes
    nothing) if the tokenizer cannot tell which characters it misses (:func:`can_measure`)."""
    tokenizer = model.tokenizer
    if not can_measure(tokenizer):
        logger.warning("vocabulary: %s cannot tell which characters it misses; nothing added", model.name)
        return None
    texts = list(dict.fromkeys(texts))
    spans, characters = unknown_spans(tokenizer, texts)
    missing = missing_characters(tokenizer, spans)
    if missing:
        first_new = len(tokenizer)
        tokenizer.add_tokens(missing)
        grow_embeddings(model.model, first_new, len(tokenizer), seed)
    after = _non_space(unknown_spans(tokenizer, texts)[0]) if missing else _non_space(spans)
    report = VocabularyReport(len(missing), characters, _non_space(spans), after, tuple(missing[:10]))
    logger.info("vocabulary: %s", report)
    return report
