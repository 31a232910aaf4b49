"""End to end in Chinese: train a tiny Chinese BERT on a tiny Chinese KB with the CLI (its missing
characters are added to the vocabulary), build the index, serve, POST /link-entity."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from support.server import run_to_exit, running_server
from tests.conftest import CHINESE_ENTITIES, CHINESE_FACTS, write_chinese_kb

pytestmark = pytest.mark.e2e
NAMES = {entity["id"]: entity["name"] for entity in CHINESE_ENTITIES}
PAIRS = {tuple(part.strip() for part in fact.split("|||")[:2]) for fact in CHINESE_FACTS}


def _run(args: list[str]) -> str:
    result = run_to_exit(args, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def chinese_linker(tmp_path_factory: pytest.TempPathFactory, chinese_bert: Path) -> tuple[Path, Path, str]:
    """A tiny Chinese BERT warm-started as bert2bert and trained for a few hundred small steps (seconds)."""
    root = tmp_path_factory.mktemp("chinese")
    entities, facts = write_chinese_kb(root / "kb")
    kb = ["--entities", str(entities), "--facts", str(facts)]
    training = ["--epochs", "60", "--batch-size", "8", "--learning-rate", "3e-3", "--threads", "1"]
    log = _run(["train", *kb, "--model", str(chinese_bert), "--out", str(root / "model"), *training])
    _run(["build-index", *kb, "--out", str(root / "index"), "--model", str(root / "model")])
    return root / "model", root / "index", log


@pytest.fixture(scope="module")
def server(chinese_linker: tuple[Path, Path, str]) -> str:
    model, index, _ = chinese_linker
    with running_server({"SIMLINK_LINK_MODEL": str(model), "SIMLINK_LINK_INDEX": str(index)}) as base_url:
        yield base_url


def post(server: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server}/link-entity", json=body, timeout=120)


def test_training_spelled_every_character_of_the_kb(chinese_linker: tuple[Path, Path, str]) -> None:
    model, _, log = chinese_linker
    line = next(line for line in log.splitlines() if line.startswith("vocabulary: added "))
    assert line.endswith("-> 0.0%")
    assert json.loads((model / "dev_metrics.json").read_text())["vocabulary"]["unk_share_after"] == 0.0


@pytest.mark.parametrize(
    ("question", "subject", "predicate", "answer"),
    [
        ("北京的所属国家是什么？", "北京", "所属国家", "中国"),
        ("你知道龙晶（游戏）的繁体吗？", "龙晶（游戏）", "繁体", "龍晶"),
    ],
)
def test_kbqa_answers_with_the_kbs_own_names(
    server: str, question: str, subject: str, predicate: str, answer: str
) -> None:
    body = post(server, {"text": question, "task": "kbqa", "top_k": 3, "num_beams": 3}).json()
    assert body["task"] == "kbqa" and body["results"]
    for result in body["results"]:
        assert (result["subject"], result["predicate"]) in PAIRS and result["answers"]
    top = body["results"][0]
    assert (top["subject"], top["predicate"], top["answers"]) == (subject, predicate, [answer])


def test_entity_mentions_are_code_point_spans(server: str) -> None:
    text = "𠃍我昨天去了上海，见到了刘晓华（演员）。"  # 𠃍 is one code point, two UTF-16 units
    for mention in ("上海", "刘晓华（演员）"):
        start = text.index(mention)
        body = {"text": text, "mention": {"start": start, "end": start + len(mention)}, "top_k": 3, "num_beams": 3}
        response = post(server, body)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert results and all(NAMES[result["id"]] == result["name"] for result in results)
    at_the_end = post(server, {"text": text, "mention": {"start": len(text) - 8, "end": len(text)}})
    assert at_the_end.status_code == 200, at_the_end.text
    past = post(server, {"text": text, "mention": {"start": 1, "end": len(text) + 1}})
    assert past.status_code == 422 and f"({len(text)} characters)" in past.json()["message"]


def test_candidates_with_full_width_names(server: str) -> None:
    chosen = ["person:liu_xiaohua_professor", "person:liu_xiaohua_actor"]
    body = post(server, {"text": "刘晓华是谁？", "candidates": chosen, "top_k": 2, "num_beams": 2}).json()
    assert {(r["id"], r["name"]) for r in body["results"]} <= {(i, NAMES[i]) for i in chosen} and body["results"]


def test_info_shows_the_extended_vocabulary(server: str, chinese_bert: Path) -> None:
    tokenizer = httpx.get(f"{server}/info").json()["linker"]["index"]["manifest"]["tokenizer"]
    own = len((chinese_bert / "vocab.txt").read_text(encoding="utf-8").split())
    assert tokenizer["vocab_size"] > own + 20  # the KB's characters joined the tiny vocabulary
