"""The linking engine over a model trained in the test session: answers always exist in the KB."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.kb import read_entities, read_facts
from models.linking.candidates import copied_characters
from models.linking.engine import (
    AUTO,
    AsyncLinkingEngine,
    EntityMatch,
    LinkingEngine,
    LinkQuery,
    PairMatch,
    UnknownCandidatesError,
)
from models.linking.generation import Hypothesis
from tests.conftest import TinyLinker


@pytest.fixture(scope="module")
def kb(tiny_linker: TinyLinker) -> tuple[dict[str, str], set[tuple[str, str]]]:
    names = {entity.id: entity.name for entity in read_entities(tiny_linker.entities)}
    pairs = {(fact.subject, fact.predicate) for fact in read_facts(tiny_linker.facts)}
    return names, pairs


texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60)
ENTITY_IDS = [
    "city:paris",
    "person:paris",
    "country:france",
    "country:japan",
    "person:marie_curie",
    "language:python",
    "animal:python",
]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=texts,
    candidates=st.one_of(st.none(), st.lists(st.sampled_from(ENTITY_IDS), min_size=1, max_size=4, unique=True)),
    beams=st.integers(1, 6),
)
def test_every_entity_returned_is_in_the_kb_and_the_candidates(engine, kb, text, candidates, beams) -> None:
    names, _ = kb
    query = LinkQuery(
        text, "entity", None, top_k=beams, num_beams=beams, candidates=tuple(candidates) if candidates else None
    )
    (matches,) = engine.link([query])
    assert matches, "a constrained search over a non-empty trie finds at least one name"
    for match in matches:
        assert isinstance(match, EntityMatch) and names[match.id] == match.name
        assert candidates is None or match.id in candidates
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, beams=st.integers(1, 5))
def test_every_kbqa_answer_is_a_real_subject_predicate(engine, kb, text, beams) -> None:
    _, pairs = kb
    (matches,) = engine.link([LinkQuery(text, "kbqa", top_k=beams, num_beams=beams)])
    for match in matches:
        assert isinstance(match, PairMatch) and (match.subject, match.predicate) in pairs
        assert match.answers


def test_trained_model_links_the_obvious_cases(engine: LinkingEngine) -> None:
    entity, kbqa = engine.link(
        [
            LinkQuery("Nippon", "entity", (0, 6), top_k=1, num_beams=3),
            LinkQuery("what is the currency of Japan?", "kbqa", top_k=1, num_beams=3),
        ]
    )
    assert entity[0].id == "country:japan"
    assert (kbqa[0].subject, kbqa[0].predicate, kbqa[0].answers) == ("Japan", "currency", ("Yen",))


def test_batched_queries_get_the_same_answers_as_single_ones(engine: LinkingEngine) -> None:
    queries = [
        LinkQuery("Marie Curie", "entity", (0, 11), top_k=2, num_beams=3),
        LinkQuery("capital of France", "kbqa", top_k=2, num_beams=3),
        LinkQuery("a python", "entity", top_k=2, num_beams=3, candidates=("animal:python", "language:python")),
    ]
    batched = engine.link(queries)
    for query, found in zip(queries, batched, strict=True):
        (single,) = engine.link([query])
        assert [m.score for m in found] == pytest.approx([m.score for m in single], abs=1e-3)
        assert [getattr(m, "id", None) or (m.subject, m.predicate) for m in found] == [
            getattr(m, "id", None) or (m.subject, m.predicate) for m in single
        ]


def test_auto_candidates_narrow_kbqa_to_the_subjects_the_question_writes(engine: LinkingEngine) -> None:
    """Whatever the model prefers, the answers come from the subject written in the question."""
    for text, subject in [("tell me about France", "France"), ("and Marie Curie?", "Marie Curie")]:
        (matches,) = engine.link([LinkQuery(text, "kbqa", top_k=3, num_beams=3, candidates=AUTO)])
        assert matches and {match.subject for match in matches} == {subject}


def test_auto_candidates_keep_every_entity_of_a_written_name_and_fall_back_when_none_is_written(
    engine: LinkingEngine,
) -> None:
    (shared,) = engine.link([LinkQuery("a python", "entity", top_k=2, num_beams=2, candidates=AUTO)])
    assert {match.id for match in shared} == {"animal:python", "language:python"}
    unwritten = LinkQuery("the country of the rising sun", "entity", top_k=3, num_beams=3)
    (narrowed,) = engine.link([replace(unwritten, candidates=AUTO)])
    assert [m.id for m in narrowed] == [m.id for m in engine.link([unwritten])[0]]


@pytest.mark.parametrize("text", ["what is the currency of Japan?", "Marie Curie was born in", "France capital"])
def test_a_copy_weight_puts_the_result_the_text_writes_most_of_first(engine: LinkingEngine, text: str) -> None:
    query = LinkQuery(text, "kbqa", top_k=4, num_beams=4)
    (hypotheses,) = engine.search([query])
    by_model = engine.resolve(query, hypotheses)
    assert [m.score for m in by_model] == sorted((m.score for m in by_model), reverse=True)
    by_copy = replace(engine, copy_weight=100.0).resolve(query, hypotheses)
    copied = [copied_characters(m.subject + m.predicate, text) for m in by_copy]
    assert copied == sorted(copied, reverse=True)
    assert sorted(m.score for m in by_copy) == sorted(m.score for m in by_model), "the same results, reordered"


def test_unknown_candidates_are_named(engine: LinkingEngine) -> None:
    with pytest.raises(UnknownCandidatesError, match="'city:atlantis'"):
        engine.check_candidates(["city:paris", "city:atlantis"])


def test_a_mention_deep_in_a_long_text_keeps_its_markers(engine: LinkingEngine) -> None:
    text = "filler words here. " * 200 + "Then Marie Curie arrived." + " more filler." * 100
    start = text.index("Marie Curie")
    model_input = engine._model_input(LinkQuery(text, mention=(start, start + 11)))
    encoded = engine.model.tokenizer(model_input, truncation=True, max_length=engine.max_input_tokens)
    tokens = engine.model.tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens[1] == "[ENTITY]" and "[START_ENT]" in tokens and "[END_ENT]" in tokens
    assert "[START_ENT] Marie Curie [END_ENT]" in model_input


def test_a_mention_deep_in_a_chinese_text_keeps_its_markers(engine: LinkingEngine) -> None:
    """A Chinese character is a token of its own: 600 characters are 600 tokens, over the limit."""
    text = "中国大学" * 100 + "北京" + "大学" * 100
    start = text.index("北京")
    model_input = engine._model_input(LinkQuery(text, mention=(start, start + 2)))
    assert "[START_ENT] 北京 [END_ENT]" in model_input
    tokens = engine.model.tokenizer(model_input)["input_ids"]
    assert len(tokens) <= engine.max_input_tokens  # nothing left for truncation to cut
    before, after = model_input.split("[START_ENT]")[0], model_input.split("[END_ENT]")[1]
    assert abs(len(before.removeprefix("[ENTITY] ")) - len(after)) <= 2  # as much context on either side
    short = engine._model_input(LinkQuery("我在北京。", mention=(2, 4)))
    assert short == "[ENTITY] 我在[START_ENT] 北京 [END_ENT]。"


def test_the_engine_says_which_tasks_its_index_can_answer(engine: LinkingEngine) -> None:
    assert engine.supports("entity") and engine.supports("kbqa")
    described = engine.describe()
    assert described["index"]["manifest"]["counts"]["entities"] == 7
    assert described["model"]["name"] == engine.model.name
    assert described["dense_candidates"] == 0 and described["index"]["manifest"]["name_vectors"] is None


def test_async_facade_answers_concurrent_queries_as_the_engine_does(engine: LinkingEngine) -> None:
    queries = [
        LinkQuery("Nippon", "entity", (0, 6), top_k=1, num_beams=3),
        LinkQuery("what is the currency of Japan?", "kbqa", top_k=1, num_beams=3),
    ]

    async def scenario() -> list:
        facade = AsyncLinkingEngine(engine, batch_wait_ms=20)
        await facade.start()
        try:
            found = await asyncio.gather(*(facade.link(query) for query in queries))
            with pytest.raises(UnknownCandidatesError):
                await facade.link(LinkQuery("Paris", candidates=("city:atlantis",)))
            return found
        finally:
            await facade.stop()

    found = asyncio.run(scenario())
    expected = engine.link(queries)
    # on a busy machine the two queries may miss each other's batch; padding then moves scores by rounding
    assert [[replace(m, score=0.0) for m in matches] for matches in found] == [
        [replace(m, score=0.0) for m in matches] for matches in expected
    ]
    assert [m.score for matches in found for m in matches] == pytest.approx(
        [m.score for matches in expected for m in matches], abs=1e-4
    )


def _hypotheses(engine: LinkingEngine, scored: list[tuple[str, float]]) -> list[Hypothesis]:
    """Hand-made beams over the KB's names: the resolution rules, apart from what the model prefers."""
    end = engine.model.tokens.special_tokens.end
    encoded = engine.model.tokens.encode_names([name for name, _ in scored])
    return [Hypothesis((*tokens, end), score) for tokens, (_, score) in zip(encoded, scored, strict=True)]


