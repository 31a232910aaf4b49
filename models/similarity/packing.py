"""Padding-free batching: several short texts share one row of a forward pass.

Texts in a batch differ in length, and padding every text to the longest one spends compute on
tokens that are thrown away. Packing places texts one after another in rows of a fixed length
(first-fit, longest first), restarts the position ids at each text and restricts attention to
tokens of the same text, so each text's token vectors are the ones it gets alone. A model
whose attention or positions do not follow these inputs gives other vectors; the encoder checks
that once and falls back to padded batches (see :mod:`models.similarity.encoder`).

Everything here is NumPy on token ids; no model is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np


@dataclass(frozen=True)
class PackedRows:
    """Texts laid out in ``rows`` rows of ``row_length`` token slots.

    ``input_ids``, ``position_ids`` and ``segments`` are ``(rows, row_length)`` int64;
    ``segments`` numbers the texts within each row (0, 1, ...) and is -1 on unused slots.
    ``slots`` gives, for the tokens of all texts in input order, their flat index into
    ``rows * row_length``; ``lengths`` the token count of each text.
    """

    input_ids: np.ndarray
    position_ids: np.ndarray
    segments: np.ndarray
    slots: np.ndarray
    lengths: np.ndarray

    @property
    def rows(self) -> int:
        return self.input_ids.shape[0]

    @property
    def row_length(self) -> int:
        return self.input_ids.shape[1]

    def attention_allowed(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``(rows, row_length, row_length)`` bool for rows ``start:stop``: may slot ``i`` attend
        to slot ``j``? Only within one text; unused slots attend to each other, so no row is
        fully masked."""
        segments = self.segments[start:stop]
        return segments[:, :, None] == segments[:, None, :]

    def split(self, hidden: np.ndarray) -> list[np.ndarray]:
        """Cuts ``(rows, row_length, d)`` outputs back into one ``(n_i, d)`` array per text."""
        if not len(self.lengths):
            return []
        flat = hidden.reshape(self.rows * self.row_length, hidden.shape[-1])[self.slots]
        return np.split(flat, np.cumsum(self.lengths)[:-1])


def assign_rows(lengths: np.ndarray, row_length: int) -> tuple[np.ndarray, np.ndarray]:
    """First-fit decreasing: ``(row, offset)`` of each text, rows of ``row_length`` slots.

    Every length must be at most ``row_length``. Longest texts are placed first, each into the
    first row with room for it, which leaves little room unused when texts are short.
    """
    if len(lengths) and int(lengths.max()) > row_length:
        raise ValueError(f"a text of {int(lengths.max())} tokens does not fit a row of {row_length}")
    rows = np.empty(len(lengths), dtype=np.int64)
    offsets = np.empty(len(lengths), dtype=np.int64)
    used = np.zeros(len(lengths), dtype=np.int64)  # at most one row per text
    opened = 0
    for i in np.argsort(-lengths, kind="stable"):
        fits = np.flatnonzero(used[:opened] + lengths[i] <= row_length)
        row = int(fits[0]) if len(fits) else opened
        opened = max(opened, row + 1)
        rows[i], offsets[i] = row, used[row]
        used[row] += lengths[i]
    return rows, offsets


def pack(token_ids: Sequence[Sequence[int]], row_length: int, pad_id: int) -> PackedRows:
    """Lays ``token_ids`` (one sequence per text) out in packed rows of ``row_length`` slots."""
    lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
    rows, offsets = assign_rows(lengths, row_length)
    row_count = int(rows.max()) + 1 if len(rows) else 0
    starts = np.repeat(rows * row_length + offsets, lengths)
    within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    slots = starts + within
    input_ids = np.full(row_count * row_length, pad_id, dtype=np.int64)
    input_ids[slots] = np.fromiter(chain.from_iterable(token_ids), dtype=np.int64, count=len(slots))
    position_ids = np.zeros(row_count * row_length, dtype=np.int64)
    position_ids[slots] = within
    segments = np.full(row_count * row_length, -1, dtype=np.int64)
    segments[slots] = _segment_numbers(rows, offsets, lengths)
    shape = (row_count, row_length)
    return PackedRows(input_ids.reshape(shape), position_ids.reshape(shape), segments.reshape(shape), slots, lengths)


def _segment_numbers(rows: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """For every token (texts in input order), the rank of its text within its row."""
    by_place = np.lexsort((offsets, rows))
    rank = np.empty(len(rows), dtype=np.int64)
    row_starts = np.r_[0, np.flatnonzero(np.diff(rows[by_place])) + 1]
    positions = np.arange(len(rows))
    rank[by_place] = positions - np.repeat(row_starts, np.diff(np.r_[row_starts, len(rows)]))
    return np.repeat(rank, lengths)
