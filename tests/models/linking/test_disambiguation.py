"""The second stage: entities that share a generated name, ordered by their descriptions' similarity
to the text (the real embedded encoder, the session's tiny linker)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.linking.disambiguation import DescriptionScorer
from models.linking.engine import LinkingEngine, LinkQuery
from models.similarity import SimilarityEngine, TokenEncoder


@pytest.fixture(scope="module")
def disambiguating(engine: LinkingEngine, encoder: TokenEncoder) -> LinkingEngine:
    return replace(engine, disambiguator=DescriptionScorer(SimilarityEngine(encoder)))


SENSES = [
    ("I wrote the script in Python, a programming language.", (22, 28), "language:python"),
    ("The python, a large snake, swallowed a rat.", (4, 10), "animal:python"),
    ("We took the train to Paris, the capital of France.", (21, 26), "city:paris"),
    ("Paris, a prince of Troy, carried Helen away.", (0, 5), "person:paris"),
]


@pytest.mark.parametrize(("text", "mention", "entity"), SENSES)
def test_a_shared_name_is_resolved_by_its_context_either_way(disambiguating, text, mention, entity) -> None:
    assert text[slice(*mention)].lower() in {"python", "paris"}
    candidates = ("language:python", "animal:python") if "python" in entity else ("city:paris", "person:paris")
    (matches,) = disambiguating.link([LinkQuery(text, "entity", mention, top_k=2, num_beams=2, candidates=candidates)])
    assert matches[0].id == entity
    assert matches[0].disambiguation is not None and matches[0].disambiguation >= matches[1].disambiguation
    assert matches[0].score == matches[1].score, "one generated name: one generation score"


def test_without_a_disambiguator_shared_names_come_back_tied_in_id_order(engine: LinkingEngine) -> None:
    query = LinkQuery("The python swallowed a rat.", "entity", (4, 10), top_k=2, num_beams=2)
    (matches,) = replace(engine, disambiguator=None).link(
        [replace(query, candidates=("language:python", "animal:python"))]
    )
    assert [m.id for m in matches] == ["animal:python", "language:python"]
    assert all(m.disambiguation is None for m in matches)


def test_an_unshared_name_is_not_rescored(disambiguating: LinkingEngine) -> None:
    (matches,) = disambiguating.link([LinkQuery("Nippon", "entity", (0, 6), top_k=1, num_beams=3)])
    assert matches[0].id == "country:japan" and matches[0].disambiguation is None


def test_a_blank_description_is_not_scored_and_goes_last(engine: LinkingEngine, encoder: TokenEncoder) -> None:
    scorer = DescriptionScorer(SimilarityEngine(encoder))
    fits = scorer("The python swallowed a rat.", ["", "  ", "A python is a large snake."])
    assert fits[:2] == [None, None] and isinstance(fits[2], float)
    assert scorer("The python swallowed a rat.", ["", ""]) == [None, None]
    judged_second = replace(engine, disambiguator=lambda text, descriptions: [None, 0.5])
    query = LinkQuery("a python", "entity", top_k=2, num_beams=2, candidates=("animal:python", "language:python"))
    (matches,) = judged_second.link([query])
    assert [(m.id, m.disambiguation) for m in matches] == [("language:python", 0.5), ("animal:python", None)]
