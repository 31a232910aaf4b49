"""The bulk jobs on small files with the real model: the same results as the engines, in input order,
bad rows named or skipped, and a killed job continued without gaps or duplicates."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from jobs import bulk
from jobs.runner import BadRowError, RunPlan
from jobs.tasks import ScoreOptions
from models.linking import LinkerSpec, LinkQuery
from models.similarity import EncoderSpec, SimilarityEngine
from tests.conftest import TinyLinker

PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar."),
    ("A woman slices an onion.", "The budget was approved."),
    ("Two dogs run in a field.", "Dogs are running outside."),
    ("A cat sleeps on the sofa.", "A cat naps on a couch."),
    ("The stock market fell.", "Shares dropped sharply."),
]
PLAN = RunPlan(workers=2, threads=1, batch_size=2)  # several batches in flight, so order is tested


def _pairs_file(path: Path, pairs: Iterable[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_score_gives_the_engines_scores_in_input_order(tmp_path: Path, encoder) -> None:
    out = tmp_path / "scores.jsonl"
    summary = bulk.score(_pairs_file(tmp_path / "pairs.tsv", PAIRS), out, EncoderSpec(), ScoreOptions(), PLAN)
    expected = SimilarityEngine(encoder).compare(PAIRS)
    assert summary.written == len(PAIRS) and summary.skipped == 0
    rows = _rows(out)
    assert [row["line"] for row in rows] == [1, 2, 3, 4, 5]
    assert [sorted(row) for row in rows] == [["distance", "line", "similarity"]] * len(PAIRS)
    # other batches pack texts into other rows of the forward pass: equal up to float rounding
    assert [row["similarity"] for row in rows] == pytest.approx([s.similarity for s in expected], abs=1e-6)
    assert [row["distance"] for row in rows] == pytest.approx([s.distance for s in expected], abs=1e-6)


def test_a_bad_row_stops_the_job_naming_its_line_after_the_rows_before_it(tmp_path: Path) -> None:
    source = tmp_path / "pairs.tsv"
    source.write_text("a\tb\nc\td\nno tab here\ne\tf\n", encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    with pytest.raises(BadRowError, match=r"pairs\.tsv:3: expected 2 tab-separated fields"):
        bulk.score(source, out, EncoderSpec(), ScoreOptions(), PLAN)
    assert [row["line"] for row in _rows(out.with_name("scores.jsonl.partial"))] == [1, 2]
    assert not out.exists()


def test_lenient_skips_and_counts_unreadable_and_too_long_rows(tmp_path: Path) -> None:
    long_text = " ".join(["word"] * 40)
    source = tmp_path / "pairs.jsonl"
    rows = [{"a": "x", "b": "y"}, {"a": long_text, "b": "y"}, {"a": "x"}, {"a": "one", "b": "two"}]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    summary = bulk.score(source, out, EncoderSpec(max_tokens=16), ScoreOptions(), PLAN, lenient=True)
    assert [row["line"] for row in _rows(out)] == [1, 4]
    assert summary.skipped == 2
    assert summary.problems[0].startswith(f'{source}:2: "a" has ') and "16" in summary.problems[0]
    assert summary.problems[1] == f'{source}:3: "b" must be a string, got nothing'


def test_truncate_scores_a_long_row_instead(tmp_path: Path) -> None:
    source = _pairs_file(tmp_path / "pairs.tsv", [(" ".join(["word"] * 40), "word")])
    out = tmp_path / "scores.jsonl"
    bulk.score(source, out, EncoderSpec(max_tokens=16), ScoreOptions(truncate=True), PLAN)
    assert len(_rows(out)) == 1


class _KilledAfter:
    """A progress display that stops the job (as a kill would) after ``batches`` batches."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def __call__(self, items, description, total=None):
        for count, item in enumerate(items):
            if count == self.batches:
                raise KeyboardInterrupt
            yield item


def test_a_killed_job_continues_where_it_stopped(tmp_path: Path) -> None:
    source = _pairs_file(tmp_path / "pairs.tsv", PAIRS * 3)
    whole, resumed = tmp_path / "whole.jsonl", tmp_path / "resumed.jsonl"
    bulk.score(source, whole, EncoderSpec(), ScoreOptions(), PLAN)
    with pytest.raises(KeyboardInterrupt):
        bulk.score(source, resumed, EncoderSpec(), ScoreOptions(), PLAN, progress=_KilledAfter(3))
    summary = bulk.score(source, resumed, EncoderSpec(), ScoreOptions(), PLAN)
    assert summary.resumed_after == 6
    assert resumed.read_bytes() == whole.read_bytes()


