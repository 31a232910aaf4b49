"""The shared-names report: its reader, and first-result accuracy with ties and disambiguated."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from evaluation.shared_names import SharedNameSentence, evaluate_shared_names, read_sentences
from index.kb import KbFormatError
from models.linking.disambiguation import DescriptionScorer
from models.linking.engine import LinkingEngine
from models.linking.seq2seq import load_seq2seq_model
from models.similarity import SimilarityEngine, TokenEncoder
from tests.conftest import TinyLinker

DEMO_SENTENCES = Path(__file__).parents[2] / "examples" / "demo_kb" / "shared_names.jsonl"


def test_the_demo_sentences_cover_both_senses_of_every_shared_name() -> None:
    entities = [json.loads(line) for line in (DEMO_SENTENCES.parent / "entities.jsonl").open()]
    by_name: dict[str, set[str]] = {}
    for entity in entities:
        by_name.setdefault(entity["name"], set()).add(entity["id"])
    shared = {entity_id for ids in by_name.values() if len(ids) > 1 for entity_id in ids}
    sentences = read_sentences(DEMO_SENTENCES)
    assert {s.entity for s in sentences} == shared and len(shared) == 46
    names = {entity["id"]: entity["name"] for entity in entities}
    assert all(s.text[s.mention[0] : s.mention[1]].lower() == names[s.entity].lower() for s in sentences)


def test_a_bad_row_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "a", "mention": {"start": 0, "end": 1}, "entity": "x"}\n{"text": "b"}\n')
    with pytest.raises(KbFormatError, match=r"s\.jsonl.*2"):
        read_sentences(path)


def test_disambiguation_beats_ties_on_both_senses(tiny_linker: TinyLinker, encoder: TokenEncoder) -> None:
    engine = LinkingEngine.open(
        load_seq2seq_model(str(tiny_linker.model_dir)),
        tiny_linker.index_dir,
        disambiguator=DescriptionScorer(SimilarityEngine(encoder)),
    )
    sentences = [
        SharedNameSentence("I wrote the script in Python, a programming language.", (22, 28), "language:python"),
        SharedNameSentence("The python, a large snake, swallowed a rat.", (4, 10), "animal:python"),
        SharedNameSentence("We took the train to Paris, the capital of France.", (21, 26), "city:paris"),
        SharedNameSentence("Paris, a prince of Troy, carried Helen away.", (0, 5), "person:paris"),
    ]
    report = evaluate_shared_names(engine, sentences, num_beams=3)
    assert report == {"sentences": 4.0, "ties_in_id_order": 0.5, "disambiguated": 1.0}
    assert "disambiguated" not in evaluate_shared_names(replace(engine, disambiguator=None), sentences, 3)
