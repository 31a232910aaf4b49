"""End to end: a live uvicorn serving /similarity with the embedded model."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from models.loader import embedded_model_dir
from models.similarity import METHOD_NAMES, SimilarityEngine
from models.similarity.encoder import TokenEncoder
from support.server import free_port, run_to_exit, running_server

pytestmark = pytest.mark.e2e

LIMITS = {
    "SIMLINK_DTYPE": "fp32",
    "SIMLINK_MAX_PAIRS": "8",
    "SIMLINK_MAX_CANDIDATES": "40",
    "SIMLINK_MAX_BODY_BYTES": "20000",
}
PAIRS = [
    {"a": "A man is playing a guitar.", "b": "A person plays the guitar."},
    {"a": "A man is playing a guitar.", "b": "Stocks fell sharply on Monday."},
    {"a": "The cat sleeps on the sofa.", "b": "A cat is napping on the couch."},
]
CANDIDATES = [
    "Stocks fell sharply on Monday.",
    "A person plays the guitar.",
    "A woman is slicing an onion.",
    "Someone is playing an instrument.",
    "The committee approved the budget.",
    "A man plays guitar on stage.",
] * 3


@pytest.fixture(scope="module")
def server() -> str:
    with running_server(LIMITS) as base_url:
        yield base_url


def post(server: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server}{path}", json=body, timeout=60)


def test_pairs_are_scored_in_order_as_the_engine_scores_them(server: str, encoder: TokenEncoder) -> None:
    for method in METHOD_NAMES:
        response = post(server, "/similarity", {"pairs": PAIRS, "method": method})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["method"] == method and body["model"] == "all-MiniLM-L6-v2"
        expected = SimilarityEngine(encoder).compare([(p["a"], p["b"]) for p in PAIRS], method)
        got = [r["similarity"] for r in body["results"]]
        assert got == pytest.approx([s.similarity for s in expected], abs=1e-5)
        assert got[0] > got[1] and got[2] > got[1]
        assert all("alignment" not in r for r in body["results"])


def test_alignment_explains_the_transport(server: str) -> None:
    body = post(server, "/similarity", {"pairs": PAIRS[:1], "alignment": True}).json()
    cells = body["results"][0]["alignment"]
    assert 0 < len(cells) <= 10
    assert {"a_token": "guitar", "b_token": "guitar"}.items() <= next(
        c for c in cells if c["a_token"] == "guitar"
    ).items()
    assert [c["mass"] for c in cells] == sorted((c["mass"] for c in cells), reverse=True)


def test_ranking_returns_the_exhaustive_top_k(server: str, encoder: TokenEncoder) -> None:
    source = "A man is playing a guitar."
    for method in ("anchored-wrd", "wrd", "wmd", "greedy"):
        response = post(
            server, "/similarity/rank", {"source": source, "candidates": CANDIDATES, "method": method, "top_k": 4}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        expected = SimilarityEngine(encoder).rank(source, CANDIDATES, method, 4, prune=False)
        assert [r["index"] for r in body["results"]] == [r.index for r in expected.results]
        assert CANDIDATES[body["results"][0]["index"]] in {"A person plays the guitar.", "A man plays guitar on stage."}
        if method != "greedy":
            assert body["exact_solves"] + body["pruned"] == len(CANDIDATES)


def test_concurrent_requests_get_their_own_answers(server: str) -> None:
    bodies = [{"pairs": [PAIRS[k % 3], PAIRS[(k + 1) % 3]], "method": "wrd"} for k in range(16)]
    sequential = [post(server, "/similarity", body).json()["results"] for body in bodies[:3]]
    with ThreadPoolExecutor(16) as pool:
        concurrent = list(pool.map(lambda body: post(server, "/similarity", body).json()["results"], bodies))
    for k, results in enumerate(concurrent):
        expected = [r["similarity"] for r in sequential[k % 3]]
        assert [r["similarity"] for r in results] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/similarity", {"pairs": [{"a": "", "b": "x"}]}, "pairs[0].a"),
        ("/similarity", {"pairs": [{"a": "x", "b": "   "}]}, "pairs[0].b"),
        ("/similarity", {"pairs": PAIRS, "method": "jaccard"}, "method"),
        ("/similarity", {"pairs": []}, "pairs"),
        ("/similarity", {"pairs": PAIRS * 3}, "pairs"),
        ("/similarity", {"pairs": [PAIRS[0], {"a": "x", "b": "word " * 300}]}, "pairs[1].b"),
        ("/similarity", {"pairs": PAIRS, "method": "wcd", "alignment": True}, "alignment"),
        ("/similarity", {"pairs": PAIRS, "colour": "blue"}, "colour"),
        ("/similarity/rank", {"source": "x", "candidates": ["y"] * 41}, "candidates"),
        ("/similarity/rank", {"source": "x", "candidates": ["y"], "top_k": 0}, "top_k"),
        ("/similarity/rank", {"source": "", "candidates": ["y"]}, "source"),
    ],
)
def test_bad_requests_get_422_naming_the_field(server: str, path: str, body: dict, field: str) -> None:
    response = post(server, path, body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["message"].startswith(f"{field}:")
    assert field in [entry["field"] for entry in payload["detail"]]


def test_truncation_is_done_only_when_asked_and_reported(server: str) -> None:
    body = {"pairs": [{"a": "word " * 300, "b": "x"}], "truncate": True}
    response = post(server, "/similarity", body)
    assert response.status_code == 200 and response.json()["truncated"] == ["pairs[0].a"]


def test_oversize_body_gets_413(server: str) -> None:
    response = post(server, "/similarity", {"pairs": [{"a": "x" * 30000, "b": "y"}]})
    assert response.status_code == 413 and "20000" in response.json()["message"]


def test_health_info_metrics_and_docs(server: str) -> None:
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    info = httpx.get(f"{server}/info").json()
    assert info["encoder"]["source"] == "embedded" and info["encoder"]["dtype"] == "fp32"
    assert info["encoder"]["dtype_reason"] == "set explicitly" and info["default_method"] == "anchored-wrd"
    assert info["limits"]["max_pairs"] == 8 and "wrd" in info["methods"]
    batching = info["batching"]
    assert batching["packing"] is True and batching["encoder_workers"] == 2
    assert batching["torch_threads"] == max(1, len(os.sched_getaffinity(0)) // 2)  # cores shared by the workers
    assert post(server, "/similarity", {"pairs": PAIRS[:1]}).status_code == 200  # so the counters exist
    metrics = httpx.get(f"{server}/metrics").text
    assert 'simlink_http_requests_total{route="/similarity",status="200"}' in metrics
    assert "simlink_model_batch_items_count" in metrics
    schema = httpx.get(f"{server}/openapi.json").json()
    request = schema["components"]["schemas"]["SimilarityRequest"]
    assert request["examples"][0]["pairs"] and "/similarity/rank" in schema["paths"]


def test_missing_model_directory_stops_start_up_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = run_to_exit(["serve", "--port", str(free_port()), "--model", str(missing)])
    assert done.returncode != 0
    assert str(missing) in done.stdout + done.stderr


def test_corrupt_model_stops_start_up_naming_it(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt-model"
    shutil.copytree(embedded_model_dir(), corrupt, ignore=shutil.ignore_patterns("model.safetensors"))
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    done = run_to_exit(["serve", "--port", str(free_port()), "--model", str(corrupt)])
    assert done.returncode != 0
    assert f"could not load model from {corrupt}" in done.stdout + done.stderr
