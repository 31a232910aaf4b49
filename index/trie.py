"""A prefix trie of token-id sequences that answers "which tokens may come next" fast at any depth.

Constrained decoding asks, at every step of every beam, for the tokens allowed after the
prefix generated so far. Listing every key below a prefix (what a plain marisa trie offers)
costs milliseconds one token below the root of a large trie. Here every *prefix* of every
sequence is a key of a ``marisa_trie.Trie`` (compact, memory-mappable), and its children are
stored once at build time in two flat arrays (CSR layout):

    children[offsets[k] : offsets[k + 1]]   next tokens after the prefix whose key id is k

so a lookup is one exact-match walk of the marisa trie plus an array slice, whatever the
depth or the fan-out. ``terminal[k]`` says whether the prefix is itself a complete sequence.
Arrays are saved as ``.npy`` and loaded with ``mmap_mode="r"`` (read through plain ndarray
views), so a loaded trie costs little resident memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path

import marisa_trie
import numpy as np

from index.progress import Progress, no_progress

_SURROGATE_START = 0xD800
_SURROGATE_SKIP = 0x800
MAX_TOKEN_ID = 0x10FFFF - _SURROGATE_SKIP - 1
_FILES = ("keys.marisa", "offsets.npy", "children.npy", "terminal.npy")
_TOKEN_BITS = 21  # MAX_TOKEN_ID < 2**21: an edge packs (parent id, token) into one int64
_NO_EDGE = np.iinfo(np.int64).max  # the root's slot: it has no parent, and sorts last
CHUNK = 65_536  # sequences converted to keys at a time


def _char(token: int) -> str:
    """One code point per token id: id + 1 (no NUL), skipping the surrogate block UTF-8 forbids."""
    code = token + 1
    return chr(code if code < _SURROGATE_START else code + _SURROGATE_SKIP)


def _token(char: str) -> int:
    code = ord(char)
    return (code if code < _SURROGATE_START else code - _SURROGATE_SKIP) - 1


def encode_key(sequence: Sequence[int]) -> str:
    """The marisa key of a token-id sequence."""
    return "".join(map(_char, sequence))


def decode_key(key: str) -> list[int]:
    """The token-id sequence of a marisa key (inverse of :func:`encode_key`)."""
    return [_token(char) for char in key]


class FlatSequences:
    """Token-id sequences stored end to end: ``tokens`` holds them all, ``lengths`` their lengths.

    Either array may be memory-mapped from a file, so a trie over many millions of names can be
    built without holding one Python object per name.
    """

    def __init__(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        self.tokens = tokens
        self.lengths = lengths
        self._ends = np.cumsum(lengths, dtype=np.int64)
        if self._ends.size and self._ends[-1] != tokens.size:
            raise ValueError(f"lengths add up to {self._ends[-1]}, but there are {tokens.size} tokens")

    @classmethod
    def of(cls, sequences: Iterable[Sequence[int]]) -> FlatSequences:
        """Sequences held in memory, flattened."""
        listed = [list(sequence) for sequence in sequences]
        lengths = np.fromiter(map(len, listed), dtype=np.int64, count=len(listed))
        tokens = np.fromiter(chain.from_iterable(listed), dtype=np.int64, count=int(lengths.sum()))
        return cls(tokens, lengths)

    def __len__(self) -> int:
        return int(self.lengths.size)

    def chunk_count(self, size: int | None = None) -> int:
        return -(-len(self) // (size or CHUNK))

    def chunks(self, size: int | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(index of the first sequence, their tokens, their lengths)`` for each run of ``size``
        sequences (:data:`CHUNK` by default)."""
        size = size or CHUNK
        for first in range(0, len(self), size):
            last = min(first + size, len(self))
            begin = int(self._ends[first - 1]) if first else 0
            yield first, np.asarray(self.tokens[begin : self._ends[last - 1]]), np.asarray(self.lengths[first:last])

    def check_token_range(self) -> None:
        """Raises ``ValueError`` naming the first sequence with a token id outside ``[0, MAX_TOKEN_ID]``."""
        for first, tokens, lengths in self.chunks():
            bad = (tokens < 0) | (tokens > MAX_TOKEN_ID)
            if bad.any():
                owner = int(np.searchsorted(np.cumsum(lengths), np.argmax(bad), side="right"))
                begin = int(self._ends[first + owner] - lengths[owner])
                sequence = self.tokens[begin : begin + lengths[owner]].tolist()
                raise ValueError(f"token ids must be in [0, {MAX_TOKEN_ID}], got {sequence}")

    def keys(self, progress: Progress = no_progress, description: str = "") -> Iterator[str]:
        """The marisa key of every sequence, in order."""
        for _, tokens, lengths in progress(self.chunks(), description, self.chunk_count()):
            yield from _keys_of(tokens, lengths)


