"""What one link query may ask for: checked the same way for a ``/link-entity`` request and for a
row of a bulk ``simlink link`` job, so that a file cannot ask a job for more than the server allows.

The types of the fields are the caller's to check (pydantic at the HTTP edge, the row reader for
files). :func:`query_problem` checks what a well-typed :class:`~models.linking.query.LinkQuery` may
still get wrong: the deployment's limits, fields that do not apply to its task, a mention span
outside the text. :func:`index_problem` checks it against the index it would run on: a task the
index has no trie for, candidate ids it does not hold.

This module loads no model code (the engine is only a type here).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.linking.query import AUTO, MENTION_END, MENTION_START, LinkQuery, UnknownCandidatesError

if TYPE_CHECKING:
    from models.linking.engine import LinkingEngine


@dataclass(frozen=True)
class LinkLimits:
    """The largest query a deployment accepts (the server's settings ``SIMLINK_MAX_LINK_CHARS``,
    ``SIMLINK_MAX_BEAMS`` and ``SIMLINK_MAX_LINK_CANDIDATES`` hold its values)."""

    max_chars: int
    max_beams: int
    max_candidates: int


NO_SIZE_LIMITS = LinkLimits(sys.maxsize, sys.maxsize, sys.maxsize)
"""No size limits: the other checks remain (``top_k`` at most ``num_beams``, task fields, the
mention span)."""


@dataclass(frozen=True)
class QueryProblem:
    """Why a query is refused: the field (a path such as ``("mention", "end")``), a message that reads
    after the field's name, and a kind (``too_long`` for a size limit, ``unknown_id`` for candidate
    ids the index does not hold, else ``value_error``)."""

    field: tuple[str, ...]
    message: str
    kind: str = "value_error"

    def __str__(self) -> str:
        return f'"{".".join(self.field)}" {self.message}'


def query_problem(query: LinkQuery, limits: LinkLimits) -> QueryProblem | None:
    """The first problem with ``query`` under ``limits``, or None if it may be linked."""
    return _size_problem(query, limits) or _task_problem(query) or _mention_problem(query)


def index_problem(query: LinkQuery, engine: LinkingEngine) -> QueryProblem | None:
    """The first problem with ``query`` on ``engine``'s index (a kbqa query on an index built
    without facts, candidate ids the index does not hold), or None. The server's route asks only
    :func:`task_problem_on`: its async façade looks the ids up itself, once, off the event loop."""
    if problem := task_problem_on(query, engine):
        return problem
    if query.candidates not in (None, AUTO):
        try:
            engine.check_candidates(query.candidates)  # type: ignore[arg-type]
        except UnknownCandidatesError as error:
            return unknown_ids_problem(error)
    return None


def task_problem_on(query: LinkQuery, engine: LinkingEngine) -> QueryProblem | None:
    """A kbqa query on an index built without facts, or None."""
    if engine.supports(query.task):
        return None
    return QueryProblem(("task",), "the index has no facts for kbqa (build it with 'simlink build-index --facts')")


def unknown_ids_problem(error: UnknownCandidatesError) -> QueryProblem:
    """The problem of candidate ids the index does not hold, wherever they were looked up."""
    return QueryProblem(("candidates",), f"has {error}", "unknown_id")


def _size_problem(query: LinkQuery, limits: LinkLimits) -> QueryProblem | None:
    if len(query.text) > limits.max_chars:
        message = f"has {len(query.text)} characters, more than the limit of {limits.max_chars}"
        return QueryProblem(("text",), message, "too_long")
    if query.num_beams > limits.max_beams:
        return QueryProblem(("num_beams",), f"is {query.num_beams}, more than the limit of {limits.max_beams}")
    if query.top_k > query.num_beams:
        message = f"is {query.top_k}, more than num_beams ({query.num_beams}); "
        message += "beam search returns at most num_beams results"
        return QueryProblem(("top_k",), message)
    if query.candidates not in (None, AUTO) and len(query.candidates) > limits.max_candidates:  # type: ignore[arg-type]
        message = f"has {len(query.candidates)} ids, more than the limit of {limits.max_candidates}"  # type: ignore[arg-type]
        return QueryProblem(("candidates",), message, "too_long")
    return None


def _task_problem(query: LinkQuery) -> QueryProblem | None:
    if query.task != "kbqa":
        return None
    if query.mention is not None:
        return QueryProblem(("mention",), "applies to task 'entity' only")
    if query.candidates not in (None, AUTO):
        return QueryProblem(("candidates",), "must be 'auto' for task 'kbqa' (a list of entity ids is for 'entity')")
    if query.several:
        return QueryProblem(("several",), "applies to task 'entity' only")
    return None


def _mention_problem(query: LinkQuery) -> QueryProblem | None:
    if query.mention is None:
        return None
    start, end = query.mention
    if end <= start:
        return QueryProblem(("mention", "end"), f"is {end}, not after start ({start})")
    if end > len(query.text):
        return QueryProblem(("mention", "end"), f"is {end}, past the end of the text ({len(query.text)} characters)")
    if not query.text[start:end].strip():
        return QueryProblem(("mention",), "covers only white space")
    if MENTION_START in query.text or MENTION_END in query.text:
        message = f"is given twice, as a span and as {MENTION_START} markers in the text; give one, not both"
        return QueryProblem(("mention",), message)
    return None
