"""Resumable job output: appends in order, continues after a kill, refuses another job's leftovers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.output import JobOutput, OutputError

JOB = {"command": "score", "inputs": [{"path": "/x", "bytes": 1, "sha256": "0"}]}


def _texts(lines: range) -> list[str]:
    return [json.dumps({"line": line, "similarity": line / 10}) for line in lines]


def _rows(lines: range) -> list[tuple[int, str, str]]:
    return [(line, text, "") for line, text in zip(lines, _texts(lines), strict=True)]


def test_finished_output_appears_only_at_the_end(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    output = JobOutput.open(out, JOB)
    output.append(_rows(range(1, 4)))
    assert not out.exists() and output.partial.exists()
    output.finish()
    assert out.read_text().splitlines() == _texts(range(1, 4))
    assert not output.partial.exists() and not output.state.exists() and not output.lock.exists()


def test_a_killed_job_continues_after_its_last_whole_line(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = JobOutput.open(out, JOB)
    first.append([*_rows(range(1, 4)), (4, "", "bad"), *_rows(range(5, 6))])
    with first.partial.open("a") as stream:
        stream.write('{"line": 6, "simil')  # killed mid-write
    first.release()
    again = JobOutput.open(out, JOB)
    assert (again.done_through, again.written, again.skipped, again.problems) == (5, 4, 1, [(4, "bad")])
    again.append(_rows(range(6, 8)))
    again.finish()
    assert [json.loads(line)["line"] for line in out.read_text().splitlines()] == [1, 2, 3, 5, 6, 7]


def test_skipped_rows_at_the_end_of_a_batch_are_not_redone(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = JobOutput.open(out, JOB)
    first.append([*_rows(range(1, 3)), (3, "", "bad"), (4, "", "worse")])
    first.release()
    again = JobOutput.open(out, JOB)
    assert (again.done_through, again.skipped) == (4, 2)


def test_two_runs_of_one_job_cannot_write_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    running = JobOutput.open(out, JOB)
    with pytest.raises(OutputError, match="another run is writing"):
        JobOutput.open(out, JOB)
    running.release()
    JobOutput.open(out, JOB).release()


def test_another_jobs_partial_is_not_continued(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = JobOutput.open(out, JOB)
    first.append(_rows(range(1, 3)))
    first.release()
    with pytest.raises(OutputError, match="belongs to another job"):
        JobOutput.open(out, {**JOB, "method": "wmd"})


def test_an_existing_output_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    with pytest.raises(OutputError, match="exists; delete it"):
        JobOutput.open(out, JOB)
    assert out.read_text() == "precious\n"


def test_output_format_comes_from_the_extension(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"\.jsonl or \.parquet"):
        JobOutput.open(tmp_path / "out.csv", JOB)


def test_parquet_output_has_the_same_rows(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="Parquet needs the 'ray' extra (pyarrow)")
    import pyarrow.parquet as parquet

    output = JobOutput.open(tmp_path / "out.parquet", JOB)
    output.append([*_rows(range(1, 3)), (3, "", "bad")])
    output.finish()
    assert parquet.read_table(tmp_path / "out.parquet").to_pylist() == [json.loads(r) for r in _texts(range(1, 3))]