def _keys_of(tokens: np.ndarray, lengths: np.ndarray) -> list[str]:
    """Keys of consecutive sequences: all their characters decoded at once, then sliced."""
    codes = tokens.astype(np.uint32) + 1
    codes += (codes >= _SURROGATE_START).astype(np.uint32) * _SURROGATE_SKIP
    text = codes.astype("<u4").tobytes().decode("utf-32-le")
    ends = np.cumsum(lengths).tolist()
    return [text[begin:end] for begin, end in zip([0, *ends][:-1], ends, strict=True)]


def _shared_length(first: str, second: str) -> int:
    shortest = min(len(first), len(second))
    length = 0
    while length < shortest and first[length] == second[length]:
        length += 1
    return length


def _distinct_prefixes(sorted_keys: Iterable[str]) -> Iterator[str]:
    """Every prefix of the given sorted, distinct keys exactly once (the empty one first).

    In sorted order a key shares with all earlier keys at most what it shares with the one
    just before, so its longer prefixes are new.
    """
    yield ""
    previous = ""
    for key in sorted_keys:
        for end in range(_shared_length(previous, key) + 1, len(key) + 1):
            yield key[:end]
        previous = key


def _path_ids(keys: marisa_trie.Trie, chunk_keys: list[str]) -> np.ndarray:
    """Key ids along each key's path, root first: ``len(key) + 1`` ids per key, end to end."""
    ids: list[int] = []
    for key in chunk_keys:
        ids.extend([key_id for _, key_id in keys.iter_prefixes_with_ids(key)])
    return np.array(ids, dtype=np.int64)


