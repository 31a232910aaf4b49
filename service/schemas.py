"""Request and response bodies of the HTTP API (pydantic lives at this edge only).

Limits that depend on the deployment (pairs per request, candidates, tokens) are settings and
are checked by the routes; what is fixed by the API itself is checked here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from models.similarity.methods import DEFAULT_METHOD, METHOD_NAMES, METHODS
from service.settings import Settings

MethodName = Literal[METHOD_NAMES]  # the allowed values come from the method table
METHOD_HELP = "; ".join(f"{name}: {method.description}" for name, method in METHODS.items())


CONTENT = "[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff]"
"""A character that is not white space, a control or a zero-width/format character: a text must have
one (the pattern is searched, not anchored). The encoder checks the rest: a text whose characters
all vanish in its tokenizer's normalisation (a lone accent, for example) is refused after tokenizing."""


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain more than white space")
    return text


Text = Annotated[
    str,
    Field(
        min_length=1,
        pattern=CONTENT,
        description="A text with at least one character other than white space, control or zero-width "
        "characters, and at least one token once the encoder's tokenizer has normalised it.",
    ),
    AfterValidator(_not_blank),
]


class _Strict(BaseModel):
    """Request bodies: unknown fields are refused, and types are not coerced (``0`` is no boolean,
    ``"5"`` no number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TextPair(_Strict):
    a: Text
    b: Text


class _Options(_Strict):
    method: MethodName = Field(DEFAULT_METHOD, description=METHOD_HELP)
    truncate: bool = Field(False, description="Cut texts over the token limit instead of rejecting them.")
    skip_special_tokens: bool | None = Field(
        None, description="Leave [CLS]/[SEP] out of the transport (default: the server's setting)."
    )


class SimilarityRequest(_Options):
    """Scores each pair of texts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pairs": [
                        {"a": "A man is playing a guitar.", "b": "A person plays the guitar."},
                        {"a": "A man is playing a guitar.", "b": "The stock market fell sharply."},
                    ],
                    "method": "wrd",
                    "alignment": True,
                }
            ]
        }
    )

    pairs: list[TextPair] = Field(min_length=1, description="The pairs to score, answered in order.")
    alignment: bool | Literal["full"] = Field(
        False,
        description="true: the heaviest cells of each transport plan (at most the server's max_alignment_pairs); "
        '"full": every cell that carries mass (the sparse plan).',
    )
    tokens: bool = Field(False, description="Return every token of both texts with the mass it carries.")
    cosine: bool = Field(
        False,
        description="Return the token-by-token cosine matrix of each pair (rows: tokens of a), "
        "at most the server's max_cosine_cells cells per request.",
    )

    @field_validator("alignment")
    @classmethod
    def _alignment_needs_a_plan(cls, alignment: bool | str, info: ValidationInfo) -> bool | str:
        method = info.data.get("method")
        if alignment and method is not None and not METHODS[method].alignment:
            raise ValueError(f"is not defined for method {method!r}")
        return alignment


class RankRequest(_Options):
    """Ranks candidates by similarity to one source text."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source": "A man is playing a guitar.",
                    "candidates": [
                        "The stock market fell sharply.",
                        "A person plays the guitar.",
                        "A woman is slicing an onion.",
                    ],
                    "method": "wrd",
                    "top_k": 2,
                }
            ]
        }
    )

    source: Text
    candidates: list[Text] = Field(min_length=1, description="Texts to rank against the source.")
    top_k: int = Field(10, ge=1, description="How many of the best candidates to return.")


class AlignedTokensOut(BaseModel):
    """``mass`` moved from token ``a_index`` of text a to token ``b_index`` of text b.

    Spans are character offsets in the texts (``[0, 0]`` for [CLS]/[SEP]); ``cost`` is the
    price per unit of mass (cosine distance for wrd/greedy, euclidean for wmd/rwmd).
    """

    a_index: int
    b_index: int
    a_token: str
    b_token: str
    a_span: tuple[int, int]
    b_span: tuple[int, int]
    mass: float
    cost: float


class WeightedTokenOut(BaseModel):
    """A token as the transport saw it: text, character span (``[0, 0]`` for [CLS]/[SEP]) and its mass."""

    token: str
    span: tuple[int, int]
    weight: float


class PairResult(BaseModel):
    distance: float
    similarity: float
    alignment: list[AlignedTokensOut] | None = None
    a_tokens: list[WeightedTokenOut] | None = Field(None, description="With tokens: text a's tokens, in plan rows.")
    b_tokens: list[WeightedTokenOut] | None = Field(None, description="With tokens: text b's tokens, in plan columns.")
    cosine: list[list[float]] | None = Field(None, description="With cosine: cos(a_i, b_j), rounded to 4 places.")


class SimilarityResponse(BaseModel):
    method: MethodName
    model: str
    results: list[PairResult]
    truncated: list[str] = Field(
        default_factory=list, description="Fields whose text was cut to the token limit (with truncate)."
    )


class RankedResult(BaseModel):
    index: int = Field(description="Position of the candidate in the request.")
    distance: float
    similarity: float


class RankResponse(BaseModel):
    method: MethodName
    model: str
    results: list[RankedResult] = Field(description="The best candidates, best first.")
    truncated: list[str] = Field(default_factory=list)
    exact_solves: int = Field(description="Exact transport problems solved.")
    pruned: int = Field(description="Candidates whose exact solve the lower bounds made unnecessary.")


class MentionSpan(_Strict):
    """A span ``[start, end)`` of the text in Unicode code points (Python string offsets): the mention to link."""

    start: int = Field(ge=0, description="First character of the mention.")
    end: int = Field(ge=1, description="One past the last character of the mention.")


class TextSpan(BaseModel):
    """A span ``[start, end)`` of the request's text in Unicode code points (Python string offsets)."""

    start: int
    end: int


