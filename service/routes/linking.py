"""``POST /link-entity``: generative entity linking and KBQA, constrained to the knowledge base."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from models.linking import (
    EntityMatch,
    LinkingEngine,
    LinkLimits,
    LinkQuery,
    UnknownCandidatesError,
    query_problem,
    task_problem_on,
    unknown_ids_problem,
)
from service.dependencies import RuntimeDep
from service.errors import ERROR_RESPONSES, FieldError
from service.runtime import link_limits
from service.schemas import EntityResult, KbqaResult, LinkRequest, LinkResponse, TextSpan

router = APIRouter(tags=["linking"])

NOT_CONFIGURED = (
    "entity linking is not configured on this server: set SIMLINK_LINK_MODEL (a model directory from "
    "'simlink train') and SIMLINK_LINK_INDEX (an index from 'simlink build-index'); /similarity still works"
)


def _checked_query(request: LinkRequest, limits: LinkLimits, linker: LinkingEngine) -> LinkQuery:
    """The request as an engine query, refused with the field it gets wrong (the checks a bulk job
    applies to its rows; unknown candidate ids are the façade's to find)."""
    mention = (request.mention.start, request.mention.end) if request.mention else None
    query = LinkQuery(
        request.text, request.task, mention, request.top_k, request.num_beams, request.candidates, request.several
    )
    if problem := query_problem(query, limits) or task_problem_on(query, linker):
        raise FieldError(problem.field, problem.message, problem.kind)
    return query


def _entity_result(match: EntityMatch) -> EntityResult:
    mention = TextSpan(start=match.mention[0], end=match.mention[1]) if match.mention else None
    return EntityResult(
        id=match.id, name=match.name, score=match.score, disambiguation=match.disambiguation, mention=mention
    )


@router.post(
    "/link-entity",
    response_model=LinkResponse,
    response_model_exclude_none=True,  # "disambiguation" only where entities share the name
    responses={**ERROR_RESPONSES, 503: {"description": "No linker model or index is configured."}},
    summary="Link a mention to a KB entity, or a question to a KB subject and predicate",
)
async def link_entity(request: LinkRequest, runtime: RuntimeDep) -> LinkResponse:
    """Beam search over the names in the index only, so every result exists in the knowledge base.

    ``task: entity`` returns entities (ids sharing a generated name are all listed);
    ``task: kbqa`` returns (subject, predicate) pairs with their answers from the KB.
    """
    if runtime.linker is None:
        raise HTTPException(status_code=503, detail=NOT_CONFIGURED)
    linker = runtime.linker.engine
    query = _checked_query(request, link_limits(runtime.settings), linker)
    try:
        matches = await runtime.linker.link(query)  # looks the candidate ids up first, off the event loop
    except UnknownCandidatesError as error:
        problem = unknown_ids_problem(error)
        raise FieldError(problem.field, problem.message, problem.kind) from error
    results = [
        _entity_result(match)
        if isinstance(match, EntityMatch)
        else KbqaResult(
            subject=match.subject, predicate=match.predicate, answers=list(match.answers), score=match.score
        )
        for match in matches
    ]
    return LinkResponse(task=request.task, model=linker.model.name, index=str(linker.index.path), results=results)
