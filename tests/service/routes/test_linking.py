"""``/link-entity`` in process, over the session's tiny linker: answers from the KB, field errors, 503."""

from __future__ import annotations

import pytest

from models.linking import LinkQuery
from service.routes.linking import NOT_CONFIGURED
from service.runtime import Runtime
from tests.service.routes.conftest import Client, assert_names_field


def test_entity_and_kbqa_answers_are_the_engines(client: Client, runtime: Runtime) -> None:
    entity = client.post("/link-entity", {"text": "Nippon", "mention": {"start": 0, "end": 6}, "top_k": 1})
    kbqa = client.post("/link-entity", {"text": "what is the currency of Japan?", "task": "kbqa", "top_k": 1})
    assert entity.status_code == kbqa.status_code == 200, entity.text + kbqa.text
    expected_entity, expected_pair = runtime.linker.engine.link(
        [
            LinkQuery("Nippon", "entity", (0, 6), top_k=1),
            LinkQuery("what is the currency of Japan?", "kbqa", top_k=1),
        ]
    )
    assert entity.json()["results"][0]["id"] == expected_entity[0].id
    pair = kbqa.json()["results"][0]
    assert (pair["subject"], pair["predicate"], tuple(pair["answers"])) == (
        expected_pair[0].subject,
        expected_pair[0].predicate,
        expected_pair[0].answers,
    )


def test_only_entities_sharing_a_name_carry_a_disambiguation_figure(client: Client) -> None:
    body = {"text": "I keep a python as a pet.", "mention": {"start": 9, "end": 15}, "top_k": 3}
    results = client.post("/link-entity", body).json()["results"]
    assert [r["name"] for r in results[:2]] == ["Python", "Python"] and len(results) == 3
    assert all(isinstance(r["disambiguation"], float) for r in results[:2]) and "disambiguation" not in results[2]


def test_results_say_where_the_text_writes_them_and_several_are_the_engines(client: Client, runtime: Runtime) -> None:
    text = "Is Marie Curie from France?"
    for several in (False, True):
        response = client.post("/link-entity", {"text": text, "top_k": 3, "num_beams": 3, "several": several})
        assert response.status_code == 200, response.text
        (expected,) = runtime.linker.engine.link([LinkQuery(text, top_k=3, num_beams=3, several=several)])
        results = response.json()["results"]
        assert [r["id"] for r in results] == [m.id for m in expected]
        spans = [(r["mention"]["start"], r["mention"]["end"]) if "mention" in r else None for r in results]
        assert spans == [m.mention for m in expected]
        assert all(text[span[0] : span[1]] == r["name"] for span, r in zip(spans, results, strict=True) if span)


def test_candidates_restrict_the_answer(client: Client) -> None:
    body = {"text": "a python", "top_k": 2, "candidates": ["animal:python"]}
    response = client.post("/link-entity", body)
    assert response.status_code == 200 and [r["id"] for r in response.json()["results"]] == ["animal:python"]


def test_auto_candidates_answer_kbqa_from_the_subject_written(client: Client) -> None:
    body = {"text": "tell me about France", "task": "kbqa", "top_k": 2, "num_beams": 2, "candidates": "auto"}
    response = client.post("/link-entity", body)
    assert response.status_code == 200, response.text
    assert {result["subject"] for result in response.json()["results"]} == {"France"}


def test_the_schema_limits_the_candidate_list_and_admits_auto(client: Client) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["LinkRequest"]["properties"]["candidates"]
    branches = {branch.get("type"): branch for branch in schema["anyOf"]}
    assert branches["array"]["maxItems"] > 0 and branches["string"]["const"] == "auto"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "Paris", "candidates": ["city:paris", "city:atlantis"]}, "candidates"),
        ({"text": "Paris", "candidates": "all"}, "candidates"),
        ({"text": "Paris", "task": "kbqa", "candidates": ["Japan"]}, "candidates"),
        ({"text": "Paris", "task": "kbqa", "mention": {"start": 0, "end": 5}}, "mention"),
        ({"text": "Paris", "task": "kbqa", "several": True}, "several"),
        ({"text": "Paris", "several": "yes"}, "several"),
        ({"text": "Paris", "mention": {"start": 0, "end": 9}}, "mention.end"),
        ({"text": "Paris", "num_beams": 7}, "num_beams"),
        ({"text": "Paris", "top_k": 4, "num_beams": 3}, "top_k"),
        ({"text": "x" * 201}, "text"),
    ],
)
def test_bad_requests_name_the_field(client: Client, body: dict, field: str) -> None:
    assert_names_field(client.post("/link-entity", body), field)


def test_size_limits_and_unknown_ids_say_their_kind(client: Client) -> None:
    too_long = client.post("/link-entity", {"text": "x" * 201}).json()["detail"][0]
    unknown = client.post("/link-entity", {"text": "Paris", "candidates": ["city:atlantis"]}).json()["detail"][0]
    assert (too_long["type"], unknown["type"]) == ("too_long", "unknown_id")
    assert unknown["msg"] == "has 1 unknown entity id(s): 'city:atlantis'"


def test_without_a_linker_the_route_says_how_to_configure_one(client_without_linker: Client) -> None:
    response = client_without_linker.post("/link-entity", {"text": "Paris"})
    assert response.status_code == 503 and response.json()["message"] == NOT_CONFIGURED
    assert client_without_linker.post("/similarity", {"pairs": [{"a": "x", "b": "y"}]}).status_code == 200