class LinkRequest(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"text": "Which river flows through Paris?", "task": "entity", "mention": {"start": 26, "end": 31}},
                {"text": "Is Marie Curie from France?", "task": "entity", "several": True},
                {"text": "What currency is used in Japan?", "task": "kbqa", "top_k": 3},
            ]
        },
    )

    text: Text
    task: Literal["entity", "kbqa"] = Field(
        "entity", description="entity: name the entity mentioned; kbqa: find the (subject, predicate) asked for."
    )
    mention: MentionSpan | None = Field(
        None, description="The mention's character span (entity task); or mark it with [START_ENT] ... [END_ENT]."
    )
    top_k: int = Field(5, ge=1, description="How many results to return (at most num_beams).")
    num_beams: int = Field(5, ge=1, description="Beam width of the constrained search.")
    candidates: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | Literal["auto"] | None = (
        Field(
            None,
            description="Narrows the search: a list of entity ids the answer must come from (entity task), or "
            '"auto" for the KB names the text writes (either task; the whole index when it writes none).',
        )
    )
    several: bool = Field(
        False,
        description="Entity task: every entity the text mentions instead of a ranking of answers for one: the "
        "best result, then each further beam whose name the text writes where no chosen name is written (and "
        "that is not part of a chosen name the text does not write as such), one entity per name (at most top_k).",
    )


class EntityResult(BaseModel):
    id: str = Field(description="Entity id in the knowledge base.")
    name: str = Field(description="The entity's name, as generated.")
    score: float = Field(description="Log-probability of the generated name under the model.")
    disambiguation: float | None = Field(
        None,
        description="Where several entities share the generated name: the similarity of this entity's description "
        "to the text, which ordered them (absent when the name is the entity's alone).",
    )
    mention: TextSpan | None = Field(
        None, description="Where the text writes the entity's name (absent when it does not write it)."
    )


class KbqaResult(BaseModel):
    subject: str
    predicate: str
    answers: list[str] = Field(description="Objects of (subject, predicate) in the knowledge base.")
    score: float = Field(description="Log-probability of the generated subject and predicate.")


class LinkResponse(BaseModel):
    task: str
    model: str = Field(description="The linker model's name.")
    index: str = Field(description="The index directory the names come from.")
    results: list[EntityResult] | list[KbqaResult] = Field(description="Best first.")


def json_response(body: BaseModel) -> Response:
    """``body`` as a JSON response, ``None`` fields left out. Serialized once by pydantic: a route
    returning the model itself would have FastAPI validate and serialize it a second time."""
    return Response(body.model_dump_json(exclude_none=True), media_type="application/json")


def deployment_limits(settings: Settings) -> list[tuple[str, str, str, int]]:
    """``(model, field, JSON-schema keyword, value)`` for each limit the settings put on a request,
    written into the OpenAPI schema; the routes check the same settings."""
    return [
        ("SimilarityRequest", "pairs", "maxItems", settings.max_pairs),
        ("RankRequest", "candidates", "maxItems", settings.max_candidates),
        ("LinkRequest", "text", "maxLength", settings.max_link_chars),
        ("LinkRequest", "num_beams", "maximum", settings.max_beams),
        ("LinkRequest", "top_k", "maximum", settings.max_beams),
        ("LinkRequest", "candidates", "maxItems", settings.max_link_candidates),
    ]
