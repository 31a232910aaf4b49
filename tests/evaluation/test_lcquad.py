"""LC-QuAD on a tiny file written here: parsing, split, name swaps, KB export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaluation.lcquad import name_swaps, read_lcquad, readable_name
from index.kb import read_entities, read_facts
from models.linking.candidates import words
from models.linking.training_data import read_labelled
from service.cli import app

R = "http://dbpedia.org/resource/"
ROWS = [
    {
        "_id": "1",
        "corrected_question": "How many movies did Stanley Kubrick direct?",
        "sparql_query": "SELECT COUNT(?uri) WHERE {?uri <http://dbpedia.org/ontology/director> "
        f"<{R}Stanley_Kubrick> . }}",
    },
    {
        "_id": "2",
        "corrected_question": "What is the river whose mouth is in deadsea?",
        "sparql_query": f"SELECT ?uri WHERE {{?uri <http://dbpedia.org/ontology/riverMouth> <{R}Dead_Sea> . "
        "?uri <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://dbpedia.org/ontology/River>}",
    },
    {
        "_id": "3",
        "corrected_question": "Who is the incumbent of Al Gore presidential campaign and of Ann Lewis?",
        "sparql_query": f"SELECT ?uri WHERE {{ <{R}Al_Gore_presidential_campaign> <http://dbpedia.org/ontology/incumbent>"
        f" ?uri. <{R}Ann_Lewis> <http://dbpedia.org/ontology/president> ?uri}}",
    },
    {"_id": "4", "corrected_question": None, "sparql_query": "SELECT ?uri WHERE {}"},
    {
        "_id": "5",
        "corrected_question": "What is the allegiance of John Kotelawala ?",
        "sparql_query": f"SELECT ?uri WHERE {{ <{R}John_Kotelawala> <http://dbpedia.org/property/allegiance> ?uri }}",
    },
]


@pytest.fixture
def lcquad_dir(tmp_path: Path) -> Path:
    (tmp_path / "train-data.json").write_text(json.dumps(ROWS))
    (tmp_path / "entities.txt").write_text(f"{R}Caf%C3%A9_society\n{R}Dead_Sea\n")
    return tmp_path


def test_questions_kb_and_single_triple_pairs(lcquad_dir: Path) -> None:
    data = read_lcquad(lcquad_dir, dev_percent=0)
    assert data.skipped == 1 and data.dev == [] and len(data.train) == 4
    by_id = {q.id: q for q in data.train}
    assert by_id["3"].entities == ("Al Gore presidential campaign", "Ann Lewis") and by_id["3"].pair is None
    assert by_id["1"].pair == ("Stanley Kubrick", "director")
    assert by_id["2"].pair is None  # two triples: not single-triple
    assert by_id["5"].pair == ("John Kotelawala", "allegiance")
    assert "Café society" in data.names and data.names.count("Dead Sea") == 1
    assert readable_name(f"{R}Jacques_Van't_Hart") == "Jacques Van't Hart"


def test_split_is_deterministic_and_disjoint(lcquad_dir: Path) -> None:
    first, second = read_lcquad(lcquad_dir, 50), read_lcquad(lcquad_dir, 50)
    assert [q.id for q in first.dev] == [q.id for q in second.dev]
    assert not {q.id for q in first.dev} & {q.id for q in first.train}


def test_name_swaps_put_each_kb_name_in_a_real_question(lcquad_dir: Path) -> None:
    data = read_lcquad(lcquad_dir, dev_percent=0)
    swaps = name_swaps(data)
    assert [name for _, name in swaps] == data.names
    for text, name in swaps:
        name_words, text_words = words(name), words(text)
        assert any(text_words[i : i + len(name_words)] == name_words for i in range(len(text_words))), (name, text)


def test_exported_kb_is_readable_by_the_trainer_and_builder(lcquad_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["evaluate", "link", "--data", str(lcquad_dir), "--dev-percent", "0", "--export-kb", str(tmp_path / "kb")]
    )
    assert result.exit_code == 0, result.output
    entities = list(read_entities(tmp_path / "kb" / "entities.jsonl"))
    facts = list(read_facts(tmp_path / "kb" / "facts.tsv"))
    examples = read_labelled(tmp_path / "kb" / "train.jsonl", entities)
    assert {(f.subject, f.predicate) for f in facts} == {
        ("Stanley Kubrick", "director"),
        ("John Kotelawala", "allegiance"),
    }
    assert len(examples) == 5 + 2 + len(entities)  # gold entities, KBQA pairs, one name swap per name


TEST_ROWS = [
    {
        "_id": "t1",
        "corrected_question": "Who directed Barry Lyndon?",
        "sparql_query": f"SELECT ?uri WHERE {{ <{R}Barry_Lyndon> <http://dbpedia.org/ontology/director> ?uri }}",
    },
    {"_id": "t2", "corrected_question": "n/a", "sparql_query": "SELECT ?uri WHERE {}"},
]


def test_a_test_file_is_evaluated_after_training_on_every_question(lcquad_dir: Path, tmp_path: Path) -> None:
    test = tmp_path / "test.json"
    test.write_text(json.dumps(TEST_ROWS))
    data = read_lcquad(lcquad_dir, dev_percent=50, test=test)
    assert data.split == "test" and [q.id for q in data.dev] == ["t1"] and len(data.train) == 4
    assert "Barry Lyndon" in data.names and ("Barry Lyndon", "director") in data.pairs
    assert data.skipped == 2


def test_the_report_file_names_its_split_and_the_servers_default_method(lcquad_dir: Path, tmp_path: Path) -> None:
    test = tmp_path / "test.json"
    test.write_text(json.dumps(TEST_ROWS))
    out = tmp_path / "report.json"
    args = ["evaluate", "link", "--data", str(lcquad_dir), "--test", str(test), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["split"] == "test" and report["questions"] == 1 and report["default_method"] is None
    assert report["entity_linking"]["dictionary (longest match)"]["recall"] == 1.0


def test_a_test_file_that_is_not_lcquad_is_named(lcquad_dir: Path, tmp_path: Path) -> None:
    test = tmp_path / "test.json"
    test.write_text("{not json")
    result = CliRunner().invoke(app, ["evaluate", "link", "--data", str(lcquad_dir), "--test", str(test)])
    assert result.exit_code != 0 and "test.json" in result.output
