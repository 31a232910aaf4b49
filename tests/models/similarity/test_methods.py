"""The method table: every method's row is consistent, and the documentation is read from it."""

from __future__ import annotations

import numpy as np
import pytest

from models.similarity.methods import DEFAULT_METHOD, METHOD_NAMES, METHODS, method_named
from models.similarity.transport import Transport
from support.data import REPO


def readme_method_row(name: str) -> str:
    method = METHODS[name]
    return f"| `{name}` | {method.description} | {method.similarity_rule} | {'yes' if method.alignment else 'no'} |"


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_readme_lists_each_method_as_its_row_says(name: str) -> None:
    assert readme_method_row(name) in (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_a_row_gives_a_plan_exactly_when_it_claims_an_alignment(name: str) -> None:
    rng = np.random.default_rng(3)
    method = METHODS[name]
    result = method.distance(rng.normal(size=(4, 5)), rng.normal(size=(3, 5)))
    assert isinstance(result, Transport) == method.alignment
    distance = result.distance if isinstance(result, Transport) else result
    assert np.isfinite(method.similarity(distance))


def test_prunable_methods_are_the_exact_ones_and_their_bounds_hold() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(5, 4)), rng.normal(size=(7, 4))
    for method in METHODS.values():
        if method.bounds is None:
            continue
        exact = method.distance(x, y).distance
        geometry = method.bounds
        centroid = float(geometry.centroid_gap(geometry.centroid(x), geometry.centroid(y)[None, :])[0])
        assert centroid <= exact + 1e-9
    assert {name for name, method in METHODS.items() if method.prunable} == {"anchored-wrd", "wrd", "wmd"}


def test_the_default_is_a_row_and_unknown_names_list_the_known_ones() -> None:
    assert method_named(DEFAULT_METHOD).name == DEFAULT_METHOD
    with pytest.raises(ValueError, match=", ".join(METHOD_NAMES)):
        method_named("jaccard")


def test_similarities_of_the_cosine_style_methods_lie_between_minus_one_and_one() -> None:
    rng = np.random.default_rng(11)
    for _ in range(50):
        x, y = rng.normal(size=(rng.integers(1, 8), 6)), rng.normal(size=(rng.integers(1, 8), 6))
        for name in ("anchored-wrd", "wrd", "cosine", "greedy"):
            result = METHODS[name].distance(x, y)
            distance = result.distance if isinstance(result, Transport) else result
            assert -1.0 - 1e-9 <= METHODS[name].similarity(distance) <= 1.0 + 1e-9, name


def test_pooled_cosine_is_the_cosine_of_the_mean_vectors() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(3, 5)), rng.normal(size=(6, 5))
    p, q = x.mean(axis=0), y.mean(axis=0)
    expected = p @ q / np.linalg.norm(p) / np.linalg.norm(q)
    assert METHODS["cosine"].similarity(METHODS["cosine"].distance(x, y)) == pytest.approx(expected, abs=1e-12)
