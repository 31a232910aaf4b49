"""The seq2seq model that writes entity names and (subject, predicate) pairs, and its tokenizer.

Any local Hugging Face seq2seq directory (T5, BART, ``EncoderDecoderModel``) or hub name
loads as is. The embedded default is a bert2bert ``EncoderDecoderModel`` warm-started from
the embedded all-MiniLM-L6-v2: both halves start from its weights, the decoder's cross-attention
starts untrained, so it must be fine-tuned (``simlink train``) before it links anything. A local
directory holding an encoder only (a BERT-style model whose config is not ``is_encoder_decoder``,
for example a Chinese BERT) is warm-started the same way, with its own tokenizer.

The tokenizer gains special tokens for the linking input and output (mention markers, task
tags, the subject/predicate separator); an index records this tokenizer's identity.

A bert2bert linker's decoder may write only the tokens of its knowledge base's names
(:func:`restrict_output_vocabulary`, ``simlink train``'s default): its output layer is then a
few thousand rows instead of the tokenizer's 30k, which a generation step reads in full. The
tokenizer, the index and the search's names keep the tokenizer's ids; only the decoder's own
inputs and outputs are in its rows (:class:`OutputVocabulary`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from index.manifest import SpecialTokens, TokenizerIdentity
from models.linking.query import MENTION_END, MENTION_START, Task
from models.loader import (
    DType,
    LoadedModel,
    ModelSource,
    in_eval_mode,
    load_chosen,
    load_pretrained,
    load_tokenizer,
    loading,
    resolve_model_source,
)

logger = logging.getLogger(__name__)

PREDICATE_SEPARATOR = "[PRED]"
TASK_TAGS: dict[str, str] = {"entity": "[ENTITY]", "kbqa": "[KBQA]"}
LINKING_TOKENS = (MENTION_START, MENTION_END, PREDICATE_SEPARATOR, *TASK_TAGS.values())
EMBEDDED_NAME = "bert2bert-all-MiniLM-L6-v2"
OUTPUT_TOKENS_KEY = "simlink_output_token_ids"
"""The model config's record of the tokenizer ids its decoder writes (absent: every token)."""


class UnwritableNamesError(ValueError):
    """Names that need a token the linker's decoder does not write (see :class:`OutputVocabulary`)."""


