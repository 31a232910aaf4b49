"""The simlink command line: evaluate sts on small files written here, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.similarity import METHOD_NAMES
from service.cli import app
from tests.conftest import TinyLinker

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
    for method in METHOD_NAMES:
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


def test_score_command_writes_rows_and_reports_skips(tmp_path: Path) -> None:
    source = tmp_path / "pairs.tsv"
    source.write_text("A man plays a guitar.\tA man is playing guitar.\nno tab\n", encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(app, ["score", "--input", str(source), "--out", str(out), "--lenient"])
    assert result.exit_code == 0, result.output
    assert f"wrote 1 row(s) to {out}" in result.output
    assert f"{source}:2: expected 2 tab-separated fields" in result.output
    assert out.read_text().startswith('{"line": 1, "distance": ')


def test_bulk_commands_fail_clearly(tmp_path: Path) -> None:
    source = tmp_path / "pairs.tsv"
    source.write_text("a\tb\nno tab\n", encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    runner = CliRunner()
    bad_method = runner.invoke(app, ["score", "--input", str(source), "--out", str(out), "--method", "jaccard"])
    assert bad_method.exit_code == 2 and "--method must be one of" in bad_method.output
    bad_row = runner.invoke(app, ["score", "--input", str(source), "--out", str(out)])
    assert bad_row.exit_code == 2 and f"error: {source}:2: expected 2 tab-separated fields" in bad_row.output
    out.write_text("kept\n")
    exists = runner.invoke(app, ["score", "--input", str(source), "--out", str(out), "--lenient"])
    assert exists.exit_code == 2 and "exists; delete it" in exists.output and out.read_text() == "kept\n"
    no_linker = runner.invoke(app, ["link", "--input", str(source), "--out", str(tmp_path / "l.jsonl")])
    assert no_linker.exit_code == 2 and "--model and --index are needed" in no_linker.output


def test_link_refuses_rows_over_the_server_settings_limits(
    tmp_path: Path, tiny_linker: TinyLinker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIMLINK_MAX_BEAMS", "4")
    source = tmp_path / "texts.jsonl"
    rows = [{"text": "Which currency does Japan use?", "top_k": 2, "num_beams": 4}, {"text": "Paris", "num_beams": 5}]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "linked.jsonl"
    model, index = str(tiny_linker.model_dir), str(tiny_linker.index_dir)
    args = ["link", "--input", str(source), "--out", str(out), "--model", model, "--index", index]
    strict = CliRunner().invoke(app, args)
    assert strict.exit_code == 2 and '2: "num_beams" is 5, more than the limit of 4' in strict.output
    lenient = CliRunner().invoke(app, [*args, "--lenient"])
    assert lenient.exit_code == 0, lenient.output
    assert [json.loads(line)["line"] for line in out.read_text().splitlines()] == [1]


def test_tune_writes_a_model_that_evaluate_sts_loads(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.tsv"
    sentences = [line.split("\t")[5:7] for line in STSB_LINES]
    pairs.write_text("".join(f"{a}\t{b}\t{score}\n" for score, (a, b) in enumerate(sentences)))
    out = tmp_path / "tuned"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["tune", "--pairs", str(pairs), "--out", str(out), "--epochs", "1", "--batch-size", "2", "--dev", str(pairs)],
    )
    assert result.exit_code == 0, result.output
    assert "stopped by epochs at step 2" in result.output and "Spearman x 100 of anchored-wrd" in result.output
    assert f"SIMLINK_MODEL={out}" in result.output
    evaluated = runner.invoke(app, ["evaluate", "sts", "--data", str(pairs), "--model", str(out), "--dtype", "fp32"])
    assert evaluated.exit_code == 0 and "tuned (fp32, set explicitly)" in evaluated.output, evaluated.output
    refused = runner.invoke(app, ["tune", "--pairs", str(pairs), "--out", str(out), "--method", "greedy"])
    assert refused.exit_code == 2 and "cannot be tuned" in refused.output


def test_train_says_what_it_added_to_the_vocabulary(chinese_bert: Path, tmp_path: Path) -> None:
    from tests.conftest import write_chinese_kb

    entities, facts = write_chinese_kb(tmp_path / "kb")
    kb = ["--entities", str(entities), "--facts", str(facts)]
    runner = CliRunner()
    common = [*kb, "--model", str(chinese_bert), "--max-steps", "1", "--batch-size", "4"]
    result = runner.invoke(app, ["train", *common, "--out", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("vocabulary: "))
    assert "vocabulary: added " in line and line.endswith("-> 0.0%")
    built = runner.invoke(app, ["build-index", *kb, "--model", str(tmp_path / "model"), "--out", str(tmp_path / "i")])
    assert built.exit_code == 0, built.output
    plain = runner.invoke(app, ["train", *common, "--out", str(tmp_path / "plain"), "--no-extend-vocab"])
    assert plain.exit_code == 0, plain.output
    assert "vocabulary: added 0 token(s); [UNK] share" in plain.output


def test_build_index_stores_name_vectors_when_asked(tmp_path: Path) -> None:
    from index.linking_index import LinkingIndex
    from tests.conftest import write_tiny_kb

    entities, facts = write_tiny_kb(tmp_path / "kb")
    kb = ["--entities", str(entities), "--facts", str(facts)]
    result = CliRunner().invoke(app, ["build-index", *kb, "--out", str(tmp_path / "index"), "--name-vectors"])
    assert result.exit_code == 0, result.output
    assert "name vectors: 5 names from all-MiniLM-L6-v2 (weights " in result.output
    assert "), layer -1, mean of token vectors" in result.output
    index = LinkingIndex.open(tmp_path / "index")
    assert index.name_vectors is not None and index.name_vectors.vectors.shape == (5, 384)
    plain = CliRunner().invoke(app, ["build-index", *kb, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0 and "name vectors" not in plain.output
    assert LinkingIndex.open(tmp_path / "plain").name_vectors is None
