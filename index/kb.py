"""Readers for a user's knowledge base: entities (JSONL) and facts (TSV or KgCLUE ``|||`` lines).

Every bad row is either an error naming the file and line, or, when the caller asks for
leniency, skipped and counted in a :class:`ReadReport`; nothing is dropped silently.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

KGCLUE_SEPARATOR = "|||"


class KbFormatError(ValueError):
    """A knowledge-base row that cannot be read; the message names the file and line."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class Entity:
    """One knowledge-base entity; ``name`` is what the linker generates, aliases help training."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Fact:
    """One ``subject  predicate  object`` triple; the subject is an entity name."""

    subject: str
    predicate: str
    object: str


@dataclass
class ReadReport:
    """What a lenient read skipped: how many rows, and the first few problems (by line) verbatim.

    Problems are kept in line order even when they are found out of order (the index builder
    finds repeated ids a batch of rows after the rows' other problems).
    """

    path: Path
    rows: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    _lines: list[int] = field(default_factory=list, init=False, repr=False, compare=False)

    def skip(self, error: KbFormatError, keep: int = 20) -> None:
        self.skipped += 1
        place = bisect.bisect_right(self._lines, error.line)
        if place < keep:
            self._lines.insert(place, error.line)
            self.problems.insert(place, str(error))
            del self._lines[keep:], self.problems[keep:]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (sources may be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file (a leading BOM dropped) with their 1-based numbers.

    A line that is not UTF-8 raises :class:`KbFormatError` with its number (skippable like any bad row).
    """
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                yield number, _NotUtf8(f"not UTF-8 text ({error.reason} at byte {error.start})")
                continue
            if line.strip():
                yield number, line


class _NotUtf8(str):
    """A line that could not be decoded; readers turn it into a :class:`KbFormatError` for its line."""


def _check_decoded(text: str, path: Path, line: int) -> None:
    if isinstance(text, _NotUtf8):
        raise KbFormatError(path, line, str(text))


def _text_field(row: dict, key: str, path: Path, line: int, required: bool = True) -> str:
    value = row.get(key, "" if not required else None)
    if not isinstance(value, str) or (required and not value.strip()):
        raise KbFormatError(path, line, f'"{key}" must be a non-empty string')
    return value.strip()


def parse_json_object(text: str, path: Path, line: int) -> dict:
    """One JSONL row, which must be an object; :class:`KbFormatError` naming file and line otherwise."""
    _check_decoded(text, path, line)
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        raise KbFormatError(path, line, f"invalid JSON ({error.msg})") from error
    if not isinstance(row, dict):
        raise KbFormatError(path, line, "expected a JSON object")
    return row


def _parse_entity(text: str, path: Path, line: int) -> Entity:
    row = parse_json_object(text, path, line)
    aliases = row.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
        raise KbFormatError(path, line, '"aliases" must be a list of strings')
    return Entity(
        id=_text_field(row, "id", path, line),
        name=_text_field(row, "name", path, line),
        aliases=tuple(alias.strip() for alias in aliases if alias.strip()),
        description=_text_field(row, "description", path, line, required=False),
    )


def _parse_fact(text: str, path: Path, line: int) -> Fact:
    _check_decoded(text, path, line)
    parts = text.split(KGCLUE_SEPARATOR) if KGCLUE_SEPARATOR in text else text.split("\t")
    parts = [part.strip() for part in parts]
    if len(parts) != 3 or not all(parts):
        raise KbFormatError(
            path,
            line,
            f"expected 'subject<TAB>predicate<TAB>object' or 'subject ||| predicate ||| object', "
            f"got {len(parts)} field(s)",
        )
    return Fact(*parts)


def duplicate_id(path: Path, line: int, entity_id: str) -> KbFormatError:
    """The error for an entity id already used on an earlier line."""
    return KbFormatError(path, line, f"duplicate entity id {entity_id!r}")


def numbered_entities(path: Path, report: ReadReport | None = None) -> Iterator[tuple[int, Entity]]:
    """Entities of a JSONL file with their line numbers, *not* checked for repeated ids.

    For callers that find repeated ids themselves without a set of every id (the index builder
    lets its database's primary key do it). Bad rows raise or are skipped as in
    :func:`read_entities`; ``report.rows`` is left to the caller, which decides which rows it keeps.
    """
    for line, text in numbered_lines(path):
        try:
            entity = _parse_entity(text, path, line)
        except KbFormatError as error:
            if report is None:
                raise
            report.skip(error)
            continue
        yield line, entity


def read_entities(path: Path, report: ReadReport | None = None) -> Iterator[Entity]:
    """Entities from a JSONL file ``{"id", "name", "aliases"?, "description"?}``.

    Without a ``report`` the first bad row raises :class:`KbFormatError`; with one, bad rows
    (and repeated ids) are skipped and counted there.
    """
    seen: set[str] = set()
    for line, entity in numbered_entities(path, report):
        if entity.id in seen:
            if report is None:
                raise duplicate_id(path, line, entity.id)
            report.skip(duplicate_id(path, line, entity.id))
            continue
        seen.add(entity.id)
        if report is not None:
            report.rows += 1
        yield entity


def read_facts(path: Path, report: ReadReport | None = None) -> Iterator[Fact]:
    """Facts from TSV (``s<TAB>p<TAB>o``) or KgCLUE (``s ||| p ||| o``) lines, in any mix.

    Error handling as in :func:`read_entities`.
    """
    for line, text in numbered_lines(path):
        try:
            fact = _parse_fact(text, path, line)
        except KbFormatError as error:
            if report is None:
                raise
            report.skip(error)
            continue
        if report is not None:
            report.rows += 1
        yield fact
