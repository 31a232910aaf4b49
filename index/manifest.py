"""The index manifest: what an index holds and which tokenizer its token ids belong to.

Token ids only mean something under the tokenizer that produced them, so an index records
that tokenizer's name and a hash of its vocabulary, and loading refuses a different one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


class IndexLoadError(RuntimeError):
    """An index that is missing, corrupt, of another format version or built for another tokenizer."""


@dataclass(frozen=True)
class TokenizerIdentity:
    """Which tokenizer produced an index's token ids: its name and a hash of its vocabulary (and of
    the tokens its linker's decoder writes, when training restricted them to ``output_tokens``)."""

    name: str
    vocab_sha256: str
    vocab_size: int
    output_tokens: int | None = None

    @classmethod
    def from_vocab(cls, name: str, vocab: dict[str, int], rules: str = "") -> TokenizerIdentity:
        """Identity of a tokenizer given its full vocabulary (added tokens included) and, as text, any
        rules that change how text maps to tokens (normalizer, pre-tokenizer)."""
        canonical = json.dumps(sorted(vocab.items(), key=lambda item: item[1]), ensure_ascii=False) + rules
        return cls(name, hashlib.sha256(canonical.encode()).hexdigest(), len(vocab))

    def __str__(self) -> str:
        written = "" if self.output_tokens is None else f", of which its decoder writes {self.output_tokens}"
        return f"{self.name} (vocabulary {self.vocab_size} tokens{written}, sha256 {self.vocab_sha256[:12]})"


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids the index's sequences use: end of a name, and subject/predicate separator."""

    end: int
    separator: int


def _record(value: Any) -> dict[str, Any] | None:
    """An optional record of the manifest: an object, or absent."""
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"a record of the manifest is {type(value).__name__}, not an object")
    return value


@dataclass
class Manifest:
    """Everything recorded about one built index (written as ``manifest.json``)."""

    tokenizer: TokenizerIdentity
    special_tokens: SpecialTokens
    counts: dict[str, int]
    sources: dict[str, dict[str, str]]
    skipped_rows: dict[str, int] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    built_at: str = ""
    name_vectors: dict[str, Any] | None = None
    """The entity names' sentence vectors (:mod:`index.name_vectors`), if built: encoder, dimensions, count."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, directory: Path) -> None:
        (directory / MANIFEST_NAME).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """The manifest of the index at ``directory``; :class:`IndexLoadError` naming the path otherwise."""
        path = directory / MANIFEST_NAME
        if not directory.is_dir():
            raise IndexLoadError(f"no index at {directory} (directory not found); build one with 'simlink build-index'")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            version = raw.get("format_version")
            if version != FORMAT_VERSION:
                raise IndexLoadError(
                    f"index at {directory} has format version {version}, this version of simlink reads "
                    f"{FORMAT_VERSION}; rebuild it with 'simlink build-index'"
                )
            return cls(
                tokenizer=TokenizerIdentity(**raw["tokenizer"]),
                special_tokens=SpecialTokens(**raw["special_tokens"]),
                counts=dict(raw["counts"]),
                sources=dict(raw["sources"]),
                skipped_rows=dict(raw.get("skipped_rows", {})),
                format_version=version,
                built_at=raw.get("built_at", ""),
                name_vectors=_record(raw.get("name_vectors")),
            )
        except IndexLoadError:
            raise
        except FileNotFoundError as error:
            raise IndexLoadError(
                f"index at {directory} has no {MANIFEST_NAME} (not an index, or a partial build)"
            ) from error
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise IndexLoadError(f"corrupt index manifest {path}: {error}") from error

    def check_special_tokens(self, directory: Path, special: SpecialTokens) -> None:
        """Refuses an index whose end and separator ids differ from the model's."""
        if self.special_tokens != special:
            raise IndexLoadError(
                f"index at {directory} ends names with token {self.special_tokens.end} and separates "
                f"subject/predicate with {self.special_tokens.separator}, but the model uses {special.end} and "
                f"{special.separator}; rebuild the index with this model"
            )

    def check_tokenizer(self, directory: Path, tokenizer: TokenizerIdentity) -> None:
        """Refuses an index whose token ids come from a different tokenizer, naming both."""
        if self.tokenizer.vocab_sha256 != tokenizer.vocab_sha256:
            raise IndexLoadError(
                f"index at {directory} was built with tokenizer {self.tokenizer}, but the model uses "
                f"{tokenizer}; rebuild the index with this model's tokenizer"
            )