@dataclass(frozen=True, eq=False)
class OutputVocabulary:
    """The tokens a linker's decoder writes when training restricted them: row ``r`` of the decoder's
    embeddings and output layer is tokenizer id ``token_ids[r]`` (ascending)."""

    token_ids: np.ndarray
    _rows: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rows = np.full(int(self.token_ids.max()) + 1 if len(self.token_ids) else 0, -1, dtype=np.int64)
        rows[self.token_ids] = np.arange(len(self.token_ids))
        object.__setattr__(self, "_rows", rows)

    @classmethod
    def recorded(cls, ids: Sequence[int] | None) -> OutputVocabulary | None:
        """The vocabulary of the ids a config records (:data:`OUTPUT_TOKENS_KEY`), or None: every token."""
        return None if ids is None else cls(np.asarray(sorted(set(ids)), dtype=np.int64))

    @classmethod
    def of(cls, config: Any) -> OutputVocabulary | None:
        """The vocabulary a loaded model's config records, or None."""
        return cls.recorded(getattr(config, OUTPUT_TOKENS_KEY, None) if config is not None else None)

    def __len__(self) -> int:
        return len(self.token_ids)

    def writes(self, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
        """Whether the decoder writes each tokenizer id (a boolean array)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        inside = (tokens >= 0) & (tokens < len(self._rows))
        found = np.zeros(tokens.shape, dtype=bool)
        found[inside] = self._rows[tokens[inside]] >= 0
        return found

    def rows(self, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
        """The decoder rows of tokenizer ids it writes; ``ValueError`` for any other id."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.size and not self.writes(tokens).all():
            missing = sorted(set(tokens[~self.writes(tokens)].tolist()))[:5]
            raise ValueError(f"the decoder does not write token id(s) {missing}")
        return self._rows[tokens]

    def fingerprint(self) -> str:
        """The written ids as text, for an index's tokenizer identity."""
        return json.dumps(self.token_ids.tolist())


def add_linking_tokens(tokenizer: Any) -> int:
    """Adds the linking special tokens the tokenizer lacks; returns how many were added."""
    missing = [token for token in LINKING_TOKENS if token not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    return len(missing)


def tokenizer_identity(tokenizer: Any, name: str, output: OutputVocabulary | None = None) -> TokenizerIdentity:
    """The identity an index records for ``tokenizer`` (see :class:`index.manifest.TokenizerIdentity`):
    its vocabulary and, for fast tokenizers, its normalizer and pre-tokenizer (a cased and an uncased
    tokenizer may share one vocabulary), and the tokens the decoder writes if training restricted them
    (an index checked against one such set may hold names another cannot write)."""
    rules = ""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        rules = json.dumps([spec.get("normalizer"), spec.get("pre_tokenizer")], sort_keys=True)
    if output is None:
        return TokenizerIdentity.from_vocab(name, tokenizer.get_vocab(), rules)
    written = TokenizerIdentity.from_vocab(name, tokenizer.get_vocab(), rules + output.fingerprint())
    return TokenizerIdentity(written.name, written.vocab_sha256, written.vocab_size, len(output))


def format_input(text: str, task: Task, mention: tuple[int, int] | None = None) -> str:
    """The model's input: a task tag, then the text with the mention (if any) between markers."""
    if mention is not None:
        start, end = mention
        text = f"{text[:start]}{MENTION_START} {text[start:end]} {MENTION_END}{text[end:]}"
    return f"{TASK_TAGS[task]} {text}"


def encode_names(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text without special tokens (how names are stored in a trie); a literal
    ``[SEP]`` inside a name is spelled out, not read as the special token."""
    return tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]


_PROBE_NAMES = ("Paris", "Marie Curie", "a [SEP] b [PRED]", "  Ünïcödé\tnamé 東京 ", "x" * 300)


def names_backend(tokenizer: Any) -> Any | None:
    """A copy of a fast tokenizer's Rust backend that encodes names as :func:`encode_names` does (no
    special tokens added, special-token text spelled out, no padding or truncation), or None for a
    slow tokenizer or one whose copy disagrees on a few probe names.

    Calling the backend directly skips transformers' per-call set-up and conversions, which for
    short names cost as much as the tokenizing itself (an index build encodes millions).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_padding()
    copy.no_truncation()
    copy.encode_special_tokens = True
    probes = [encoding.ids for encoding in copy.encode_batch(list(_PROBE_NAMES), add_special_tokens=False)]
    return copy if probes == encode_names(tokenizer, _PROBE_NAMES) else None


def linking_special_tokens(
    tokenizer: Any, config: Any | None = None, output: OutputVocabulary | None = None
) -> SpecialTokens:
    """End-of-sequence and separator tokenizer ids; the end id is the model's EOS (BERT's [SEP]),
    which a config records as a decoder row when the decoder has an ``output`` vocabulary."""
    end = getattr(config, "eos_token_id", None) if config is not None else None
    if end is not None and output is not None:
        end = output.token_ids[end]
    if end is None:
        end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    return SpecialTokens(end=int(end), separator=int(tokenizer.convert_tokens_to_ids(PREDICATE_SEPARATOR)))


@dataclass
class LinkingTokenizer:
    """The tokenizer side of a linker: what ``build-index`` needs (no weights), and what an index
    records. ``config`` is the model's, when one is loaded: its EOS id ends every name. ``output``
    is the decoder's :class:`OutputVocabulary`, None when it writes every token."""

    tokenizer: Any
    name: str
    config: Any | None = None
    output: OutputVocabulary | None = None
    _backend: tuple[int, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def identity(self) -> TokenizerIdentity:
        return tokenizer_identity(self.tokenizer, self.name, self.output)

    @property
    def special_tokens(self) -> SpecialTokens:
        return linking_special_tokens(self.tokenizer, self.config, self.output)

    def encode_names(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each name, without special tokens (see :func:`encode_names`).

        Raises :class:`UnwritableNamesError` naming the first name that needs a token the decoder
        does not write, when training restricted them (an index must not hold names its linker
        cannot write)."""
        backend = self._names_backend()
        if backend is None:
            encoded = encode_names(self.tokenizer, texts)
        else:
            encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
            encoded = [encoding.ids for encoding in encode(list(texts), add_special_tokens=False)]
        if self.output is not None:
            self._check_writable(texts, encoded)
        return encoded

    def _check_writable(self, texts: Sequence[str], encoded: list[list[int]]) -> None:
        output = self.output
        assert output is not None
        flat = np.fromiter((token for ids in encoded for token in ids), dtype=np.int64)
        if output.writes(flat).all():
            return
        bad = [text for text, ids in zip(texts, encoded, strict=True) if not output.writes(ids).all()]
        first = encoded[list(texts).index(bad[0])]
        pieces = self.tokenizer.convert_ids_to_tokens([t for t in first if not output.writes([t])[0]])
        raise UnwritableNamesError(
            f"{len(bad)} name(s) need tokens the linker {self.name} cannot write, first {bad[0]!r} "
            f"(tokens {', '.join(map(repr, pieces))}): its decoder writes only the {len(output):,} tokens of "
            "the names it was trained on. Train it on this knowledge base (simlink train --entities ...), "
            "or with --output-vocabulary full"
        )

    def _names_backend(self) -> Any | None:
        """:func:`names_backend` of the tokenizer, made again if tokens were added since."""
        size = len(self.tokenizer)
        if self._backend is None or self._backend[0] != size:
            self._backend = (size, names_backend(self.tokenizer))
        return self._backend[1]


@dataclass
class Seq2SeqModel:
    """A loaded seq2seq model and its :class:`LinkingTokenizer` (``tokens``: identity, special ids,
    name encoding)."""

    loaded: LoadedModel
    tokens: LinkingTokenizer

    @property
    def name(self) -> str:
        return self.tokens.name

    @property
    def model(self) -> Any:
        return self.loaded.model

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    @property
    def output(self) -> OutputVocabulary | None:
        """The decoder's :class:`OutputVocabulary`; None when it writes every token."""
        return self.tokens.output

    def decoder_ids(self, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
        """Tokenizer ids as the decoder's own ids (its rows, under an :class:`OutputVocabulary`)."""
        return np.asarray(tokens, dtype=np.int64) if self.output is None else self.output.rows(tokens)

    def tokenizer_ids(self, decoder_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The decoder's own ids as tokenizer ids (the inverse of :meth:`decoder_ids`)."""
        ids = np.asarray(decoder_ids, dtype=np.int64)
        return ids if self.output is None else self.output.token_ids[ids]

    @property
    def decoder_prefix(self) -> list[int]:
        """The decoder's own ids every generated sequence starts with before the name: its start
        token, and a forced BOS (BART), whose step ``generate`` scores 0."""
        config, generation_config = self.model.config, self.model.generation_config
        start = generation_config.decoder_start_token_id
        if start is None:
            start = getattr(config, "decoder_start_token_id", None)
        if start is None:
            raise ValueError(f"model {self.name} has no decoder start token id")
        forced = generation_config.forced_bos_token_id
        return [int(start)] if forced is None else [int(start), int(forced)]

    @property
    def decoder_prefix_length(self) -> int:
        return len(self.decoder_prefix)

    def describe(self) -> dict[str, Any]:
        """What ``/info`` shows: the loaded model, its name, and how many tokens its decoder writes
        (None: every token)."""
        output_tokens = None if self.output is None else len(self.output)
        return {**self.loaded.describe(), "name": self.name, "output_tokens": output_tokens}


def _source_name(source: ModelSource) -> str:
    return EMBEDDED_NAME if source.kind == "embedded" else source.location


def load_linking_tokenizer(model: str | None) -> LinkingTokenizer:
    """The tokenizer of the seq2seq ``model`` (same resolution as :func:`load_seq2seq_model`), with
    the tokens its decoder writes when a local model's config records them."""
    source = resolve_model_source(model)
    tokenizer = load_tokenizer(source)
    add_linking_tokens(tokenizer)
    return LinkingTokenizer(tokenizer, _source_name(source), output=_recorded_output(source))


def _recorded_output(source: ModelSource) -> OutputVocabulary | None:
    """The :class:`OutputVocabulary` a local model's ``config.json`` records (no weights loaded)."""
    if source.kind != "local":
        return None
    with loading(source.location, "read the config"):
        raw = json.loads((Path(source.location) / "config.json").read_text(encoding="utf-8"))
    return OutputVocabulary.recorded(raw.get(OUTPUT_TOKENS_KEY))


def is_encoder_only(source: ModelSource) -> bool:
    """Whether the local directory ``source`` holds an encoder (its config is not ``is_encoder_decoder``),
    which :func:`load_seq2seq_model` then warm-starts as both halves of a bert2bert model."""
    from transformers import AutoConfig

    if source.kind != "local":
        return False
    with loading(source.location, "read the config"):
        return not AutoConfig.from_pretrained(source.location).is_encoder_decoder


def is_warm_start(model: str | None) -> bool:
    """Whether :func:`load_seq2seq_model` warm-starts ``model`` as a new bert2bert (the embedded
    MiniLM, or a local encoder-only directory) rather than loading a seq2seq model as it is."""
    source = resolve_model_source(model)
    return source.kind == "embedded" or is_encoder_only(source)


def _warm_started_bert2bert(source: ModelSource, dtype: DType) -> LoadedModel:
    from transformers import AutoTokenizer, EncoderDecoderModel

    with loading(source.location, "warm-start bert2bert", expected_warnings=True):  # new cross-attention
        tokenizer = AutoTokenizer.from_pretrained(source.location)
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(source.location, source.location)
    model.config.decoder_start_token_id = tokenizer.cls_token_id
    model.config.eos_token_id = tokenizer.sep_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    for key in ("decoder_start_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, key, getattr(model.config, key))
    return LoadedModel(model=in_eval_mode(model, dtype), tokenizer=tokenizer, source=source, dtype=dtype)


def resize_embeddings(model: Any, size: int) -> None:
    """Gives ``model`` ``size`` token rows in its input embeddings and output layer (both halves of
    an ``EncoderDecoderModel``, but not a decoder with an :class:`OutputVocabulary`, whose rows
    :func:`restrict_output_vocabulary` chooses); new rows get the model's own initialisation."""
    from transformers import EncoderDecoderModel

    if isinstance(model, EncoderDecoderModel):  # it refuses to resize itself; its halves can
        model.encoder.resize_token_embeddings(size, mean_resizing=False)
        model.config.encoder.vocab_size = size
        if OutputVocabulary.of(model.config) is None:
            model.decoder.resize_token_embeddings(size, mean_resizing=False)
            model.config.decoder.vocab_size = size
    else:
        model.resize_token_embeddings(size, mean_resizing=False)


def is_bert2bert(network: Any) -> bool:
    """Whether ``network`` is an ``EncoderDecoderModel`` with a BERT decoder (what :func:`shorten_decoder`
    and :func:`restrict_output_vocabulary` change)."""
    from transformers import EncoderDecoderModel

    return isinstance(network, EncoderDecoderModel) and hasattr(network.decoder, "bert")


def _bert2bert(model: Seq2SeqModel, change: str) -> Any:
    """``model``'s network if it is a bert2bert model; ``ValueError`` otherwise."""
    if not is_bert2bert(model.model):
        raise ValueError(f"{change} needs a bert2bert model; {model.name} is {type(model.model).__name__}")
    return model.model


def restrict_output_vocabulary(model: Seq2SeqModel, tokens: Iterable[int]) -> OutputVocabulary:
    """Lets a bert2bert decoder write only ``tokens`` (tokenizer ids; its start, end and padding
    tokens are added), and returns its :class:`OutputVocabulary`.

    The decoder's word embeddings and (tied) output layer keep one row per token, in ascending id
    order. A token the decoder wrote keeps its row; any other starts from the encoder's embedding of
    it (a warm start's halves start equal) and the mean output bias. The config records the ids and
    holds the start, end and padding ids as rows, so the saved model also generates on its own.
    Raises ``ValueError`` for other architectures.
    """
    import torch

    network = _bert2bert(model, "a restricted output vocabulary")
    config, decoder, before = network.config, network.decoder, model.output
    keys = ("decoder_start_token_id", "eos_token_id", "pad_token_id")
    specials = {key: _token_of(getattr(config, key), before) for key in keys}
    separator = model.tokens.special_tokens.separator  # a KBQA index needs it, facts in training or not
    wanted = np.asarray(sorted({*map(int, tokens), *specials.values(), separator}), dtype=np.int64)
    weight, bias = decoder.get_input_embeddings().weight.detach(), decoder.cls.predictions.bias.detach()
    known = before.writes(wanted) if before is not None else wanted < weight.shape[0]
    kept = torch.from_numpy(before.rows(wanted[known]) if before is not None else wanted[known])
    known_rows = torch.from_numpy(known)
    rows = network.encoder.get_input_embeddings().weight.detach()[torch.from_numpy(wanted)].clone()
    rows[known_rows] = weight[kept]
    biases = torch.full((len(wanted),), float(bias.mean()), dtype=bias.dtype)
    biases[known_rows] = bias[kept]
    after = OutputVocabulary(wanted)
    row_of = {key: int(after.rows([token])[0]) for key, token in specials.items()}
    embedding = torch.nn.Embedding(len(wanted), rows.shape[1], padding_idx=row_of["pad_token_id"])
    output_layer = torch.nn.Linear(rows.shape[1], len(wanted))
    with torch.no_grad():
        embedding.weight.copy_(rows)
        output_layer.bias.copy_(biases)
    output_layer.weight = embedding.weight
    decoder.set_input_embeddings(embedding)
    decoder.set_output_embeddings(output_layer)
    decoder.config.vocab_size = config.decoder.vocab_size = len(wanted)
    decoder.config.pad_token_id = config.decoder.pad_token_id = row_of["pad_token_id"]
    for key, row in row_of.items():
        setattr(config, key, row)
        setattr(network.generation_config, key, row)
    setattr(config, OUTPUT_TOKENS_KEY, wanted.tolist())
    model.tokens.output = after
    return after


def _token_of(decoder_id: int, output: OutputVocabulary | None) -> int:
    """The tokenizer id of a decoder id (a row, under an :class:`OutputVocabulary`)."""
    return int(decoder_id) if output is None else int(output.token_ids[decoder_id])


def shorten_decoder(model: Seq2SeqModel, layers: int) -> None:
    """Keeps the first ``layers`` layers of a bert2bert decoder (deep encoder, shallow decoder: a
    generation step costs about one decoder layer's work per layer kept, the encoder runs once).

    The kept layers keep their weights, so a warm start stays a warm start; the saved config
    records the new depth. Raises ``ValueError`` for other architectures or an impossible depth.
    """
    network = _bert2bert(model, "a shorter decoder")
    stack = network.decoder.bert.encoder.layer
    if not 1 <= layers <= len(stack):
        raise ValueError(f"decoder layers must be between 1 and {len(stack)}, got {layers}")
    network.decoder.bert.encoder.layer = stack[:layers]
    network.decoder.config.num_hidden_layers = layers
    network.config.decoder.num_hidden_layers = layers


def load_seq2seq_model(model: str | None = None, dtype: str = "fp32") -> Seq2SeqModel:
    """Loads the seq2seq linker: ``None``/``"embedded"`` warm-starts bert2bert from the embedded MiniLM,
    a local encoder-only directory (:func:`is_encoder_only`) warm-starts bert2bert from that encoder,
    and a seq2seq directory or hub name loads as it is. ``dtype`` may be ``auto``
    (:func:`models.loader.choose_dtype`); the loaded model says which precision was chosen and why.

    Raises :class:`models.loader.ModelLoadError` naming the path on any failure.
    """
    from transformers import AutoModelForSeq2SeqLM

    source = resolve_model_source(model)
    warm_start = source.kind == "embedded" or is_encoder_only(source)
    loaded = load_chosen(
        dtype,
        lambda chosen: (
            _warm_started_bert2bert(source, chosen)
            if warm_start
            else load_pretrained(source, AutoModelForSeq2SeqLM, chosen)
        ),
    )
    if add_linking_tokens(loaded.tokenizer):
        resize_embeddings(loaded.model, len(loaded.tokenizer))
    config = loaded.model.config
    tokens = LinkingTokenizer(loaded.tokenizer, _source_name(source), config, OutputVocabulary.of(config))
    return Seq2SeqModel(loaded, tokens)
