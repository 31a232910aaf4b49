"""A bert2bert linker's encoder pass and decoder steps as a few fused tensor operations.

Beam search runs the encoder once per input and asks the decoder for one token per beam per
step. Through transformers' modules each costs a few milliseconds of Python around every layer
(cache objects, mask builders, keyword plumbing), more than the arithmetic of the few rows
involved. This module runs the same arithmetic on the same weights with none of it: the
query/key/value projections of each layer fused into one matrix product, the decoder's
cross-attention keys and values of every input computed once, its self-attention cache kept as
plain tensors and reordered with one ``index_select`` per layer when beams are chosen.

The weights are laid out for a few rows at a time: an fp32 matrix is stored transposed
(``[in, out]``, contiguous), the layout in which the BLAS multiplies a handful of rows fastest
(``F.linear`` hands it ``[out, in]`` weights transposed on the fly, which it runs markedly
slower for so few rows, the output layer of 30k rows above all). A bf16 model's matrices are
packed once into oneDNN's own blocked layout instead where oneDNN computes bf16 on the CPU
(:func:`_packs_bf16`; the ``mkldnn`` ops torch's compiler uses for CPU linear layers), whose
products of a few rows take about two thirds of ``addmm``'s time and give the same bits;
elsewhere they are transposed too. This copy is made once per model (:meth:`FusedBert.of`) and made again
only when a weight has changed since (a model evaluated between training steps).

It computes what ``BertModel`` and ``BertLMHeadModel`` compute (post-layer-norm BERT layers with
absolute positions, a prediction head with a transform); :func:`supports` says whether a model
is a bert2bert of that kind, and the search falls back to transformers' modules otherwise. The
tests hold the two to the same hidden states and log-probabilities.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional

_ACTIVATIONS = {"gelu": functional.gelu, "relu": functional.relu}

Affine = tuple[torch.Tensor, torch.Tensor]
"""A linear layer as ``(weight laid out by :func:`_laid_out`, bias)``, or a layer norm's
``(weight, bias)``."""


def _is_plain_bert(model: Any, kind: type) -> bool:
    config = getattr(model, "config", None)
    return (
        isinstance(model, kind)
        and config.hidden_act in _ACTIVATIONS
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not getattr(config, "chunk_size_feed_forward", 0)
    )


def supports(network: Any) -> bool:
    """Whether ``network`` is a bert2bert ``EncoderDecoderModel`` this module can run."""
    from transformers import BertLMHeadModel, BertModel, EncoderDecoderModel

    return (
        isinstance(network, EncoderDecoderModel)
        and _is_plain_bert(network.encoder, BertModel)
        and _is_plain_bert(network.decoder, BertLMHeadModel)
        and getattr(network, "enc_to_dec_proj", None) is None
    )


def _packs_bf16() -> bool:
    """Whether this torch has oneDNN's packed linear ops (CPU builds with oneDNN do) and oneDNN
    computes bf16 on this CPU (not on one without AVX-512, or one ``ONEDNN_MAX_CPU_ISA`` caps);
    elsewhere bf16 weights stay transposed for ``addmm``."""
    mkldnn = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(mkldnn, "_linear_pointwise")
        and hasattr(mkldnn, "_is_mkldnn_bf16_supported")
        and bool(mkldnn._is_mkldnn_bf16_supported())
    )


def _laid_out(weight: torch.Tensor) -> torch.Tensor:
    """A linear layer's ``[out, in]`` weight as :func:`_affine` multiplies it fastest: bf16
    packed by oneDNN (an ``mkldnn`` tensor), anything else transposed to ``[in, out]``."""
    if weight.dtype == torch.bfloat16 and _packs_bf16():
        return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous())
    return weight.t().contiguous()


def _linear(module: Any) -> Affine:
    return _laid_out(module.weight.detach()), module.bias.detach()


def _fused(*modules: Any) -> Affine:
    """Several linear layers over the same input as one: their outputs side by side."""
    weight = torch.cat([module.weight.detach() for module in modules])
    return _laid_out(weight), torch.cat([module.bias.detach() for module in modules])


def _norm_weights(module: Any) -> Affine:
    return module.weight.detach(), module.bias.detach()


def _affine(states: torch.Tensor, layer: Affine) -> torch.Tensor:
    """``states @ weight + bias`` over the last dimension."""
    weight, bias = layer
    flat = states.reshape(-1, states.shape[-1])
    if weight.is_mkldnn:
        product = torch.ops.mkldnn._linear_pointwise(flat.contiguous(), weight, bias, "none", [], "")
    else:
        product = torch.addmm(bias, flat, weight)
    return product.view(*states.shape[:-1], product.shape[-1])


@dataclass(frozen=True)
class _CrossAttention:
    query: Affine
    key_value: Affine
    out: Affine
    norm: Affine


@dataclass(frozen=True)
class _Layer:
    qkv: Affine
    self_out: Affine
    self_norm: Affine
    cross: _CrossAttention | None
    up: Affine
    down: Affine
    out_norm: Affine


def _layer(block: Any) -> _Layer:
    attention = block.attention
    cross = getattr(block, "crossattention", None)
    return _Layer(
        qkv=_fused(attention.self.query, attention.self.key, attention.self.value),
        self_out=_linear(attention.output.dense),
        self_norm=_norm_weights(attention.output.LayerNorm),
        cross=None
        if cross is None
        else _CrossAttention(
            _linear(cross.self.query),
            _fused(cross.self.key, cross.self.value),
            _linear(cross.output.dense),
            _norm_weights(cross.output.LayerNorm),
        ),
        up=_linear(block.intermediate.dense),
        down=_linear(block.output.dense),
        out_norm=_norm_weights(block.output.LayerNorm),
    )


class _Stack:
    """The embeddings and layers of one ``BertModel`` (the encoder, or the decoder's body)."""

    def __init__(self, bert: Any) -> None:
        config = bert.config
        self.heads = config.num_attention_heads
        self.head_size = config.hidden_size // self.heads
        self.eps = config.layer_norm_eps
        self.activation = _ACTIVATIONS[config.hidden_act]
        embeddings = bert.embeddings
        self.words = embeddings.word_embeddings.weight.detach()
        self.positions = embeddings.position_embeddings.weight.detach()
        self.type_zero = embeddings.token_type_embeddings.weight.detach()[0]
        self.embedding_norm = _norm_weights(embeddings.LayerNorm)
        self.layers = [_layer(block) for block in bert.encoder.layer]

    def embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Token, token-type-0 and position (from ``start``) embeddings, normalised (summed in
        ``BertEmbeddings``' order, so that the sums round alike)."""
        states = self.words[tokens] + self.type_zero + self.positions[start : start + tokens.shape[1]]
        return self.norm(states, self.embedding_norm)

    def norm(self, states: torch.Tensor, norm: Affine) -> torch.Tensor:
        return functional.layer_norm(states, states.shape[-1:], *norm, eps=self.eps)

    def heads_of(self, states: torch.Tensor) -> torch.Tensor:
        """``[rows, T, hidden]`` → ``[rows, heads, T, head size]``."""
        rows, length, _ = states.shape
        return states.view(rows, length, self.heads, self.head_size).transpose(1, 2)

    def attention_out(self, attended: torch.Tensor, residual: torch.Tensor, out: Affine, norm: Affine) -> torch.Tensor:
        """Heads merged back, projected, added to the residual, normalised."""
        rows, _, length, _ = attended.shape
        merged = attended.transpose(1, 2).reshape(rows, length, -1)
        return self.residual_out(merged, residual, out, norm)

    def residual_out(self, states: torch.Tensor, residual: torch.Tensor, out: Affine, norm: Affine) -> torch.Tensor:
        """``states`` projected by ``out``, added to the residual, normalised: how every sublayer ends."""
        return self.norm(_affine(states, out) + residual, norm)

    def feed_forward(self, states: torch.Tensor, layer: _Layer) -> torch.Tensor:
        hidden = self.activation(_affine(states, layer.up))
        return self.residual_out(hidden, states, layer.down, layer.out_norm)


@dataclass(frozen=True)
class _Slots:
    """Where each decoder row sits when the rows are grouped by input: ``items[r]`` and
    ``slots[r]``, its place among its input's rows, ``width`` places per input. ``in_place``: the
    rows already are every input's ``width`` rows in input order (one input's beams, or a batch
    none of whose inputs has finished), so grouping them is a reshape."""

    items: torch.Tensor
    slots: torch.Tensor
    width: int
    in_place: bool

    @classmethod
    def of(cls, items: Sequence[int], inputs: int) -> _Slots:
        """The places of rows decoding ``items`` (a short list: its arithmetic is NumPy's)."""
        order = np.asarray(items, dtype=np.int64)
        counts = np.bincount(order, minlength=inputs)
        width = int(counts.max())
        if (counts == width).all() and (np.diff(order) >= 0).all():
            return cls(torch.from_numpy(order), torch.from_numpy(np.arange(len(order)) % width), width, True)
        ranked = np.argsort(order, kind="stable")
        slots = np.empty_like(order)
        slots[ranked] = np.arange(len(order)) - (np.cumsum(counts) - counts)[order[ranked]]
        return cls(torch.from_numpy(order), torch.from_numpy(slots), width, False)


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Attention in float32 by two matrix products: ``query [.., T, size]`` to ``key`` and
    ``value [.., length, size]``, ``bias`` added to the scores."""
    scores = torch.matmul(query, key.transpose(-1, -2)).mul_(query.shape[-1] ** -0.5).add_(bias)
    return torch.matmul(torch.softmax(scores, dim=-1), value)


def _cross_attend(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor, slots: _Slots
) -> torch.Tensor:
    """Cross-attention of decoder rows ``[rows, heads, T, head size]`` to the encoder keys and
    values of their inputs ``[inputs, heads, length, head size]`` (float32), returned in the
    query's dtype. The rows of each input are attended together against its one copy of the keys
    (a beam never copies them), in float32: the CPU's attention kernel over bf16 takes several
    times as long for a step's one-token rows."""
    rows, heads, length, size = query.shape
    inputs = key.shape[0]
    if slots.in_place:
        grouped = query.float().view(inputs, slots.width, heads, length, size)
    else:
        grouped = query.new_zeros((inputs, slots.width, heads, length, size), dtype=torch.float32)
        grouped[slots.items, slots.slots] = query.float()
    grouped = grouped.permute(0, 2, 1, 3, 4).reshape(inputs, heads, slots.width * length, size)
    attended = _attend(grouped, key, value, bias)
    attended = attended.view(inputs, heads, slots.width, length, size).permute(0, 2, 1, 3, 4)
    if slots.in_place:
        return attended.reshape(rows, heads, length, size).to(query.dtype)
    return attended[slots.items, slots.slots].to(query.dtype)


def attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An attention mask ``[batch, length]`` of 1/0 as an additive bias ``[batch, 1, 1, length]``."""
    return ((1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min).contiguous()


@dataclass
class _Layout:
    parameters: list[torch.Tensor]
    version: int
    fused: FusedBert


def _current(layout: _Layout, network: Any) -> bool:
    """Whether ``layout`` still matches ``network``: the same parameter objects at its two ends (a
    resized vocabulary or loaded weights replace those) and none changed in place since."""
    ends = (network.get_input_embeddings().weight, network.decoder.get_output_embeddings().weight)
    return all(any(end is kept for kept in layout.parameters) for end in ends) and (
        _version(layout.parameters) == layout.version
    )


_LAID_OUT: weakref.WeakKeyDictionary[Any, _Layout] = weakref.WeakKeyDictionary()
_LAYOUT_LOCK = threading.Lock()


def _version(parameters: list[torch.Tensor]) -> int:
    return sum(parameter._version for parameter in parameters)


class FusedBert:
    """A bert2bert network's weights in the layout this module runs on."""

    def __init__(self, network: Any) -> None:
        self.encoder = _Stack(network.encoder)
        self.decoder = _Stack(network.decoder.bert)
        head = network.decoder.cls.predictions
        self.transform = _linear(head.transform.dense)
        self.transform_norm = _norm_weights(head.transform.LayerNorm)
        self.vocabulary = _linear(head.decoder)

    @classmethod
    def of(cls, network: Any) -> FusedBert:
        """``network``'s weights, laid out once and kept while none of them changes (an optimiser
        step changes them in place, which bumps their version counters; resizing the vocabulary
        replaces the embeddings). The layout is a second copy of every matrix: about 110 MB for a
        bert2bert MiniLM with 2 decoder layers, 150 MB with 6, in fp32 (half that in bf16)."""
        with _LAYOUT_LOCK:
            layout = _LAID_OUT.get(network)
            if layout is None or not _current(layout, network):
                parameters = list(network.parameters())
                layout = _LAID_OUT[network] = _Layout(parameters, _version(parameters), cls(network))
            return layout.fused

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The encoder's last hidden states ``[batch, length, hidden]`` (zeros at padded places).

        A batch of inputs of different lengths is padded to the longest, but only attention needs
        the padded layout: every other product runs on the real tokens alone, gathered into one
        ``[tokens, hidden]`` matrix, so no arithmetic goes to padding (about a third of a batch of
        questions' places). Attention runs in float32 whatever the model's precision, so that a
        bf16 input's states barely depend on its batch: over a padded batch by two matrix products
        (:func:`_attend`), faster here than the CPU's attention kernel with a mask; without padding
        (an input alone) by that kernel, unmasked."""
        stack = self.encoder
        real = attention_mask.bool()
        embedded = stack.embed(input_ids, 0)
        padded = not bool(real.all())
        bias = attention_bias(attention_mask, torch.float32) if padded else None
        states = embedded[real] if padded else embedded.flatten(0, 1)
        for layer in stack.layers:
            qkv = _affine(states, layer.qkv).float()
            if padded:
                qkv = qkv.new_zeros((*real.shape, qkv.shape[-1])).index_put_((real,), qkv)
            query, key, value = (stack.heads_of(part) for part in qkv.view(*real.shape, -1).chunk(3, dim=-1))
            if padded:
                attended = _attend(query, key, value, bias)
            else:
                attended = functional.scaled_dot_product_attention(query, key, value)
            merged = attended.transpose(1, 2).flatten(2)
            merged = (merged[real] if padded else merged.flatten(0, 1)).to(states.dtype)
            states = stack.residual_out(merged, states, layer.self_out, layer.self_norm)
            states = stack.feed_forward(states, layer)
        if padded:
            return states.new_zeros(embedded.shape).index_put_((real,), states)
        return states.view(embedded.shape)

    def log_probabilities(self, last: torch.Tensor) -> torch.Tensor:
        """The prediction head over the decoder's last states ``[rows, hidden]``: next-token
        log-probabilities ``[rows, vocabulary]`` (float32)."""
        transformed = self.decoder.activation(_affine(last, self.transform))
        logits = _affine(self.decoder.norm(transformed, self.transform_norm), self.vocabulary)
        return torch.log_softmax(logits.float(), dim=-1)


class BertDecoderSteps:
    """Steps of a bert2bert decoder over the encoder states of a batch of inputs.

    ``step(items, parents, tokens)``: ``items[r]`` is the input row ``r`` decodes, ``parents[r]``
    the previous step's row it continues (None at the first step), ``tokens`` the new tokens
    ``[rows, T]``; returns the next-token log-probabilities ``[rows, vocabulary]`` (float32). An
    input none of whose rows a step decodes is done: it never comes back.

    Attention runs in float32 whatever the model's precision, over keys and values kept in
    float32: the CPU's attention kernel is markedly slower over bf16 for a step's one-token rows.
    """

    def __init__(self, network: Any, encoder_states: torch.Tensor, encoder_mask: torch.Tensor) -> None:
        self.fused = FusedBert.of(network)
        stack = self.fused.decoder
        self.cross_bias = attention_bias(encoder_mask, torch.float32)
        self.cross = []  # float32 (see _cross_attend), contiguous: every step's products take them without a copy
        for layer in stack.layers:
            assert layer.cross is not None, "a bert2bert decoder layer has cross-attention"
            key, value = (
                stack.heads_of(part).float().contiguous()
                for part in _affine(encoder_states, layer.cross.key_value).chunk(2, dim=-1)
            )
            self.cross.append((key, value))
        self.past: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.inputs = np.arange(len(encoder_states))  # the inputs whose keys and values are kept, in order

    def step(self, items: list[int], parents: list[int] | None, tokens: torch.Tensor) -> torch.Tensor:
        slots = _Slots.of(self._kept_places(items), len(self.inputs))
        if parents is not None:
            chosen = torch.tensor(parents, dtype=torch.long)
            self.past = [(key.index_select(0, chosen), value.index_select(0, chosen)) for key, value in self.past]
        stack = self.fused.decoder
        start = self.past[0][0].shape[2] if self.past else 0
        length = tokens.shape[1]
        states = stack.embed(tokens, start)
        past = []
        for number, layer in enumerate(stack.layers):
            qkv = _affine(states, layer.qkv).float()  # the cache is kept in float32: see the class
            query, key, value = (stack.heads_of(part) for part in qkv.chunk(3, dim=-1))
            if self.past:
                key = torch.cat([self.past[number][0], key], dim=2)
                value = torch.cat([self.past[number][1], value], dim=2)
            past.append((key, value))
            attended = functional.scaled_dot_product_attention(query, key, value, is_causal=start == 0 and length > 1)
            states = stack.attention_out(attended.to(states.dtype), states, layer.self_out, layer.self_norm)
            cross = layer.cross
            query = stack.heads_of(_affine(states, cross.query))
            attended = _cross_attend(query, *self.cross[number], self.cross_bias, slots)
            states = stack.attention_out(attended, states, cross.out, cross.norm)
            states = stack.feed_forward(states, layer)
        self.past = past
        return self.fused.log_probabilities(states[:, -1])

    def _kept_places(self, items: list[int]) -> np.ndarray:
        """Each row's input as a place among the kept inputs' keys and values. An input whose beams
        have all finished never comes back, so its keys and values are dropped: cross-attention runs
        over every kept input, and a batch's last steps often decode one or two of them."""
        live = np.unique(np.asarray(items, dtype=np.int64))
        if len(live) < len(self.inputs):
            kept = torch.from_numpy(np.searchsorted(self.inputs, live))
            self.cross = [(key.index_select(0, kept), value.index_select(0, kept)) for key, value in self.cross]
            self.cross_bias = self.cross_bias.index_select(0, kept)
            self.inputs = live
        places = np.searchsorted(self.inputs, items)
        assert (self.inputs[places] == items).all(), "an input whose beams had all finished came back"
        return places
