"""The decoder of a bert2bert linker, one step at a time, as a few fused tensor operations.

Beam search asks the decoder for one token per beam per step. Through transformers' modules a
step costs a few milliseconds of Python around every layer (cache objects, mask builders,
keyword plumbing), more than the arithmetic of the few rows involved. This module runs the same
arithmetic on the same weights with none of it: the query/key/value projections of each layer
fused into one matrix product, the cross-attention keys and values of every input computed
once, the self-attention cache kept as plain tensors and reordered with one ``index_select``
per layer when beams are chosen.

It computes what ``BertLMHeadModel`` computes (post-layer-norm BERT layers with absolute
positions, a prediction head with a transform); :func:`supports` says whether a model is one,
and the search falls back to transformers' modules otherwise. The tests hold the two to the
same log-probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional

_ACTIVATIONS = {"gelu": functional.gelu, "relu": functional.relu}


def supports(network: Any) -> bool:
    """Whether ``network`` is a bert2bert ``EncoderDecoderModel`` this module can step."""
    from transformers import BertLMHeadModel, EncoderDecoderModel

    if not isinstance(network, EncoderDecoderModel) or not isinstance(network.decoder, BertLMHeadModel):
        return False
    config = network.decoder.config
    return (
        config.hidden_act in _ACTIVATIONS
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not getattr(config, "chunk_size_feed_forward", 0)
        and getattr(network, "enc_to_dec_proj", None) is None
    )


@dataclass(frozen=True)
class _Layer:
    qkv: tuple[torch.Tensor, torch.Tensor]
    self_out: tuple[torch.Tensor, torch.Tensor]
    self_norm: tuple[torch.Tensor, torch.Tensor]
    cross_query: tuple[torch.Tensor, torch.Tensor]
    cross_kv: tuple[torch.Tensor, torch.Tensor]
    cross_out: tuple[torch.Tensor, torch.Tensor]
    cross_norm: tuple[torch.Tensor, torch.Tensor]
    up: tuple[torch.Tensor, torch.Tensor]
    down: tuple[torch.Tensor, torch.Tensor]
    out_norm: tuple[torch.Tensor, torch.Tensor]


def _linear(module: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return module.weight, module.bias


def _fused(*modules: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([m.weight for m in modules]), torch.cat([m.bias for m in modules])


def _layer(block: Any) -> _Layer:
    attention, cross = block.attention, block.crossattention
    return _Layer(
        qkv=_fused(attention.self.query, attention.self.key, attention.self.value),
        self_out=_linear(attention.output.dense),
        self_norm=_linear(attention.output.LayerNorm),
        cross_query=_linear(cross.self.query),
        cross_kv=_fused(cross.self.key, cross.self.value),
        cross_out=_linear(cross.output.dense),
        cross_norm=_linear(cross.output.LayerNorm),
        up=_linear(block.intermediate.dense),
        down=_linear(block.output.dense),
        out_norm=_linear(block.output.LayerNorm),
    )


class BertDecoderSteps:
    """Steps of a bert2bert decoder over the encoder states of a batch of inputs.

    ``step(items, parents, tokens)``: ``items[r]`` is the input row ``r`` decodes, ``parents[r]``
    the previous step's row it continues (None at the first step), ``tokens`` the new tokens
    ``[rows, T]``; returns the next-token log-probabilities ``[rows, vocabulary]`` (float32).
    """

    def __init__(self, network: Any, encoder_states: torch.Tensor, encoder_mask: torch.Tensor) -> None:
        decoder = network.decoder
        config = decoder.config
        self.heads = config.num_attention_heads
        self.head_size = config.hidden_size // self.heads
        self.eps = config.layer_norm_eps
        self.activation = _ACTIVATIONS[config.hidden_act]
        embeddings = decoder.bert.embeddings
        self.words = embeddings.word_embeddings.weight
        self.positions = embeddings.position_embeddings.weight
        self.type_zero = embeddings.token_type_embeddings.weight[0]
        self.embedding_norm = _linear(embeddings.LayerNorm)
        self.layers = [_layer(block) for block in decoder.bert.encoder.layer]
        head = decoder.cls.predictions
        self.transform = _linear(head.transform.dense)
        self.transform_norm = _linear(head.transform.LayerNorm)
        self.vocabulary = _linear(head.decoder)
        blocked = torch.finfo(encoder_states.dtype).min
        self.cross_bias = ((1.0 - encoder_mask[:, None, None, :].to(encoder_states.dtype)) * blocked).contiguous()
        self.cross = [self._split(functional.linear(encoder_states, *layer.cross_kv)) for layer in self.layers]
        self.past: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        """``[rows, T, hidden]`` → ``[rows, heads, T, head size]``."""
        rows, length, _ = states.shape
        return states.view(rows, length, self.heads, self.head_size).transpose(1, 2)

    def _split(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key, value = fused.chunk(2, dim=-1)
        return self._heads(key), self._heads(value)

    def _norm(self, states: torch.Tensor, norm: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return functional.layer_norm(states, states.shape[-1:], *norm, eps=self.eps)

    def step(self, items: list[int], parents: list[int] | None, tokens: torch.Tensor) -> torch.Tensor:
        rows = torch.tensor(items, dtype=torch.long)
        if parents is not None:
            chosen = torch.tensor(parents, dtype=torch.long)
            self.past = [(key.index_select(0, chosen), value.index_select(0, chosen)) for key, value in self.past]
        start = self.past[0][0].shape[2] if self.past else 0
        length = tokens.shape[1]
        states = self.words[tokens] + self.positions[start : start + length] + self.type_zero
        states = self._norm(states, self.embedding_norm)
        cross_bias = self.cross_bias.index_select(0, rows)
        past = []
        for number, layer in enumerate(self.layers):
            query, key, value = functional.linear(states, *layer.qkv).chunk(3, dim=-1)
            query, key, value = self._heads(query), self._heads(key), self._heads(value)
            if self.past:
                key = torch.cat([self.past[number][0], key], dim=2)
                value = torch.cat([self.past[number][1], value], dim=2)
            past.append((key, value))
            attended = functional.scaled_dot_product_attention(query, key, value, is_causal=start == 0 and length > 1)
            states = self._norm(functional.linear(self._merge(attended), *layer.self_out) + states, layer.self_norm)
            cross_key, cross_value = (part.index_select(0, rows) for part in self.cross[number])
            query = self._heads(functional.linear(states, *layer.cross_query))
            attended = functional.scaled_dot_product_attention(query, cross_key, cross_value, attn_mask=cross_bias)
            states = self._norm(functional.linear(self._merge(attended), *layer.cross_out) + states, layer.cross_norm)
            hidden = self.activation(functional.linear(states, *layer.up))
            states = self._norm(functional.linear(hidden, *layer.down) + states, layer.out_norm)
        self.past = past
        last = self.activation(functional.linear(states[:, -1], *self.transform))
        logits = functional.linear(self._norm(last, self.transform_norm), *self.vocabulary)
        return torch.log_softmax(logits.float(), dim=-1)

    @staticmethod
    def _merge(attended: torch.Tensor) -> torch.Tensor:
        rows, _, length, _ = attended.shape
        return attended.transpose(1, 2).reshape(rows, length, -1)
