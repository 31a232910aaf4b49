"""The seq2seq model that writes entity names and (subject, predicate) pairs, and its tokenizer.

Any local Hugging Face seq2seq directory (T5, BART, ``EncoderDecoderModel``) or hub name
loads as is. The embedded default is a bert2bert ``EncoderDecoderModel`` warm-started from
the embedded all-MiniLM-L6-v2: both halves start from its weights, the decoder's cross-attention
starts untrained, so it must be fine-tuned (``simlink train``) before it links anything. A local
directory holding an encoder only (a BERT-style model whose config is not ``is_encoder_decoder``,
for example a Chinese BERT) is warm-started the same way, with its own tokenizer.

The tokenizer gains special tokens for the linking input and output (mention markers, task
tags, the subject/predicate separator); an index records this tokenizer's identity.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from index.manifest import SpecialTokens, TokenizerIdentity
from models.linking.query import MENTION_END, MENTION_START, Task
from models.loader import (
    DType,
    LoadedModel,
    ModelSource,
    in_eval_mode,
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


def add_linking_tokens(tokenizer: Any) -> int:
    """Adds the linking special tokens the tokenizer lacks; returns how many were added."""
    missing = [token for token in LINKING_TOKENS if token not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    return len(missing)


def tokenizer_identity(tokenizer: Any, name: str) -> TokenizerIdentity:
    """The identity an index records for ``tokenizer`` (see :class:`index.manifest.TokenizerIdentity`):
    its vocabulary and, for fast tokenizers, its normalizer and pre-tokenizer (a cased and an uncased
    tokenizer may share one vocabulary)."""
    rules = ""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        rules = json.dumps([spec.get("normalizer"), spec.get("pre_tokenizer")], sort_keys=True)
    return TokenizerIdentity.from_vocab(name, tokenizer.get_vocab(), rules)


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


def linking_special_tokens(tokenizer: Any, config: Any | None = None) -> SpecialTokens:
    """End-of-sequence and separator ids; the end id is the model's EOS (BERT's [SEP])."""
    end = getattr(config, "eos_token_id", None) if config is not None else None
    if end is None:
        end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    return SpecialTokens(end=int(end), separator=int(tokenizer.convert_tokens_to_ids(PREDICATE_SEPARATOR)))


@dataclass
class LinkingTokenizer:
    """The tokenizer side of a linker: what ``build-index`` needs (no weights), and what an index
    records. ``config`` is the model's, when one is loaded: its EOS id ends every name."""

    tokenizer: Any
    name: str
    config: Any | None = None
    _backend: tuple[int, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def identity(self) -> TokenizerIdentity:
        return tokenizer_identity(self.tokenizer, self.name)

    @property
    def special_tokens(self) -> SpecialTokens:
        return linking_special_tokens(self.tokenizer, self.config)

    def encode_names(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each name, without special tokens (see :func:`encode_names`)."""
        backend = self._names_backend()
        if backend is None:
            return encode_names(self.tokenizer, texts)
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        return [encoding.ids for encoding in encode(list(texts), add_special_tokens=False)]

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
    def decoder_prefix(self) -> list[int]:
        """The tokens every generated sequence starts with before the name: the decoder's start
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
        return {**self.loaded.describe(), "name": self.name}


def _source_name(source: ModelSource) -> str:
    return EMBEDDED_NAME if source.kind == "embedded" else source.location


def load_linking_tokenizer(model: str | None) -> LinkingTokenizer:
    """The tokenizer of the seq2seq ``model`` (same resolution as :func:`load_seq2seq_model`)."""
    source = resolve_model_source(model)
    tokenizer = load_tokenizer(source)
    add_linking_tokens(tokenizer)
    return LinkingTokenizer(tokenizer, _source_name(source))


def is_encoder_only(source: ModelSource) -> bool:
    """Whether the local directory ``source`` holds an encoder (its config is not ``is_encoder_decoder``),
    which :func:`load_seq2seq_model` then warm-starts as both halves of a bert2bert model."""
    from transformers import AutoConfig

    if source.kind != "local":
        return False
    with loading(source.location, "read the config"):
        return not AutoConfig.from_pretrained(source.location).is_encoder_decoder


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
    an ``EncoderDecoderModel``); new rows get the model's own initialisation."""
    from transformers import EncoderDecoderModel

    if isinstance(model, EncoderDecoderModel):  # it refuses to resize itself; its halves can
        model.encoder.resize_token_embeddings(size, mean_resizing=False)
        model.decoder.resize_token_embeddings(size, mean_resizing=False)
        model.config.decoder.vocab_size = size
        model.config.encoder.vocab_size = size
    else:
        model.resize_token_embeddings(size, mean_resizing=False)


def shorten_decoder(model: Seq2SeqModel, layers: int) -> None:
    """Keeps the first ``layers`` layers of a bert2bert decoder (deep encoder, shallow decoder: a
    generation step costs about one decoder layer's work per layer kept, the encoder runs once).

    The kept layers keep their weights, so a warm start stays a warm start; the saved config
    records the new depth. Raises ``ValueError`` for other architectures or an impossible depth.
    """
    from transformers import EncoderDecoderModel

    network = model.model
    if not isinstance(network, EncoderDecoderModel) or not hasattr(network.decoder, "bert"):
        raise ValueError(f"a shorter decoder needs a bert2bert model; {model.name} is {type(network).__name__}")
    stack = network.decoder.bert.encoder.layer
    if not 1 <= layers <= len(stack):
        raise ValueError(f"decoder layers must be between 1 and {len(stack)}, got {layers}")
    network.decoder.bert.encoder.layer = stack[:layers]
    network.decoder.config.num_hidden_layers = layers
    network.config.decoder.num_hidden_layers = layers


def load_seq2seq_model(model: str | None = None, dtype: DType = "fp32") -> Seq2SeqModel:
    """Loads the seq2seq linker: ``None``/``"embedded"`` warm-starts bert2bert from the embedded MiniLM,
    a local encoder-only directory (:func:`is_encoder_only`) warm-starts bert2bert from that encoder,
    and a seq2seq directory or hub name loads as it is.

    Raises :class:`models.loader.ModelLoadError` naming the path on any failure.
    """
    from transformers import AutoModelForSeq2SeqLM

    source = resolve_model_source(model)
    loaded = (
        _warm_started_bert2bert(source, dtype)
        if source.kind == "embedded" or is_encoder_only(source)
        else load_pretrained(source, AutoModelForSeq2SeqLM, dtype)
    )
    if add_linking_tokens(loaded.tokenizer):
        resize_embeddings(loaded.model, len(loaded.tokenizer))
    tokens = LinkingTokenizer(loaded.tokenizer, _source_name(source), loaded.model.config)
    return Seq2SeqModel(loaded, tokens)
