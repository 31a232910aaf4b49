"""``POST /similarity`` (score pairs) and ``POST /similarity/rank`` (rank candidates).

Each route checks the deployment's limits, hands the texts to the similarity engine's async
façade (which tokenizes, batches and scores) and converts the result; a text over the token
limit becomes a 422 naming its field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import TypeVar

from fastapi import APIRouter, Response

from models.similarity import PairScore, TextError, TextTooLongError
from models.similarity.scoring import ALL_CELLS
from service.dependencies import RuntimeDep
from service.errors import ERROR_RESPONSES, FieldError, Location, field_path
from service.schemas import (
    PairResult,
    RankedResult,
    RankRequest,
    RankResponse,
    SimilarityRequest,
    SimilarityResponse,
    json_response,
)

router = APIRouter(tags=["similarity"])
T = TypeVar("T")


def _at_most(location: Location, count: int, limit: int, what: str) -> None:
    if count > limit:
        raise FieldError(location, f"has {count} {what}, more than the limit of {limit}", "too_long")


async def _naming_bad_texts(work: Awaitable[T], locations: Sequence[Location]) -> T:
    """Awaits ``work``; a text over the token limit, or with no tokens, becomes a 422 naming its field."""
    try:
        return await work
    except TextError as error:
        kind = "too_many_tokens" if isinstance(error, TextTooLongError) else "no_tokens"
        raise FieldError(locations[error.index], error.problem, kind) from error


def _fields(locations: Sequence[Location], positions: Sequence[int]) -> list[str]:
    return [field_path(locations[position]) for position in positions]


@router.post(
    "/similarity",
    response_model=SimilarityResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    summary="Score pairs of texts",
)
async def similarity(request: SimilarityRequest, runtime: RuntimeDep) -> Response:
    """One result per pair, in order: the distance, the similarity and, with ``alignment``,
    the heaviest token pairs of the transport plan."""
    settings = runtime.settings
    _at_most(("pairs",), len(request.pairs), settings.max_pairs, "pairs")
    locations = [("pairs", i, side) for i in range(len(request.pairs)) for side in ("a", "b")]
    scored = await _naming_bad_texts(
        runtime.similarity.compare(
            [(pair.a, pair.b) for pair in request.pairs],
            method=request.method,
            alignment=_alignment_cells(request.alignment, settings.max_alignment_pairs),
            truncate=request.truncate,
            skip_special_tokens=request.skip_special_tokens,
            tokens=request.tokens,
            cosine=request.cosine,
        ),
        locations,
    )
    cells = sum(score.cosine.size for score in scored.scores if score.cosine is not None)
    _at_most(("cosine",), cells, settings.max_cosine_cells, "matrix cells in all")
    response = SimilarityResponse(
        method=request.method,
        model=runtime.similarity.encoder.name,
        results=[_pair_result(score) for score in scored.scores],
        truncated=_fields(locations, scored.truncated),
    )
    return json_response(response)


def _alignment_cells(alignment: bool | str, limit: int) -> int:
    """How many plan cells to return: none, the ``limit`` heaviest, or all (``"full"``)."""
    if alignment == "full":
        return ALL_CELLS
    return limit if alignment else 0


def _pair_result(score: PairScore) -> PairResult:
    """The response row of a score; the cosine matrix becomes nested lists rounded to 4 places."""
    result = PairResult.model_validate(replace(score, cosine=None), from_attributes=True)
    if score.cosine is not None:
        result.cosine = score.cosine.round(4).tolist()
    return result


@router.post("/similarity/rank", response_model=RankResponse, responses=ERROR_RESPONSES, summary="Rank candidates")
async def rank(request: RankRequest, runtime: RuntimeDep) -> Response:
    """The ``top_k`` candidates most similar to ``source``, best first. For the exact transport
    methods (wrd, wmd), centroid and relaxed lower bounds skip exact solves that cannot reach the
    top k; the result is the same as solving every candidate."""
    _at_most(("candidates",), len(request.candidates), runtime.settings.max_candidates, "candidates")
    locations = [("source",), *[("candidates", i) for i in range(len(request.candidates))]]
    ranked = await _naming_bad_texts(
        runtime.similarity.rank(
            request.source,
            request.candidates,
            method=request.method,
            top_k=min(request.top_k, len(request.candidates)),
            truncate=request.truncate,
            skip_special_tokens=request.skip_special_tokens,
        ),
        locations,
    )
    ranking = ranked.ranking
    response = RankResponse(
        method=request.method,
        model=runtime.similarity.encoder.name,
        results=[RankedResult.model_validate(r, from_attributes=True) for r in ranking.results],
        truncated=_fields(locations, ranked.truncated),
        exact_solves=ranking.exact_solves,
        pruned=ranking.pruned,
    )
    return json_response(response)
