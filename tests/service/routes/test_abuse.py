"""Bad input and too much of it, in process: every refusal is a 4xx (or 429/504) that names its cause."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import SecretStr

from service.app import create_app
from service.runtime import Runtime
from tests.service.routes.conftest import Client, assert_names_field, client_with

PAIR = {"a": "A man is playing a guitar.", "b": "A person plays the guitar."}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pairs": [{"a": "\x00", "b": "x"}]}, "pairs[0].a"),
        ({"pairs": [{"a": "x", "b": "\u200b"}]}, "pairs[0].b"),
        ({"pairs": [{"a": "\ufeff", "b": "x"}]}, "pairs[0].a"),
        ({"pairs": [{"a": "\u0301", "b": "x"}]}, "pairs[0].a"),  # passes the pattern, no token once normalised
        ({"pairs": [PAIR], "alignment": 0}, "alignment"),
        ({"pairs": [PAIR], "truncate": "yes"}, "truncate"),
        ({"pairs": [PAIR], "skip_special_tokens": 1}, "skip_special_tokens"),
        ({"pairs": [PAIR], "alignment": "partial"}, "alignment"),
    ],
)
def test_texts_without_content_and_loose_types_get_422_naming_the_field(client: Client, body: dict, field: str) -> None:
    assert_names_field(client.post("/similarity", body), field)


def test_rank_texts_without_content_and_loose_numbers_are_named(client: Client) -> None:
    assert_names_field(
        client.post("/similarity/rank", {"source": "x", "candidates": ["a", "b"], "top_k": "2"}), "top_k"
    )
    body = {"source": "x", "candidates": ["fine", "\u200b\u200b", "ok"], "top_k": 2}
    assert_names_field(client.post("/similarity/rank", body), "candidates[1]")


@pytest.mark.parametrize(
    ("content", "headers", "status", "says"),
    [
        (b'{"pairs": []}', {"content-type": "text/plain"}, 415, "content-type: expected application/json"),
        (b'{"pairs": [{"a": "\xff", "b": "x"}]}', {"content-type": "application/json"}, 400, "body: not UTF-8"),
        (
            b'{"pairs": [{"a": "x" "b": "y"}]}',
            {"content-type": "application/json"},
            400,
            "body: invalid JSON at line 1",
        ),
        (b'{"pairs": [], "pairs": []}', {"content-type": "application/json"}, 400, "body: duplicate key 'pairs'"),
    ],
)
def test_bodies_that_are_not_json_are_refused_before_any_field(
    client: Client, content: bytes, headers: dict, status: int, says: str
) -> None:
    (response,) = client.send([("POST", "/similarity", {"content": content, "headers": headers})])
    assert response.status_code == status and response.json()["message"].startswith(says)


def test_a_request_needing_more_tokens_than_one_may_gets_413_naming_the_limit(runtime: Runtime) -> None:
    client = client_with(runtime, max_request_tokens=100)
    response = client.post("/similarity/rank", {"source": "x", "candidates": ["word " * 20] * 6})
    assert response.status_code == 413
    assert "more than the limit of 100 per request (SIMLINK_MAX_REQUEST_TOKENS)" in response.json()["message"]
    assert client.post("/similarity", {"pairs": [PAIR]}).status_code == 200


def test_past_its_budget_the_server_answers_429_with_retry_after_and_small_work_still_gets_through(
    runtime: Runtime,
) -> None:
    client = client_with(runtime, queue_budget_tokens=300)
    big = {"pairs": [{"a": "word " * 29, "b": "word " * 29}] * 4}  # 4 x 2 x 31 = 248 tokens
    small = {"pairs": [{"a": "a", "b": "b"}]}  # 6 tokens
    requests = [("POST", "/similarity", {"json": big})] * 6 + [("POST", "/similarity", {"json": small})]
    responses = client.send(requests, concurrently=True)
    statuses = [r.status_code for r in responses]
    assert statuses[-1] == 200  # the 1-pair request fits beside one big one
    refused = [r for r in responses if r.status_code == 429]
    assert refused and set(statuses) <= {200, 429}
    for response in refused:
        assert int(response.headers["retry-after"]) >= 1 and "retry in about" in response.json()["message"]


def test_a_deadline_answers_504_and_a_bad_deadline_header_400(runtime: Runtime) -> None:
    client = client_with(runtime)
    body = {"pairs": [{"a": "word " * 29, "b": "word " * 29}] * 4}
    late, bad, metrics = client.send(
        [
            ("POST", "/similarity", {"json": body, "headers": {"x-request-timeout": "0.001"}}),
            ("POST", "/similarity", {"json": body, "headers": {"x-request-timeout": "soon"}}),
            ("GET", "/metrics", {}),
        ]
    )
    assert late.status_code == 504 and "deadline of 0.001 s" in late.json()["message"]
    assert bad.status_code == 400 and bad.json()["message"].startswith("x-request-timeout: ")
    assert 'simlink_cancelled_requests_total{reason="deadline"}' in metrics.text


def test_every_answer_carries_a_request_id_and_stage_times(client: Client) -> None:
    (echoed, made) = client.send(
        [
            ("POST", "/similarity", {"json": {"pairs": [PAIR]}, "headers": {"x-request-id": "trace-42"}}),
            ("POST", "/similarity", {"json": {"pairs": [PAIR]}, "headers": {"x-request-id": "bad id\n"}}),
        ]
    )
    assert echoed.headers["x-request-id"] == "trace-42" and len(made.headers["x-request-id"]) == 32
    for stage in ("queue", "encode", "transport", "total"):
        assert float(echoed.headers[f"x-{stage}-time-ms"]) >= 0


def test_api_keys_guard_every_route_but_the_open_ones(runtime: Runtime, tmp_path) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# one key a line\nfile-key\n")
    client = client_with(runtime, api_keys=SecretStr("key-one, key-two"), api_keys_file=keys_file)
    bearer = lambda key: {"headers": {"authorization": f"Bearer {key}"}}  # noqa: E731
    body = {"json": {"pairs": [PAIR]}}
    (missing, wrong, right, from_file, health, ready, metrics, info) = client.send(
        [
            ("POST", "/similarity", body),
            ("POST", "/similarity", {**body, **bearer("key-three")}),
            ("POST", "/similarity", {**body, **bearer("key-two")}),
            ("POST", "/similarity", {**body, **bearer("file-key")}),
            ("GET", "/health", {}),
            ("GET", "/ready", {}),
            ("GET", "/metrics", {}),
            ("GET", "/info", {}),
        ]
    )
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 403 and "key-three" not in wrong.text
    assert right.status_code == from_file.status_code == 200
    assert health.status_code == ready.status_code == metrics.status_code == 200
    assert info.status_code == 401
    assert 'simlink_rejected_requests_total{reason="forbidden"}' in metrics.text

    protected = client_with(runtime, api_keys=SecretStr("k"), protect_metrics=True)
    assert protected.get("/metrics").status_code == 401


def test_an_unreadable_keys_file_stops_the_app_naming_it(runtime: Runtime, tmp_path) -> None:
    settings = runtime.settings.model_copy(update={"api_keys_file": tmp_path / "missing.txt"})
    with pytest.raises(ValueError, match=r"missing\.txt"):
        create_app(runtime=dataclasses.replace(runtime, settings=settings))


def test_ready_turns_503_while_draining(runtime: Runtime) -> None:
    client = client_with(runtime)

    ready, refused = client.send(
        [("GET", "/ready", {}), ("POST", "/similarity", {"json": {"pairs": [PAIR]}})],
        before=lambda runtime: runtime.drain(grace_s=60),
    )
    assert ready.status_code == 503 and "draining" in ready.json()["message"]
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
