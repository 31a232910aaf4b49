"""One check of what a link query may ask for, shared by /link-entity and bulk link rows."""

from __future__ import annotations

import pytest

from models.linking import MENTION_START, LinkQuery
from models.linking.limits import NO_SIZE_LIMITS, LinkLimits, query_problem

LIMITS = LinkLimits(max_chars=20, max_beams=6, max_candidates=2)


def test_a_query_within_the_limits_has_no_problem() -> None:
    query = LinkQuery("Paris is big", mention=(0, 5), top_k=6, num_beams=6, candidates=("a", "b"))
    assert query_problem(query, LIMITS) is None
    assert query_problem(LinkQuery("capital of Japan?", "kbqa", candidates="auto"), LIMITS) is None


@pytest.mark.parametrize(
    ("query", "field", "kind", "words"),
    [
        (LinkQuery("x" * 21), ("text",), "too_long", "21 characters, more than the limit of 20"),
        (LinkQuery("Paris", num_beams=7), ("num_beams",), "value_error", "7, more than the limit of 6"),
        (LinkQuery("Paris", top_k=5, num_beams=4), ("top_k",), "value_error", "more than num_beams (4)"),
        (LinkQuery("Paris", candidates=("a", "b", "c")), ("candidates",), "too_long", "3 ids"),
        (LinkQuery("capital of Japan", "kbqa", mention=(0, 7)), ("mention",), "value_error", "'entity' only"),
        (
            LinkQuery("capital of Japan", "kbqa", candidates=("a",)),
            ("candidates",),
            "value_error",
            "must be 'auto' for task 'kbqa'",
        ),
        (LinkQuery("capital of Japan", "kbqa", several=True), ("several",), "value_error", "'entity' only"),
        (LinkQuery("Paris", mention=(3, 3)), ("mention", "end"), "value_error", "not after start (3)"),
        (LinkQuery("Paris", mention=(0, 6)), ("mention", "end"), "value_error", "past the end of the text (5"),
        (LinkQuery("a   b", mention=(1, 3)), ("mention",), "value_error", "white space"),
        (LinkQuery(f"{MENTION_START} Paris", mention=(0, 5)), ("mention",), "value_error", "not both"),
    ],
)
def test_each_problem_names_its_field(query: LinkQuery, field: tuple[str, ...], kind: str, words: str) -> None:
    problem = query_problem(query, LIMITS)
    assert problem is not None
    assert (problem.field, problem.kind) == (field, kind)
    assert words in problem.message
    assert str(problem).startswith(f'"{".".join(field)}" ')


def test_without_size_limits_only_consistency_is_checked() -> None:
    assert query_problem(LinkQuery("x" * 10_000, num_beams=500, candidates=tuple("abc")), NO_SIZE_LIMITS) is None
    problem = query_problem(LinkQuery("Paris", top_k=9, num_beams=4), NO_SIZE_LIMITS)
    assert problem is not None and problem.field == ("top_k",)
