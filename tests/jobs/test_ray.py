"""The bulk jobs on Ray Data (a real local Ray, two CPUs) give byte-identical output to the local runner.

Ray is the optional extra ``simlink[ray]``, which the test install includes: these tests skip only
where the extra is not installed, and fail instead under CI, which must run them.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from jobs import bulk
from jobs.runner import RunPlan
from jobs.tasks import ScoreOptions
from models.linking import LinkerSpec
from models.similarity import EncoderSpec
from tests.conftest import TinyLinker
from tests.jobs.test_bulk import PAIRS

try:
    import ray
except ImportError:  # pragma: no cover - depends on the install
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray is not installed: pip install -e '.[ray]' (make test installs it)", allow_module_level=True)

LOCAL = RunPlan(engine="local", workers=2, threads=1, batch_size=2)
ON_RAY = replace(LOCAL, engine="ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module (its start costs seconds); the jobs join it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _both(run, tmp_path: Path) -> tuple[bytes, bytes]:
    run(tmp_path / "local.jsonl", LOCAL)
    run(tmp_path / "ray.jsonl", ON_RAY)
    return (tmp_path / "local.jsonl").read_bytes(), (tmp_path / "ray.jsonl").read_bytes()


def test_score_on_ray_equals_local(tmp_path: Path) -> None:
    source = tmp_path / "pairs.tsv"
    source.write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS * 2) + "bad row\n", encoding="utf-8")

    def run(out: Path, plan: RunPlan) -> None:
        summary = bulk.score(source, out, EncoderSpec(), ScoreOptions(), plan, lenient=True)
        assert (summary.written, summary.skipped) == (2 * len(PAIRS), 1)

    local, on_ray = _both(run, tmp_path)
    assert local == on_ray and len(local.splitlines()) == 2 * len(PAIRS)


def test_rank_on_ray_equals_local(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text("".join(b + "\n" for _, b in PAIRS), encoding="utf-8")
    (tmp_path / "queries.txt").write_text("".join(a + "\n" for a, _ in PAIRS), encoding="utf-8")

    def run(out: Path, plan: RunPlan) -> None:
        bulk.rank(tmp_path / "queries.txt", tmp_path / "corpus.txt", out, EncoderSpec(), ScoreOptions(), 3, plan)

    local, on_ray = _both(run, tmp_path)
    assert local == on_ray and len(local.splitlines()) == len(PAIRS)


def test_link_on_ray_equals_local(tmp_path: Path, tiny_linker: TinyLinker) -> None:
    source = tmp_path / "texts.jsonl"
    rows = [
        {"text": "Where is [START_ENT] Paris [END_ENT]?"},
        {"text": "Which currency does Japan use?", "task": "kbqa"},
    ]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    spec = LinkerSpec(str(tiny_linker.model_dir), tiny_linker.index_dir)

    def run(out: Path, plan: RunPlan) -> None:
        bulk.link(source, out, spec, replace(plan, workers=1, threads=2))

    local, on_ray = _both(run, tmp_path)
    assert local == on_ray and len(local.splitlines()) == len(rows)