def test_results_carry_the_span_where_the_text_writes_their_name(engine: LinkingEngine) -> None:
    text = "Is Marie Curie from France?"
    beams = _hypotheses(engine, [("France", -0.1), ("Japan", -0.5), ("Marie Curie", -0.9)])
    found = engine.resolve(LinkQuery(text, top_k=3, num_beams=3), beams)
    assert [(m.id, m.mention) for m in found] == [
        ("country:france", (20, 26)),
        ("country:japan", None),
        ("person:marie_curie", (3, 14)),
    ]
    assert all(text[m.mention[0] : m.mention[1]] == m.name for m in found if m.mention)


def test_several_returns_each_entity_the_text_writes_once_and_skips_the_rest(engine: LinkingEngine) -> None:
    text = "Is Marie Curie from France?"
    beams = _hypotheses(engine, [("France", -0.1), ("Japan", -0.5), ("Marie Curie", -0.9)])
    several = LinkQuery(text, top_k=5, num_beams=3, several=True)
    assert [m.id for m in engine.resolve(several, beams)] == ["country:france", "person:marie_curie"]
    assert [m.id for m in engine.resolve(replace(several, top_k=1), beams)] == ["country:france"]
    unwritten_first = _hypotheses(engine, [("Japan", -0.1), ("France", -0.5)])
    assert [m.id for m in engine.resolve(several, unwritten_first)] == ["country:japan", "country:france"]