def test_changed_options_do_not_continue_an_old_partial(tmp_path: Path) -> None:
    from jobs.output import OutputError

    source = _pairs_file(tmp_path / "pairs.tsv", PAIRS)
    out = tmp_path / "scores.jsonl"
    with pytest.raises(KeyboardInterrupt):
        bulk.score(source, out, EncoderSpec(), ScoreOptions(), PLAN, progress=_KilledAfter(1))
    with pytest.raises(OutputError, match="another job"):
        bulk.score(source, out, EncoderSpec(), ScoreOptions(method="wmd"), PLAN)


def test_rank_gives_the_engines_ranking_per_query(tmp_path: Path, encoder) -> None:
    corpus = [b for _, b in PAIRS]
    queries = [a for a, _ in PAIRS[:3]]
    (tmp_path / "corpus.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"text": q}) + "\n" for q in queries))
    out = tmp_path / "ranked.jsonl"
    bulk.rank(tmp_path / "queries.jsonl", tmp_path / "corpus.txt", out, EncoderSpec(), ScoreOptions(), 2, PLAN)
    engine = SimilarityEngine(encoder)
    for line, (row, query) in enumerate(zip(_rows(out), queries, strict=True), start=1):
        ranking = engine.rank(query, corpus, top_k=2)
        assert row["line"] == line
        assert [r["index"] for r in row["results"]] == [r.index for r in ranking.results]
        assert [r["similarity"] for r in row["results"]] == pytest.approx(
            [r.similarity for r in ranking.results], abs=1e-6
        )
        assert row["exact_solves"] + row["pruned"] == len(corpus)


def test_link_rows_narrow_by_candidates_and_name_unknown_ids(tmp_path: Path, tiny_linker: TinyLinker) -> None:
    text = "Which Paris is the capital of France?"
    rows = [
        {"text": text, "candidates": ["person:paris"]},
        {"text": text, "candidates": ["person:paris", "city:nowhere"]},
        {"text": text, "candidates": "auto", "top_k": 3},
    ]
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "linked.jsonl"
    spec = LinkerSpec(str(tiny_linker.model_dir), tiny_linker.index_dir)
    summary = bulk.link(source, out, spec, RunPlan(batch_size=3), lenient=True)
    written = _rows(out)
    assert [row["line"] for row in written] == [1, 3]
    assert [r["id"] for r in written[0]["results"]] == ["person:paris"], "only the candidate is answered"
    expected = spec.open().link([LinkQuery(text, top_k=3, candidates="auto")])[0]
    assert [r["id"] for r in written[1]["results"]] == [m.id for m in expected]
    assert summary.skipped == 1 and "\"candidates\" has 1 unknown entity id(s): 'city:nowhere'" in summary.problems[0]


def test_link_gives_the_engines_matches(tmp_path: Path, tiny_linker: TinyLinker) -> None:
    texts = ["What is the capital of [START_ENT] France [END_ENT]?", "Which currency does Japan use?"]
    source = tmp_path / "texts.jsonl"
    source.write_text(
        json.dumps({"text": texts[0], "top_k": 2}) + "\n" + json.dumps({"text": texts[1], "task": "kbqa"}) + "\n"
    )
    out = tmp_path / "linked.jsonl"
    spec = LinkerSpec(str(tiny_linker.model_dir), tiny_linker.index_dir)
    bulk.link(source, out, spec, RunPlan(batch_size=1))
    engine = spec.open()
    expected = engine.link([LinkQuery(texts[0], top_k=2), LinkQuery(texts[1], "kbqa")])
    rows = _rows(out)
    assert [row["line"] for row in rows] == [1, 2]
    assert [r["id"] for r in rows[0]["results"]] == [m.id for m in expected[0]]
    assert [r["score"] for r in rows[0]["results"]] == pytest.approx([m.score for m in expected[0]], abs=1e-4)
    spans = [m.mention and {"start": m.mention[0], "end": m.mention[1]} for m in expected[0]]
    assert [r.get("mention") for r in rows[0]["results"]] == spans and any(spans), "written names carry their span"
    assert [(r["subject"], r["predicate"], r["answers"]) for r in rows[1]["results"]] == [
        (m.subject, m.predicate, list(m.answers)) for m in expected[1]
    ]
