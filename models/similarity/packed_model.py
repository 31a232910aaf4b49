"""An encoder's forward pass over packed rows (:mod:`models.similarity.packing`), compiled once with TorchScript.

Why compile: a forward pass run op by op from Python takes Python's global lock back after every
one of its few hundred operations. In a server, the thread handling HTTP holds that lock much of
the time, so the forward pass keeps waiting for it, and two forward passes cannot run side by
side. A traced graph runs in C++ from start to end with the lock released: concurrent forward
passes, and the request handling beside them, each get a core.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from models.similarity.packing import PackedRows


class PackingUnsupportedError(RuntimeError):
    """The model cannot be traced for packed inputs (it lacks ``position_ids`` or 4-D masks)."""


class _SelectedLayer(torch.nn.Module):
    """The model's hidden states of one layer, from positional inputs (as tracing needs)."""

    def __init__(self, model: torch.nn.Module, layer: int) -> None:
        super().__init__()
        self.model = model
        self.layer = layer

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return layer_output(self.model, self.layer, input_ids=input_ids, position_ids=position_ids, attention_mask=mask)


def layer_output(model: torch.nn.Module, layer: int, **inputs: torch.Tensor) -> torch.Tensor:
    """The hidden states of ``layer`` (as transformers numbers them; -1 the last) for ``inputs``;
    all layers are asked for only when another than the last is wanted."""
    if layer == -1:
        return model(**inputs).last_hidden_state
    return model(**inputs, output_hidden_states=True).hidden_states[layer]


class PackedModel:
    """Runs packed rows through the traced model; safe to call from several threads at once."""

    def __init__(self, traced: torch.jit.ScriptModule, dtype: torch.dtype) -> None:
        self._traced = traced
        self._dtype = dtype

    @classmethod
    def trace(cls, model: torch.nn.Module, layer: int, example: PackedRows) -> PackedModel:
        """Traces ``model`` (hidden states of ``layer``) on ``example``; raises
        :class:`PackingUnsupportedError` if the model does not take packed inputs."""
        dtype = next(model.parameters()).dtype
        inputs = _model_inputs(example, 0, example.rows, dtype)
        try:
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecation notes, met while tracing
                traced = torch.jit.trace(_SelectedLayer(model, layer), inputs, check_trace=False)
        except Exception as error:  # any model code may fail on inputs it was not written for
            raise PackingUnsupportedError(f"{type(error).__name__}: {error}") from error
        return cls(traced, dtype)

    def __call__(self, packed: PackedRows, start: int, stop: int) -> np.ndarray:
        """Hidden states of rows ``start:stop``, ``(rows, row_length, d)`` float32."""
        # Plain execution: the optimizing executor re-specializes the graph for every new input
        # shape, which costs more than it gains on batches whose shapes always differ.
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            hidden = self._traced(*_model_inputs(packed, start, stop, self._dtype))
        return hidden.float().numpy()


def _model_inputs(packed: PackedRows, start: int, stop: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Token ids, position ids and the additive attention mask ``(rows, 1, L, L)`` of rows ``start:stop``."""
    allowed = torch.from_numpy(packed.attention_allowed(start, stop))
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    return (
        torch.from_numpy(packed.input_ids[start:stop]),
        torch.from_numpy(packed.position_ids[start:stop]),
        mask[:, None],
    )
