"""A prefix trie of token-id sequences that answers "which tokens may come next" fast at any depth.

Constrained decoding asks, at every step of every beam, for the tokens allowed after the
prefix generated so far. Listing every key below a prefix (what a plain marisa trie offers)
costs milliseconds one token below the root of a large trie. Here every *prefix* of every
sequence is a key of a ``marisa_trie.Trie`` (compact, memory-mappable), and its children are
stored once at build time in two flat arrays (CSR layout):

    children[offsets[k] : offsets[k + 1]]   next tokens after the prefix whose key id is k

so a lookup is one exact-match walk of the marisa trie plus an array slice, whatever the
depth or the fan-out. ``terminal[k]`` says whether the prefix is itself a complete sequence.
Arrays are saved as ``.npy`` and loaded with ``mmap_mode="r"``, so a loaded trie costs
little resident memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import marisa_trie
import numpy as np

_SURROGATE_START = 0xD800
_SURROGATE_SKIP = 0x800
MAX_TOKEN_ID = 0x10FFFF - _SURROGATE_SKIP - 1
_FILES = ("keys.marisa", "offsets.npy", "children.npy", "terminal.npy")


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
        prefixes: set[str] = {""}
        complete: set[str] = set()
        for sequence in sequences:
            if any(token < 0 or token > MAX_TOKEN_ID for token in sequence):
                raise ValueError(f"token ids must be in [0, {MAX_TOKEN_ID}], got {list(sequence)}")
            key = encode_key(sequence)
            complete.add(key)
            prefixes.update(key[:end] for end in range(1, len(key) + 1))
        keys = marisa_trie.Trie(prefixes)
        size = len(keys)
        parents = np.empty(size - 1, dtype=np.int64)
        tokens = np.empty(size - 1, dtype=np.int32)
        terminal = np.zeros(size, dtype=bool)
        edge = 0
        for key, key_id in keys.iteritems():
            terminal[key_id] = key in complete
            if key:
                parents[edge] = keys[key[:-1]]
                tokens[edge] = _token(key[-1])
                edge += 1
        order = np.lexsort((tokens, parents))
        offsets = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(np.bincount(parents, minlength=size), out=offsets[1:])
        return cls(keys, offsets, tokens[order], terminal)

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
        offsets, children, terminal = (np.load(directory / name, mmap_mode="r") for name in _FILES[1:])
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

    def __contains__(self, sequence: Sequence[int]) -> bool:
        return self.sequence_id(sequence) is not None

    def sequence(self, sequence_id: int) -> list[int]:
        """The token ids of the complete sequence with this id."""
        return decode_key(self._keys.restore_key(sequence_id))
