"""Resumable output of bulk jobs: rows are appended to ``OUT.partial`` as they finish, in input order.

A job writes JSON lines to ``OUT.partial`` and flushes them to disk batch by batch; beside it,
``OUT.partial.json`` records what the job is (command, inputs' sizes and hashes, options) and what
it skipped. A killed job run again with the same command finds both, drops a half-written last
line, and continues after the last line it wrote, so the finished output has no gaps and no
duplicates. Only a finished job's output appears at ``OUT`` (renamed into place; converted to
Parquet when ``OUT`` ends in ``.parquet``). A ``.partial`` of another job (other inputs or
options) is never continued.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.kb import file_sha256

KEPT_PROBLEMS = 20


class OutputError(ValueError):
    """The output cannot be written or continued; the message says why and what to do."""


def describe_inputs(paths: list[Path]) -> list[dict[str, Any]]:
    """What identifies the inputs of a job: path, size and SHA-256 of each."""
    return [{"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": file_sha256(path)} for path in paths]


@dataclass
class JobOutput:
    """The output file of one job; see the module docstring. ``done_through`` is the input line
    after which the job continues (0 for a fresh start)."""

    path: Path
    job: dict[str, Any]
    done_through: int = 0
    written: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def partial(self) -> Path:
        return self.path.with_name(self.path.name + ".partial")

    @property
    def state(self) -> Path:
        return self.path.with_name(self.path.name + ".partial.json")

    @classmethod
    def open(cls, path: Path, job: dict[str, Any]) -> JobOutput:
        """A fresh output, or the continuation of the same job's ``.partial``.

        Raises :class:`OutputError` if ``path`` exists already, or if a ``.partial`` there belongs
        to a job with other inputs or options.
        """
        if path.suffix.lower() not in (".jsonl", ".json", ".parquet"):
            raise OutputError(f"{path}: the output must end in .jsonl or .parquet")
        if path.exists():
            raise OutputError(f"{path} exists; delete it or choose another --out")
        path.parent.mkdir(parents=True, exist_ok=True)
        output = cls(path, job)
        if output.partial.exists() and output.state.exists():
            output._continue()
        else:
            output.partial.write_bytes(b"")
            output._save_state()
        return output

    def _continue(self) -> None:
        saved = json.loads(self.state.read_text())
        if saved.get("job") != self.job:
            raise OutputError(
                f"{self.partial} belongs to another job (its inputs or options differ); "
                "delete it and its .partial.json to start over"
            )
        self.skipped, self.problems = saved.get("skipped", 0), saved.get("problems", [])
        self.done_through = saved.get("done_through", 0)
        complete = self._complete_lines()
        if complete:
            self.done_through = max(self.done_through, json.loads(complete[-1])["line"])
        self.written = len(complete)

    def _complete_lines(self) -> list[bytes]:
        """The whole lines of ``.partial``; a half-written last line (a kill mid-write) is cut off."""
        data = self.partial.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            with self.partial.open("r+b") as stream:
                stream.truncate(cut)
        return data[:cut].splitlines()

    def _save_state(self) -> None:
        state = {
            "job": self.job,
            "done_through": self.done_through,
            "skipped": self.skipped,
            "problems": self.problems,
        }
        temporary = self.state.with_name(self.state.name + ".tmp")
        temporary.write_text(json.dumps(state, ensure_ascii=False, indent=1))
        os.replace(temporary, self.state)

    def append(self, lines: list[str], through_line: int, problems: list[str]) -> None:
        """Appends finished rows (JSON texts) and records skipped ones, durably, as one step: after it
        the job continues after ``through_line`` whatever happens next."""
        if lines:
            with self.partial.open("a", encoding="utf-8") as stream:
                stream.write("".join(line + "\n" for line in lines))
                stream.flush()
                os.fsync(stream.fileno())
        self.written += len(lines)
        self.skipped += len(problems)
        self.problems.extend(problems[: max(0, KEPT_PROBLEMS - len(self.problems))])
        self.done_through = through_line
        if problems or not lines:
            self._save_state()

    def finish(self) -> None:
        """Moves the finished output to its path (as Parquet if the path says so) and drops the state."""
        if self.path.suffix.lower() == ".parquet":
            temporary = self.path.with_name(self.path.name + ".tmp")
            _jsonl_to_parquet(self.partial, temporary)
            os.replace(temporary, self.path)
            self.partial.unlink()
        else:
            os.replace(self.partial, self.path)
        self.state.unlink()


def _jsonl_to_parquet(source: Path, target: Path) -> None:
    try:
        import pyarrow as arrow
        import pyarrow.parquet as parquet
    except ImportError as error:
        raise OutputError("writing Parquet needs pyarrow: pip install 'simlink[ray]' or pyarrow") from error
    with source.open(encoding="utf-8") as stream:
        rows = [json.loads(line) for line in stream]
    parquet.write_table(arrow.Table.from_pylist(rows), target)