def _record_paths(paths: np.ndarray, tokens: np.ndarray, lengths: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Writes each path's edges (``edges[node] = parent << 21 | token``); returns each path's last node."""
    path_ends = np.cumsum(lengths + 1)
    is_node = np.ones(paths.size, dtype=bool)
    is_node[path_ends - lengths - 1] = False  # the root opens every path
    positions = np.flatnonzero(is_node)
    edges[paths[positions]] = (paths[positions - 1] << _TOKEN_BITS) | tokens
    return paths[path_ends - 1]


def _csr(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and children (sorted by token within a parent) from the packed edge of every key."""
    if np.count_nonzero(edges == _NO_EDGE) != 1:
        raise RuntimeError("some trie keys lie on no sequence's path (a bug in the builder)")
    edges.sort()
    edges = edges[:-1]  # the root's slot
    offsets = np.zeros(edges.size + 2, dtype=np.int64)
    np.cumsum(np.bincount(edges >> _TOKEN_BITS, minlength=edges.size + 1), out=offsets[1:])
    return offsets, (edges & ((1 << _TOKEN_BITS) - 1)).astype(np.int32)


class TokenTrie:
    """Token-id sequences with O(depth) next-token lookup; see the module docstring for the layout."""

    def __init__(self, keys: marisa_trie.Trie, offsets: np.ndarray, children: np.ndarray, terminal: np.ndarray):
        self._keys = keys
        self._offsets = offsets
        self._children = children
        self._terminal = terminal
        self._empty = np.empty(0, dtype=children.dtype)

    @classmethod
    def build(cls, sequences: Iterable[Sequence[int]]) -> TokenTrie:
        """A trie of the given sequences (duplicates are stored once; token ids ≥ 0)."""
        trie, _ = cls.build_flat(FlatSequences.of(sequences))
        return trie

    @classmethod
    def build_flat(cls, flat: FlatSequences, progress: Progress = no_progress) -> tuple[TokenTrie, np.ndarray]:
        """A trie of the sequences in ``flat``, and the sequence id of each of them, in their order.

        Nothing is kept per sequence in Python objects, so ``flat`` may be memory-mapped and large:
        a temporary marisa trie of the complete keys, built in label order, yields them sorted and
        distinct; every prefix not shared with the previous key is new, so the key trie is fed
        each prefix once (the same trie, and key ids, as from a set of all prefixes). One walk per
        sequence then gives the key ids along its path, from which the parent and last token of
        every key and the terminal flags follow in array operations.
        """
        flat.check_token_range()
        complete = marisa_trie.Trie(flat.keys(progress, "sorting names"), order=marisa_trie.LABEL_ORDER)
        keys = marisa_trie.Trie(_distinct_prefixes(complete.iterkeys()))
        del complete
        edges = np.full(len(keys), _NO_EDGE, dtype=np.int64)  # key id -> parent id << 21 | last token
        sequence_ids = np.empty(len(flat), dtype=np.int64)
        for first, tokens, lengths in progress(flat.chunks(), "linking trie nodes", flat.chunk_count()):
            paths = _path_ids(keys, _keys_of(tokens, lengths))
            sequence_ids[first : first + lengths.size] = _record_paths(paths, tokens, lengths, edges)
        terminal = np.zeros(len(keys), dtype=bool)
        terminal[sequence_ids] = True
        return cls(keys, *_csr(edges), terminal), sequence_ids

    def save(self, directory: Path) -> None:
        """Writes the trie's four files into ``directory`` (which must exist)."""
        self._keys.save(str(directory / _FILES[0]))
        np.save(directory / _FILES[1], self._offsets)
        np.save(directory / _FILES[2], self._children)
        np.save(directory / _FILES[3], self._terminal)

    @classmethod
    def load(cls, directory: Path) -> TokenTrie:
        """Memory-maps a saved trie. Raises ``OSError``/``ValueError`` on missing or corrupt files."""
        keys = marisa_trie.Trie()
        keys.mmap(str(directory / _FILES[0]))
        # Plain ndarray views of the mappings: slicing an np.memmap costs several times more per lookup.
        offsets, children, terminal = (np.load(directory / name, mmap_mode="r").view(np.ndarray) for name in _FILES[1:])
        if offsets.shape != (len(keys) + 1,) or terminal.shape != (len(keys),) or children.shape != (len(keys) - 1,):
            raise ValueError(f"trie files in {directory} disagree in size (a partial or mixed write?)")
        return cls(keys, offsets, children, terminal)

    @staticmethod
    def file_names() -> tuple[str, ...]:
        return _FILES

    def __len__(self) -> int:
        """Number of complete sequences."""
        return int(np.count_nonzero(self._terminal))

    @property
    def node_count(self) -> int:
        """Number of distinct prefixes, the empty one included."""
        return len(self._keys)

    def _node(self, prefix: Sequence[int]) -> int | None:
        try:
            return self._keys[encode_key(prefix)]
        except KeyError:
            return None

    def next_tokens(self, prefix: Sequence[int]) -> np.ndarray:
        """Sorted token ids that may follow ``prefix`` (empty if none, or if the prefix is not in the trie)."""
        node = self._node(prefix)
        if node is None:
            return self._empty
        return self._children[self._offsets[node] : self._offsets[node + 1]]

    def sequence_id(self, sequence: Sequence[int]) -> int | None:
        """A stable id of a complete sequence (its key id), or None if it is not one."""
        node = self._node(sequence)
        return node if node is not None and self._terminal[node] else None

    def are_sequence_ids(self, ids: np.ndarray) -> bool:
        """Whether every one of ``ids`` is the id of a complete sequence (see :meth:`sequence_id`)."""
        ids = np.asarray(ids)
        if not ids.size:
            return True
        return bool(ids.min() >= 0 and ids.max() < self._terminal.size and self._terminal[ids].all())

    def __contains__(self, sequence: Sequence[int]) -> bool:
        return self.sequence_id(sequence) is not None

    def sequence(self, sequence_id: int) -> list[int]:
        """The token ids of the complete sequence with this id."""
        return decode_key(self._keys.restore_key(sequence_id))
