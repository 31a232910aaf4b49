"""KgCLUE on rows written here: reading, the split, the closed-world KB export, the official score
against hand-computed values, the lexical baseline, and `simlink evaluate kgclue` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaluation.baselines import LexicalKbqa, character_dice
from evaluation.kgclue import (
    KgclueQuestion,
    f1_similarity,
    lcs_length,
    load_kgclue,
    normalize,
    read_kgclue,
    score_answers,
    subject_name,
)
from index.kb import Fact, KbFormatError, read_entities, read_facts
from models.linking.training_data import read_labelled
from service.cli import app

TRAIN = [
    {"id": 0, "question": "北京的所属国家是什么？", "answer": "北京 ||| 所属国家 ||| 中国"},
    {"id": 1, "question": "你知道刘晓华的职业吗？", "answer": "刘晓华（广东工业大学教授） ||| 职业 ||| 教授"},
    {"id": 2, "question": "长江有多长？", "answer": "长江 ||| 长度 ||| 6300公里"},
    {"id": 3, "question": "龙晶用繁体字怎么写？", "answer": "龙晶（游戏） ||| 繁体 ||| 龍晶"},
    {"id": 4, "question": "上海属于哪个国家？", "answer": "上海 ||| 所属国家 ||| 中国"},
    {"id": 5, "question": "Python是谁设计的？", "answer": "Python (编程语言) ||| 设计者 ||| \u00a0Guido van Rossum"},
    {"id": 6, "question": "上海市的简称是什么？", "answer": "上海市 ||| 简称 ||| 沪"},
    {"id": 7, "question": "北京的面积是多少？", "answer": "北京 ||| 面积 ||| 16410平方公里"},
]
DEV = [
    {"id": 0, "question": "黄河有多长？", "answer": "黄河 ||| 长度 ||| 5464公里"},
    {"id": 1, "question": "请问刘晓华演过什么作品？", "answer": "刘晓华（演员） ||| 代表作品 ||| 情满珠江"},
    {"id": 2, "question": "魔都的简称是什么？", "answer": "上海市 ||| 简称 ||| 沪"},
]
TEST = [{"id": "t1", "question": "珠江的长度是多少？", "answer": "珠江 ||| 长度 ||| 2400公里"}]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def kgclue_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "kgclue"
    directory.mkdir()
    _write(directory / "train.json", TRAIN)
    _write(directory / "dev.json", DEV)
    _write(tmp_path / "test.json", TEST)
    return directory


def test_rows_read_as_questions_with_their_triple(kgclue_dir: Path, tmp_path: Path) -> None:
    questions = read_kgclue(kgclue_dir / "train.json")
    assert questions[1] == KgclueQuestion("1", "你知道刘晓华的职业吗？", "刘晓华（广东工业大学教授）", "职业", "教授")
    assert questions[5].object == "Guido van Rossum"  # KgCLUE's objects may start with a no-break space
    bad = _write(tmp_path / "bad.json", [TRAIN[0], {"id": 9, "question": "x?", "answer": "only ||| two"}])
    with pytest.raises(KbFormatError, match=rf"{bad}:2: \"answer\" must be"):
        read_kgclue(bad)


def test_subject_names_stop_before_a_qualifier() -> None:
    assert subject_name("刘晓华（广东工业大学教授）") == "刘晓华"
    assert subject_name("Python (编程语言)") == "Python"
    assert subject_name("北京") == "北京"
    assert subject_name("（一）班") == "（一）班"  # nothing before the bracket: the whole subject


def test_split_kb_and_export_are_what_train_and_build_index_read(kgclue_dir: Path, tmp_path: Path) -> None:
    data = load_kgclue(kgclue_dir, heldout_percent=30, test=tmp_path / "test.json")
    assert sorted(q.id for q in data.train + data.heldout) == [str(row["id"]) for row in TRAIN]
    assert (
        data.heldout
        and data.train
        and [q.id for q in load_kgclue(kgclue_dir, 30).heldout] == [q.id for q in data.heldout]
    )
    assert len(data.dev) == 3 and [q.id for q in data.test] == ["t1"]
    assert len(data.facts) == len(TRAIN) + len(DEV) + len(TEST) - 1  # 上海市 ||| 简称 ||| 沪 twice
    entities_path, facts_path, labelled_path = data.write_kb(tmp_path / "kb")
    entities = list(read_entities(entities_path))
    assert [e.name for e in entities] == data.subjects and len(entities) == 10  # 北京 has two facts
    by_name = {e.name: e for e in entities}
    assert by_name["刘晓华（演员）"].aliases == ("刘晓华",) and by_name["北京"].aliases == ()
    assert list(read_facts(facts_path)) == data.facts
    assert Fact("Python (编程语言)", "设计者", "Guido van Rossum") in data.facts
    examples = read_labelled(labelled_path, entities)
    assert [(e.name, e.predicate) for e in examples] == [(q.subject, q.predicate) for q in data.train]


def test_the_official_score_by_hand() -> None:
    assert lcs_length("abcde", "ace") == 3 and lcs_length("", "abc") == 0
    assert lcs_length("6300公里", "6300千米") == 4
    assert f1_similarity("6300公里", "6300千米") == pytest.approx(8 / 12)  # 2 × LCS / (6 + 6)
    assert f1_similarity("", "") == 0.0 and f1_similarity("abc", "") == 0.0
    assert normalize("  Guido\u00a0van   Rossum ") == "guido van rossum"
    gold = [
        KgclueQuestion("1", "长江有多长？", "长江", "长度", "6300千米"),
        KgclueQuestion("2", "谁设计了Python？", "Python", "设计者", "Guido van Rossum"),
        KgclueQuestion("3", "黄河有多长？", "黄河", "长度", "5464公里"),
    ]
    predicted = [("长江", "长度", "6300公里"), ("python", "设计者", "guido  van rossum"), None]
    scores = score_answers(predicted, gold)
    em, f1 = 1 / 3, (8 / 12 + 1 + 0) / 3
    assert scores["object_exact_match"] == pytest.approx(em) and scores["object_f1"] == pytest.approx(f1)
    assert scores["score"] == pytest.approx(0.5 * em + 0.5 * f1)
    assert scores["subject_accuracy"] == pytest.approx(2 / 3) and scores["predicate_accuracy"] == pytest.approx(2 / 3)
    assert scores["questions"] == 3


def test_lexical_baseline_takes_the_longest_name_and_the_closest_predicate() -> None:
    facts = [Fact(*(part.strip() for part in row["answer"].split("|||"))) for row in TRAIN + DEV]
    lexical = LexicalKbqa(facts)
    assert lexical.answer("上海市的简称是什么？") == ("上海市", "简称", "沪")  # not 上海
    assert lexical.answer("北京有多大面积？") == ("北京", "面积", "16410平方公里")  # not 所属国家
    assert lexical.answer("请问刘晓华演过什么作品？") == ("刘晓华（演员）", "代表作品", "情满珠江")
    assert lexical.answer("你知道刘晓华的职业吗？")[0] == "刘晓华（广东工业大学教授）"
    assert lexical.answer("PYTHON是谁设计的？")[0] == "Python (编程语言)"  # compared normalized
    assert lexical.answer("魔都的简称是什么？") is None
    assert character_dice("代表作品", "请问演过什么作品") == pytest.approx(2 * 2 / (4 + 8))


def test_evaluate_kgclue_lexical_only(kgclue_dir: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "kgclue", "--data", str(kgclue_dir)])
    assert result.exit_code == 0, result.output
    assert (
        "8 train / 0 held-out / 3 dev / 0 test questions; closed-world KB of 9 subjects and 10 facts" in result.output
    )
    assert "generative" not in result.output and "lexical (longest subject name)" in result.output


def test_evaluate_kgclue_trains_a_tiny_model_end_to_end(kgclue_dir: Path, tmp_path: Path, chinese_bert: Path) -> None:
    out, work = tmp_path / "report.json", tmp_path / "work"
    options = ["--data", str(kgclue_dir), "--test", str(tmp_path / "test.json"), "--heldout-percent", "30"]
    options += ["--base-model", str(chinese_bert), "--max-steps", "3", "--train-batch-size", "4"]
    options += ["--work", str(work), "--out", str(out), "--export-kb", str(tmp_path / "kb"), "--num-beams", "2"]
    result = CliRunner().invoke(app, ["evaluate", "kgclue", *options])
    assert result.exit_code == 0, result.output
    assert "vocabulary: added " in result.output and "-> 0.0%" in result.output
    report = json.loads(out.read_text())
    assert set(report["splits"]) == {"heldout", "dev", "test"}
    generative = "generative (beam 2)"
    data = load_kgclue(kgclue_dir, 30, tmp_path / "test.json")
    subjects = set(data.subjects)
    heldout = report["splits"]["heldout"]
    tried = [
        ", ".join([generative, *(["candidates auto"] if auto else []), *([f"copy weight {w:g}"] if w else [])])
        for auto in (False, True)
        for w in (0, 0.5, 1, 2, 4)
    ]
    assert set(heldout) == {"lexical (longest subject name)", *tried}
    chosen = report["chosen_on_heldout"]
    chosen_label = tried[5 * (chosen["candidates"] == "auto") + [0, 0.5, 1, 2, 4].index(chosen["copy_weight"])]
    assert heldout[chosen_label]["all"]["score"] == max(heldout[label]["all"]["score"] for label in tried)
    for split in ("dev", "test"):
        methods = report["splits"][split]
        assert set(methods) == {"lexical (longest subject name)", generative, chosen_label}
        assert all(0.0 <= methods[label]["all"]["score"] <= 1.0 for label in methods)
    dev_lexical = report["splits"]["dev"]["lexical (longest subject name)"]
    assert dev_lexical["all"]["score"] == pytest.approx(2 / 3)  # 黄河 and 刘晓华（演员）; 魔都 names no subject
    assert dev_lexical["not_verbatim"]["questions"] == 1 and dev_lexical["not_verbatim"]["score"] == 0.0
    assert (work / "model" / "config.json").is_file() and (work / "index" / "manifest.json").is_file()
    assert len(subjects) == len(list(read_entities(tmp_path / "kb" / "entities.jsonl")))


def test_evaluate_kgclue_refuses_a_model_and_training_at_once(kgclue_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["evaluate", "kgclue", "--data", str(kgclue_dir), "--model", str(tmp_path), "--max-steps", "1"]
    )
    assert result.exit_code == 2 and "not both" in result.output


def test_the_shared_kgclue_files_and_the_lexical_baseline_on_them(data_dir: Path) -> None:
    """The figures the README gives for the data at hand (SIMLINK_DATA_DIR or ../shared/data)."""
    from evaluation.kgclue_report import LEXICAL, evaluate_kgclue

    data = load_kgclue(data_dir / "kgclue")
    assert (len(data.train), len(data.heldout), len(data.dev)) == (17092, 908, 2000)
    assert len(data.subjects) == len(data.facts) == 20000  # one predicate per subject
    report = evaluate_kgclue(data).splits
    assert report["dev"][LEXICAL]["all"]["score"] == pytest.approx(0.9625, abs=5e-5)
    assert report["heldout"][LEXICAL]["all"]["score"] == pytest.approx(0.9473, abs=5e-5)
    assert report["dev"][LEXICAL]["not_verbatim"]["questions"] == 2
