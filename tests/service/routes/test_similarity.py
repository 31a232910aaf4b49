"""``/similarity`` and ``/similarity/rank`` in process: answers equal the engine's, limits name their field."""

from __future__ import annotations

import pytest

from models.similarity import SimilarityEngine
from models.similarity.methods import DEFAULT_METHOD, METHOD_NAMES, METHODS
from service.runtime import Runtime
from tests.service.routes.conftest import LIMITS, Client, assert_names_field

PAIRS = [
    {"a": "A man is playing a guitar.", "b": "A person plays the guitar."},
    {"a": "A man is playing a guitar.", "b": "Stocks fell sharply on Monday."},
]


def _engine(runtime: Runtime) -> SimilarityEngine:
    return runtime.similarity.engine


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_scores_are_the_engines(client: Client, runtime: Runtime, method: str) -> None:
    response = client.post("/similarity", {"pairs": PAIRS, "method": method})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = _engine(runtime).compare([(p["a"], p["b"]) for p in PAIRS], method)
    assert [r["distance"] for r in body["results"]] == pytest.approx([s.distance for s in expected], abs=1e-5)
    assert body["method"] == method and body["truncated"] == []
    assert all("alignment" not in r for r in body["results"])


def test_alignment_is_returned_for_methods_that_have_one(client: Client) -> None:
    for name, method in METHODS.items():
        response = client.post("/similarity", {"pairs": PAIRS[:1], "method": name, "alignment": method.alignment})
        assert response.status_code == 200, response.text
        cells = response.json()["results"][0].get("alignment")
        assert (cells is not None and 0 < len(cells) <= 10) == method.alignment


def test_ranking_prunes_only_where_the_table_allows_and_keeps_the_exhaustive_answer(
    client: Client, runtime: Runtime
) -> None:
    candidates = ["Stocks fell.", "A person plays the guitar.", "A woman slices an onion.", "A man plays music."]
    for name, method in METHODS.items():
        response = client.post(
            "/similarity/rank", {"source": PAIRS[0]["a"], "candidates": candidates, "method": name, "top_k": 2}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        expected = _engine(runtime).rank(PAIRS[0]["a"], candidates, name, 2, prune=False)
        assert [r["index"] for r in body["results"]] == [r.index for r in expected.results]
        assert body["exact_solves"] + body["pruned"] == (len(candidates) if method.prunable else 0)


def test_truncation_names_the_fields_it_cut(client: Client) -> None:
    long_text = "word " * 40
    response = client.post("/similarity", {"pairs": [{"a": "short", "b": long_text}], "truncate": True})
    assert response.status_code == 200 and response.json()["truncated"] == ["pairs[0].b"]
    ranked = client.post("/similarity/rank", {"source": long_text, "candidates": ["x", long_text], "truncate": True})
    assert ranked.status_code == 200 and ranked.json()["truncated"] == ["source", "candidates[1]"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/similarity", {"pairs": [PAIRS[0], {"a": "x", "b": "word " * 40}]}, "pairs[1].b"),
        ("/similarity", {"pairs": PAIRS * 3}, "pairs"),
        ("/similarity", {"pairs": PAIRS, "method": "jaccard"}, "method"),
        ("/similarity", {"pairs": PAIRS, "method": "wcd", "alignment": True}, "alignment"),
        ("/similarity/rank", {"source": "x", "candidates": ["y"] * 7}, "candidates"),
        ("/similarity/rank", {"source": "x", "candidates": ["y", "word " * 40]}, "candidates[1]"),
    ],
)
def test_bad_requests_name_the_field(client: Client, path: str, body: dict, field: str) -> None:
    assert_names_field(client.post(path, body), field)


def test_the_schema_offers_exactly_the_tables_methods(client: Client) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    method = schema["SimilarityRequest"]["properties"]["method"]
    assert method["enum"] == list(METHOD_NAMES) and method["default"] == DEFAULT_METHOD == "anchored-wrd"
    assert all(row.description in method["description"] for row in METHODS.values())
    assert LIMITS["max_pairs"] == 4  # the limits these tests rely on


@pytest.mark.parametrize("method", [name for name, row in METHODS.items() if row.alignment])
def test_the_full_plan_tokens_and_cosine_describe_the_pair(client: Client, method: str) -> None:
    body = {"pairs": PAIRS[:1], "method": method, "alignment": "full", "tokens": True, "cosine": True}
    response = client.post("/similarity", body)
    assert response.status_code == 200, response.text
    (pair,) = response.json()["results"]
    a_tokens, b_tokens, cells = pair["a_tokens"], pair["b_tokens"], pair["alignment"]
    assert sum(t["weight"] for t in a_tokens) == pytest.approx(1)
    assert sum(t["weight"] for t in b_tokens) == pytest.approx(1)
    assert sum(cell["mass"] for cell in cells) == pytest.approx(1)  # every cell that carries mass
    assert all(cell["mass"] > 0 for cell in cells) and len(cells) >= min(len(a_tokens), len(b_tokens))
    assert [t["token"] for t in a_tokens][:2] == ["[CLS]", "a"] and a_tokens[1]["span"] == [0, 1]
    assert len(pair["cosine"]) == len(a_tokens) and {len(row) for row in pair["cosine"]} == {len(b_tokens)}
    guitar_a = next(i for i, t in enumerate(a_tokens) if t["token"] == "guitar")
    guitar_b = next(j for j, t in enumerate(b_tokens) if t["token"] == "guitar")
    assert pair["cosine"][guitar_a][guitar_b] == max(pair["cosine"][guitar_a]) > 0.9


def test_plan_rows_sum_to_the_token_weights(client: Client) -> None:
    body = {"pairs": PAIRS[1:], "method": "wrd", "alignment": "full", "tokens": True}
    (pair,) = client.post("/similarity", body).json()["results"]
    rows = [0.0] * len(pair["a_tokens"])
    for cell in pair["alignment"]:
        rows[cell["a_index"]] += cell["mass"]
    assert rows == pytest.approx([t["weight"] for t in pair["a_tokens"]], abs=1e-9)


def test_cosine_matrices_are_limited_per_request(client: Client, runtime: Runtime) -> None:
    limit = runtime.settings.max_cosine_cells
    long_pair = {"a": "word " * 29, "b": "word " * 29}  # 31 x 31 tokens with [CLS]/[SEP]
    pairs = [long_pair] * (limit // (31 * 31) + 1)
    assert len(pairs) <= LIMITS["max_pairs"]
    assert_names_field(client.post("/similarity", {"pairs": pairs, "cosine": True}), "cosine")
    assert_names_field(client.post("/similarity", {"pairs": PAIRS, "method": "wcd", "alignment": "full"}), "alignment")
