"""Resumable output of bulk jobs: rows are appended to ``OUT.partial`` as they finish, in input order.

A job writes JSON lines to ``OUT.partial`` and flushes them to disk batch by batch. A row that
``--lenient`` skips is written there too, as a marker ``{"line": N, "skipped": "problem"}``, in its
place, so one flush records both and a resumed job counts every skip of every run. Beside it,
``OUT.partial.json`` records what the job is (command, inputs' sizes and hashes, model, options),
and ``OUT.partial.lock`` is held while a run writes, so that two runs of one job cannot interleave.

A killed job run again with the same command finds them, drops a half-written last line, and
continues after the last line it recorded, so the finished output has no gaps and no duplicates.
Only a finished job's output appears at ``OUT`` (the markers left out; converted to Parquet when
``OUT`` ends in ``.parquet``). A ``.partial`` of another job (other inputs or options) is never
continued. Whether bad rows stop the job or are skipped is not part of its identity: a job stopped
by a bad row continues with ``--lenient``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from index.kb import file_sha256

KEPT_PROBLEMS = 20
OUTPUT_SUFFIXES = (".jsonl", ".parquet")
_MARKER = re.compile(rb'^\{"line": (\d+), "skipped": ')
_LINE = re.compile(rb'^\{"line": (\d+)[,}]')


class OutputError(ValueError):
    """The output cannot be written or continued; the message says why and what to do."""


def describe_inputs(paths: list[Path]) -> list[dict[str, Any]]:
    """What identifies the inputs of a job: path, size and SHA-256 of each."""
    return [{"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": file_sha256(path)} for path in paths]


def skip_marker(line: int, problem: str) -> str:
    """The ``.partial`` line that records a skipped input row."""
    return json.dumps({"line": line, "skipped": problem}, ensure_ascii=False)


@dataclass
class JobOutput:
    """The output file of one job; see the module docstring. ``done_through`` is the input line
    after which the job continues (0 for a fresh start); ``written`` and ``skipped`` count rows over
    every run of the job."""

    path: Path
    job: dict[str, Any]
    done_through: int = 0
    written: int = 0
    skipped: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    _lock: IO[bytes] | None = field(default=None, repr=False)

    @property
    def partial(self) -> Path:
        return self.path.with_name(self.path.name + ".partial")

    @property
    def state(self) -> Path:
        return self.path.with_name(self.path.name + ".partial.json")

    @property
    def lock(self) -> Path:
        return self.path.with_name(self.path.name + ".partial.lock")

    @classmethod
    def open(cls, path: Path, job: dict[str, Any]) -> JobOutput:
        """A fresh output, or the continuation of the same job's ``.partial``.

        Raises :class:`OutputError` if ``path`` exists already, if another run of the job is
        writing, or if a ``.partial`` there belongs to a job with other inputs or options.
        """
        if path.suffix.lower() not in OUTPUT_SUFFIXES:
            raise OutputError(f"{path}: the output must end in {' or '.join(OUTPUT_SUFFIXES)}")
        if path.exists():
            raise OutputError(f"{path} exists; delete it or choose another --out")
        path.parent.mkdir(parents=True, exist_ok=True)
        output = cls(path, job)
        output._take_lock()
        if output.partial.exists() and output.state.exists():
            output._continue()
        else:
            output.partial.write_bytes(b"")
            output._save_state()
        return output

    def _take_lock(self) -> None:
        self._lock = self.lock.open("wb")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise OutputError(f"another run is writing {self.partial}; wait for it or stop it") from None

    def release(self) -> None:
        """Lets another run continue the job (also done by :meth:`finish`)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _continue(self) -> None:
        saved = json.loads(self.state.read_text())
        if saved.get("job") != self.job:
            self.release()
            raise OutputError(
                f"{self.partial} belongs to another job (its inputs, model or options differ); "
                "delete it and its .partial.json to start over"
            )
        for line in self._complete_lines():
            number = int(_LINE.match(line).group(1))  # type: ignore[union-attr]
            if _MARKER.match(line):
                self._count_skip(json.loads(line)["skipped"], number)
            else:
                self.written += 1
            self.done_through = number

    def _complete_lines(self) -> Iterator[bytes]:
        """The whole lines of ``.partial``, read as a stream, after cutting off a half-written last
        line (a kill mid-write)."""
        self._cut_half_written_line()
        with self.partial.open("rb") as stream:
            yield from (line.rstrip(b"\n") for line in stream)

    def _cut_half_written_line(self) -> None:
        with self.partial.open("r+b") as stream:
            end = stream.seek(0, os.SEEK_END)
            while end > 0:  # back through the file, a chunk at a time, to its last newline
                start = max(0, end - (1 << 16))
                stream.seek(start)
                chunk = stream.read(end - start)
                if (newline := chunk.rfind(b"\n")) >= 0:
                    end = start + newline + 1
                    break
                end = start
            stream.truncate(end)

    def _count_skip(self, problem: str, line: int) -> None:
        self.skipped += 1
        if len(self.problems) < KEPT_PROBLEMS:
            self.problems.append((line, problem))

    def _save_state(self) -> None:
        temporary = self.state.with_name(self.state.name + ".tmp")
        temporary.write_text(json.dumps({"job": self.job}, ensure_ascii=False, indent=1))
        os.replace(temporary, self.state)

    def append(self, rows: list[tuple[int, str, str]]) -> None:
        """Appends finished rows ``(line, output JSON, "")`` and skipped ones ``(line, "", problem)``,
        in input order, durably, as one step."""
        if not rows:
            return
        lines = [text if not problem else skip_marker(line, problem) for line, text, problem in rows]
        with self.partial.open("a", encoding="utf-8") as stream:
            stream.write("".join(line + "\n" for line in lines))
            stream.flush()
            os.fsync(stream.fileno())
        for line, _, problem in rows:
            if problem:
                self._count_skip(problem, line)
            else:
                self.written += 1
        self.done_through = rows[-1][0]

    def finish(self) -> None:
        """Writes the finished output at its path (without skip markers; as Parquet if the path says
        so), then drops the ``.partial`` files."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        rows = (line for line in self._complete_lines() if not _MARKER.match(line))
        if self.path.suffix.lower() == ".parquet":
            _write_parquet(rows, temporary)
        else:
            with temporary.open("wb") as stream:
                stream.writelines(line + b"\n" for line in rows)
        os.replace(temporary, self.path)
        for leftover in (self.partial, self.state):
            leftover.unlink()
        self.release()
        self.lock.unlink(missing_ok=True)


def _write_parquet(lines: Iterable[bytes], target: Path) -> None:
    try:
        import pyarrow as arrow
        import pyarrow.parquet as parquet
    except ImportError as error:
        raise OutputError("writing Parquet needs pyarrow: pip install 'simlink[ray]'") from error
    parquet.write_table(arrow.Table.from_pylist([json.loads(line) for line in lines]), target)
