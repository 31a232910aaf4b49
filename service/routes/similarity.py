"""``POST /similarity`` (score pairs) and ``POST /similarity/rank`` (rank candidates)."""

from __future__ import annotations

from asyncio import to_thread
from collections.abc import Sequence

from fastapi import APIRouter, Response

from models.encoder import EncodedText, TextTooLongError, TokenEncoder, TokenizedText
from models.similarity import rank_candidates, score_pair
from service.dependencies import RuntimeDep
from service.errors import FieldError, Location, field_path
from service.runtime import Runtime
from service.schemas import (
    ErrorResponse,
    PairResult,
    RankedResult,
    RankRequest,
    RankResponse,
    SimilarityRequest,
    SimilarityResponse,
    json_response,
)

router = APIRouter(tags=["similarity"])

ERROR_RESPONSES: dict[int | str, dict] = {
    413: {"model": ErrorResponse, "description": "The request body is too large."},
    422: {"model": ErrorResponse, "description": "A field is invalid; the message names it."},
}


def _at_most(location: Location, count: int, limit: int, what: str) -> None:
    if count > limit:
        raise FieldError(location, f"has {count} {what}, more than the limit of {limit}", "too_long")


def _tokenize(
    encoder: TokenEncoder, texts: Sequence[str], locations: Sequence[Location], truncate: bool
) -> list[TokenizedText]:
    try:
        return encoder.tokenize(texts, truncate=truncate)
    except TextTooLongError as error:
        raise FieldError(
            locations[error.index],
            f"has {error.token_count} tokens, more than the limit of {error.limit} (set truncate to cut it)",
            "too_many_tokens",
        ) from error


async def _encode(
    runtime: Runtime, texts: Sequence[str], locations: Sequence[Location], truncate: bool
) -> tuple[list[TokenizedText], list[EncodedText]]:
    """Tokenizes (422 for a text over the limit) and encodes in the shared batch."""
    tokenized = await to_thread(_tokenize, runtime.encoder, texts, locations, truncate)
    return tokenized, await runtime.encoder_batcher.submit(tokenized)


def _skip_special_tokens(request: SimilarityRequest | RankRequest, runtime: Runtime) -> bool:
    if request.skip_special_tokens is None:
        return runtime.settings.skip_special_tokens
    return request.skip_special_tokens


def _truncated_fields(locations: Sequence[Location], tokenized: Sequence[TokenizedText]) -> list[str]:
    return [field_path(loc) for loc, text in zip(locations, tokenized, strict=True) if text.truncated]


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
    texts = [text for pair in request.pairs for text in (pair.a, pair.b)]
    tokenized, encoded = await _encode(runtime, texts, locations, request.truncate)
    skip = _skip_special_tokens(request, runtime)
    alignment = settings.max_alignment_pairs if request.alignment else 0

    def score_all() -> list[PairResult]:
        scores = [
            score_pair(encoded[2 * k], encoded[2 * k + 1], request.method, alignment, skip)
            for k in range(len(request.pairs))
        ]
        return [PairResult.model_validate(score, from_attributes=True) for score in scores]

    response = SimilarityResponse(
        method=request.method,
        model=runtime.encoder.name,
        results=await to_thread(score_all),
        truncated=_truncated_fields(locations, tokenized),
    )
    return json_response(response)


@router.post("/similarity/rank", response_model=RankResponse, responses=ERROR_RESPONSES, summary="Rank candidates")
async def rank(request: RankRequest, runtime: RuntimeDep) -> Response:
    """The ``top_k`` candidates most similar to ``source``, best first. For wrd and wmd, the
    centroid and relaxed lower bounds skip exact solves that cannot reach the top k; the result
    is the same as solving every candidate."""
    settings = runtime.settings
    _at_most(("candidates",), len(request.candidates), settings.max_candidates, "candidates")
    locations = [("source",), *[("candidates", i) for i in range(len(request.candidates))]]
    texts = [request.source, *request.candidates]
    tokenized, encoded = await _encode(runtime, texts, locations, request.truncate)
    skip = _skip_special_tokens(request, runtime)
    top_k = min(request.top_k, len(request.candidates))
    ranking = await to_thread(rank_candidates, encoded[0], encoded[1:], request.method, top_k, True, skip)
    response = RankResponse(
        method=request.method,
        model=runtime.encoder.name,
        results=[RankedResult.model_validate(r, from_attributes=True) for r in ranking.results],
        truncated=_truncated_fields(locations, tokenized),
        exact_solves=ranking.exact_solves,
        pruned=ranking.pruned,
    )
    return json_response(response)
