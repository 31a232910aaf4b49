"""End to end: build the demo index and a briefly trained model with the CLI, serve them, POST /link-entity."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from support.data import REPO
from support.server import run_to_exit, running_server

pytestmark = pytest.mark.e2e
DEMO = REPO / "examples" / "demo_kb"


def _run(args: list[str]) -> None:
    result = run_to_exit(args, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def demo_linker(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model trained for a few dozen steps on the demo KB (enough to serve, not to be good), and its index."""
    root = tmp_path_factory.mktemp("demo")
    kb = ["--entities", str(DEMO / "entities.jsonl"), "--facts", str(DEMO / "triples.tsv")]
    _run(["train", *kb, "--out", str(root / "model"), "--epochs", "0.1", "--batch-size", "8"])
    _run(["build-index", *kb, "--out", str(root / "index"), "--model", str(root / "model"), "--name-vectors"])
    return root / "model", root / "index"


@pytest.fixture(scope="module")
def server(demo_linker: tuple[Path, Path]) -> str:
    model, index = demo_linker
    with running_server({"SIMLINK_LINK_MODEL": str(model), "SIMLINK_LINK_INDEX": str(index)}) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def demo_kb() -> tuple[dict[str, str], set[tuple[str, str]]]:
    names = {}
    for line in (DEMO / "entities.jsonl").read_text().splitlines():
        entity = json.loads(line)
        names[entity["id"]] = entity["name"]
    pairs = {tuple(line.split("\t")[:2]) for line in (DEMO / "triples.tsv").read_text().splitlines() if line}
    return names, pairs


def post(server: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server}/link-entity", json=body, timeout=120)


def test_entity_results_exist_in_the_kb(server: str, demo_kb) -> None:
    names, _ = demo_kb
    text = "The Seine flows through Paris."
    response = post(server, {"text": text, "mention": {"start": 24, "end": 29}, "top_k": 3, "num_beams": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "entity" and body["index"].endswith("index") and body["model"]
    assert 1 <= len(body["results"]) <= 3
    for result in body["results"]:
        assert names[result["id"]] == result["name"] and result["score"] <= 0


def test_candidates_restrict_the_answer(server: str, demo_kb) -> None:
    names, _ = demo_kb
    chosen = sorted(names)[:2]
    body = post(server, {"text": "Which one is it?", "candidates": chosen, "top_k": 2, "num_beams": 2}).json()
    assert body["results"] and {r["id"] for r in body["results"]} <= set(chosen)


def test_kbqa_results_are_real_pairs_with_answers(server: str, demo_kb) -> None:
    _, pairs = demo_kb
    body = post(server, {"text": "What is the capital of Japan?", "task": "kbqa", "top_k": 2, "num_beams": 4}).json()
    assert body["task"] == "kbqa" and body["results"]
    for result in body["results"]:
        assert (result["subject"], result["predicate"]) in pairs and result["answers"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "Paris", "mention": {"start": 2, "end": 9}}, "mention.end"),
        ({"text": "Paris", "mention": {"start": 3, "end": 3}}, "mention.end"),
        ({"text": "Paris", "mention": {"start": -1, "end": 3}}, "mention.start"),
        ({"text": "Paris", "candidates": ["city:atlantis"]}, "candidates"),
        ({"text": "Paris", "candidates": []}, "candidates"),
        ({"text": "Paris", "task": "kbqa", "candidates": ["x"]}, "candidates"),
        ({"text": "Paris", "task": "sql"}, "task"),
        ({"text": "Paris", "top_k": 6, "num_beams": 5}, "top_k"),
        ({"text": "Paris", "num_beams": 500}, "num_beams"),
        ({"text": "Paris", "beams": 5}, "beams"),
    ],
)
def test_bad_requests_get_422_naming_the_field(server: str, body: dict, field: str) -> None:
    response = post(server, body)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(f"{field}:") or f" {field}:" in response.json()["message"]


def test_info_reports_the_linker_and_its_manifest(server: str, demo_linker: tuple[Path, Path]) -> None:
    info = httpx.get(f"{server}/info").json()
    _, index = demo_linker
    assert info["linker"]["index"]["path"] == str(index)
    assert info["linker"]["index"]["manifest"]["counts"]["entities"] > 100
    assert info["linker"]["model"]["architecture"] == "EncoderDecoderModel"
    assert info["linker"]["dense_candidates"] == 5
    assert (
        info["linker"]["index"]["manifest"]["name_vectors"]["count"]
        == info["linker"]["index"]["manifest"]["counts"]["distinct_names"]
    )


def test_auto_candidates_answer_from_the_names_written_or_nearest(server: str, demo_kb) -> None:
    names, _ = demo_kb
    body = {"text": "Is the Seine in Frnace?", "candidates": "auto", "top_k": 6, "num_beams": 6}  # every candidate
    response = post(server, body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results and all(names[result["id"]] == result["name"] for result in results)
    assert any(r["name"] == "Seine" for r in results), "the name the question writes is a candidate"
    assert any("mention" not in r for r in results), "names the question does not write join through their vectors"


def test_name_vectors_from_another_encoder_stop_the_start_naming_both(demo_linker: tuple[Path, Path]) -> None:
    model, index = demo_linker
    args = ["serve", "--link-model", str(model), "--link-index", str(index)]
    result = run_to_exit(args, env={"SIMLINK_LAYER": "-2"})
    assert result.returncode == 2, result.stderr
    assert f"index at {index} holds name vectors from 'all-MiniLM-L6-v2 (weights " in result.stderr
    assert "), layer -1, mean of token vectors'" in result.stderr
    assert "layer -2" in result.stderr and "SIMLINK_LINK_DENSE_CANDIDATES=0" in result.stderr
    env = {"SIMLINK_LINK_MODEL": str(model), "SIMLINK_LINK_INDEX": str(index)}
    with running_server({**env, "SIMLINK_LAYER": "-2", "SIMLINK_LINK_DENSE_CANDIDATES": "0"}) as base_url:
        assert httpx.get(f"{base_url}/info").json()["linker"]["dense_candidates"] == 0


def test_unconfigured_linking_is_503_while_similarity_works() -> None:
    with running_server() as base_url:
        response = post(base_url, {"text": "Paris"})
        assert response.status_code == 503 and "SIMLINK_LINK_MODEL" in response.json()["message"]
        pair = {"pairs": [{"a": "a cat", "b": "a dog"}]}
        assert httpx.post(f"{base_url}/similarity", json=pair, timeout=60).status_code == 200
        assert httpx.get(f"{base_url}/info").json()["linker"] is None


def test_missing_index_is_a_startup_error_naming_the_path(demo_linker: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = demo_linker
    result = run_to_exit(["serve", "--link-model", str(model), "--link-index", str(tmp_path / "no-index")])
    assert result.returncode == 2 and f"no index at {tmp_path / 'no-index'}" in result.stderr