@pytest.fixture(scope="module")
def nested_names(tiny_linker: TinyLinker, tmp_path_factory: pytest.TempPathFactory) -> LinkingEngine:
    """The tiny linker over its KB plus a name that holds another KB name (*Paris Saint-Germain*)."""
    import json

    from index.builder import KbSources, build_index
    from models.linking.seq2seq import encode_names, load_seq2seq_model, restrict_output_vocabulary

    root = tmp_path_factory.mktemp("nested-names")
    entities = root / "entities.jsonl"
    club = {"id": "club:psg", "name": "Paris Saint-Germain", "aliases": [], "description": "A football club."}
    entities.write_text(tiny_linker.entities.read_text() + json.dumps(club) + "\n")
    model = load_seq2seq_model(str(tiny_linker.model_dir))
    assert model.output is not None, "trained on the tiny KB, its decoder writes that KB's tokens only"
    (club_tokens,) = encode_names(model.tokenizer, [club["name"]])
    restrict_output_vocabulary(model, [*model.output.token_ids, *club_tokens])  # new rows for the club's tokens
    build_index(KbSources(entities, None), root / "index", model.tokens)
    return LinkingEngine.open(model, root / "index")


def test_several_leaves_out_a_name_inside_a_chosen_name_the_text_misspells(nested_names: LinkingEngine) -> None:
    beams = _hypotheses(nested_names, [("Paris Saint-Germain", -0.2), ("Paris", -0.5), ("Japan", -0.9)])
    misspelt = nested_names.resolve(LinkQuery("Did Paris Saint Jermain tour Japan?", several=True), beams)
    assert [(m.id, m.mention) for m in misspelt] == [("club:psg", None), ("country:japan", (29, 34))], (
        "the text's Paris is the club's; Japan joins"
    )
    written = nested_names.resolve(LinkQuery("Did Paris Saint-Germain tour Japan?", several=True), beams)
    assert [(m.id, m.mention) for m in written] == [("club:psg", (4, 23)), ("country:japan", (29, 34))]
    twice = nested_names.resolve(LinkQuery("Did Paris Saint-Germain tour Paris?", several=True), beams)
    assert [(m.name, m.mention) for m in twice] == [("Paris Saint-Germain", (4, 23)), ("Paris", (29, 34))], (
        "a name the text writes leaves a separate Paris free to join"
    )


def test_several_takes_one_entity_of_a_shared_name(engine: LinkingEngine) -> None:
    beams = _hypotheses(engine, [("Python", -0.1), ("France", -0.2)])
    plain = engine.resolve(LinkQuery("Python in France", top_k=5, num_beams=2), beams)
    several = engine.resolve(LinkQuery("Python in France", top_k=5, num_beams=2, several=True), beams)
    assert [m.id for m in plain] == ["animal:python", "language:python", "country:france"]
    assert [m.id for m in several] == ["animal:python", "country:france"]


def test_a_marked_mention_is_where_the_result_is_written(engine: LinkingEngine) -> None:
    text = "The python ate my Python book"
    beams = _hypotheses(engine, [("Python", -0.1)])
    marked = engine.resolve(LinkQuery(text, mention=(18, 24), top_k=2, num_beams=1), beams)
    unmarked = engine.resolve(LinkQuery(text, top_k=2, num_beams=1), beams)
    assert [m.mention for m in marked] == [(18, 24)] * 2 and [m.mention for m in unmarked] == [(4, 10)] * 2


def test_a_query_keeps_lists_as_tuples_so_every_caller_builds_the_same_query() -> None:
    from_json = LinkQuery("Paris", mention=[0, 5], candidates=["city:paris", "person:paris"])  # type: ignore[arg-type]
    assert from_json == LinkQuery("Paris", mention=(0, 5), candidates=("city:paris", "person:paris"))
    assert hash(from_json) and LinkQuery("Paris", candidates=AUTO).candidates == "auto"


def test_an_inline_marked_mention_narrows_auto_candidates_as_a_span_does(engine: LinkingEngine) -> None:
    def names(query: LinkQuery) -> set[str]:
        return {match.name for match in engine.link([replace(query, top_k=4, num_beams=4, candidates=AUTO)])[0]}

    assert names(LinkQuery("Paris, [START_ENT] France [END_ENT]")) == {"France"}
    assert names(LinkQuery("Paris, France", mention=(7, 13))) == {"France"}
    assert names(LinkQuery("Paris, France")) == {"Paris", "France"}
