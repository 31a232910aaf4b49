"""``POST /link-entity``: generative entity linking and KBQA, constrained to the knowledge base."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from models.linking import MENTION_END, MENTION_START, EntityMatch, LinkingEngine, LinkQuery, UnknownCandidatesError
from service.dependencies import RuntimeDep
from service.errors import ERROR_RESPONSES, FieldError
from service.schemas import EntityResult, KbqaResult, LinkRequest, LinkResponse, TextSpan
from service.settings import Settings

router = APIRouter(tags=["linking"])

NOT_CONFIGURED = (
    "entity linking is not configured on this server: set SIMLINK_LINK_MODEL (a model directory from "
    "'simlink train') and SIMLINK_LINK_INDEX (an index from 'simlink build-index'); /similarity still works"
)


def _check_limits(request: LinkRequest, settings: Settings) -> None:
    if len(request.text) > settings.max_link_chars:
        raise FieldError(
            ("text",),
            f"has {len(request.text)} characters, more than the limit of {settings.max_link_chars}",
            "too_long",
        )
    if request.num_beams > settings.max_beams:
        raise FieldError(("num_beams",), f"is {request.num_beams}, more than the limit of {settings.max_beams}")
    if request.top_k > request.num_beams:
        raise FieldError(
            ("top_k",),
            f"is {request.top_k}, more than num_beams ({request.num_beams}); "
            "beam search returns at most num_beams results",
        )
    if isinstance(request.candidates, list) and len(request.candidates) > settings.max_link_candidates:
        raise FieldError(
            ("candidates",),
            f"has {len(request.candidates)} ids, more than the limit of {settings.max_link_candidates}",
            "too_long",
        )


def _check_task_fields(request: LinkRequest) -> None:
    if request.task == "kbqa":
        if request.mention is not None:
            raise FieldError(("mention",), "applies to task 'entity' only")
        if isinstance(request.candidates, list):
            raise FieldError(("candidates",), "a list of entity ids applies to task 'entity' only; kbqa takes 'auto'")
        if request.several:
            raise FieldError(("several",), "applies to task 'entity' only")
    if request.mention is not None:
        start, end = request.mention.start, request.mention.end
        if end <= start:
            raise FieldError(("mention", "end"), f"is {end}, not after start ({start})")
        if end > len(request.text):
            raise FieldError(("mention", "end"), f"is {end}, past the end of the text ({len(request.text)} characters)")
        if not request.text[start:end].strip():
            raise FieldError(("mention",), "covers only white space")
        if MENTION_START in request.text or MENTION_END in request.text:
            raise FieldError(("mention",), f"give the mention as a span or as {MENTION_START} markers, not both")


def _check_index_has(request: LinkRequest, linker: LinkingEngine) -> None:
    if not linker.supports(request.task):
        raise FieldError(("task",), "the index has no facts for kbqa (build it with 'simlink build-index --facts')")


def _entity_result(match: EntityMatch) -> EntityResult:
    mention = TextSpan(start=match.mention[0], end=match.mention[1]) if match.mention else None
    return EntityResult(
        id=match.id, name=match.name, score=match.score, disambiguation=match.disambiguation, mention=mention
    )


def _query(request: LinkRequest) -> LinkQuery:
    mention = (request.mention.start, request.mention.end) if request.mention else None
    return LinkQuery(
        request.text, request.task, mention, request.top_k, request.num_beams, request.candidates, request.several
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
    _check_limits(request, runtime.settings)
    _check_task_fields(request)
    _check_index_has(request, linker)
    try:
        matches = await runtime.linker.link(_query(request))
    except UnknownCandidatesError as error:
        raise FieldError(("candidates",), str(error), "unknown_id") from error
    results = [
        _entity_result(match)
        if isinstance(match, EntityMatch)
        else KbqaResult(
            subject=match.subject, predicate=match.predicate, answers=list(match.answers), score=match.score
        )
        for match in matches
    ]
    return LinkResponse(task=request.task, model=linker.model.name, index=str(linker.index.path), results=results)
