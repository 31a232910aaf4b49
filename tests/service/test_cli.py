"""The simlink command line: evaluate sts on small files written here, and its errors."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from service.cli import app

STSB_LINES = [
    "main-captions\tMSRvid\t2012test\t0001\t5.000\tA man is playing a guitar.\tA man plays the guitar.",
    "main-captions\tMSRvid\t2012test\t0002\t0.200\tA man is playing a guitar.\tStocks fell on Monday.",
    "main-captions\tMSRvid\t2012test\t0003\t3.800\tA cat sleeps on the sofa.\tA cat naps on a couch.",
    "main-captions\tMSRvid\t2012test\t0004\t0.500\tA woman slices an onion.\tThe budget was approved.\textra\tfields",
]


def test_evaluate_sts_prints_every_method(tmp_path: Path) -> None:
    data = tmp_path / "tiny.csv"
    data.write_text("\n".join(STSB_LINES) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", "sts", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "4 pairs" in result.output
    for method in ("wrd", "wmd", "rwmd", "wcd", "greedy"):
        line = next(line for line in result.output.splitlines() if f" {method} " in line)
        value = float(line.split("│")[-2])
        assert -100 <= value <= 100


def test_evaluate_sts_reads_sick(tmp_path: Path) -> None:
    data = tmp_path / "SICK_tiny.txt"
    rows = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
    rows += [
        f"{i}\t{line.split(chr(9))[5]}\t{line.split(chr(9))[6]}\t{1 + i}\tNEUTRAL" for i, line in enumerate(STSB_LINES)
    ]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", "sts", "--data", str(data), "--skip-special-tokens"])
    assert result.exit_code == 0, result.output
    assert "4 pairs" in result.output


def test_malformed_file_is_named_with_its_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(STSB_LINES[0] + "\nonly\tthree\tfields\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", "sts", "--data", str(data)])
    assert result.exit_code == 2
    assert f"{data}:2" in result.output
