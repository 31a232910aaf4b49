"""The similarity engine on the real embedded model: the synchronous engine and the server's async façade."""

from __future__ import annotations

import asyncio

import pytest

from models.similarity.encoder import TextTooLongError, TokenEncoder
from models.similarity.engine import AsyncSimilarityEngine, SimilarityEngine
from models.similarity.methods import METHODS

PARAPHRASES = [
    ("A man is playing a guitar.", "A person plays the guitar."),
    ("The cat sleeps on the sofa.", "A cat is napping on the couch."),
    ("Stocks fell sharply on Monday.", "Share prices dropped steeply on Monday."),
]
UNRELATED = [
    ("A man is playing a guitar.", "Stocks fell sharply on Monday."),
    ("The cat sleeps on the sofa.", "The committee approved the budget."),
    ("Stocks fell sharply on Monday.", "A woman is slicing an onion."),
]


@pytest.fixture(scope="module")
def engine(encoder: TokenEncoder) -> SimilarityEngine:
    return SimilarityEngine(encoder)


@pytest.mark.parametrize("method", METHODS)
def test_paraphrases_score_above_unrelated_pairs(engine: SimilarityEngine, method: str) -> None:
    close = [s.similarity for s in engine.compare(PARAPHRASES, method)]
    far = [s.similarity for s in engine.compare(UNRELATED, method)]
    assert min(close) > max(far)


def test_alignment_lists_the_heaviest_plan_cells(engine: SimilarityEngine) -> None:
    (score,) = engine.compare([PARAPHRASES[0]], "wrd", alignment=5)
    cells = score.alignment
    assert cells is not None and len(cells) == 5
    assert [c.mass for c in cells] == sorted((c.mass for c in cells), reverse=True)
    assert sum(c.mass for c in cells) <= 1 + 1e-9
    assert ("guitar", "guitar") in {(c.a_token, c.b_token) for c in cells}
    a = PARAPHRASES[0][0]
    for cell in cells:
        if cell.a_span != (0, 0):
            assert a[slice(*cell.a_span)].lower() == cell.a_token


def test_centroid_method_has_no_alignment(engine: SimilarityEngine) -> None:
    with pytest.raises(ValueError, match="no token alignment"):
        engine.compare([PARAPHRASES[0]], "wcd", alignment=3)


def test_a_call_may_override_the_engines_special_token_default(encoder: TokenEncoder) -> None:
    skipping = SimilarityEngine(encoder, skip_special_tokens=True)
    keeping = SimilarityEngine(encoder)
    (skipped,) = skipping.compare([PARAPHRASES[0]])
    (kept,) = keeping.compare([PARAPHRASES[0]])
    assert kept.distance != pytest.approx(skipped.distance, abs=1e-6)
    assert keeping.compare([PARAPHRASES[0]], skip_special_tokens=True)[0].distance == pytest.approx(skipped.distance)


def test_async_facade_gives_the_synchronous_scores_to_concurrent_callers(engine: SimilarityEngine) -> None:
    async def scenario() -> list:
        facade = AsyncSimilarityEngine(engine, workers=2, batch_wait_ms=20)
        await facade.start()
        try:
            return await asyncio.gather(
                facade.compare(PARAPHRASES, "wrd"),
                facade.compare(UNRELATED, "greedy"),
                facade.rank("A man is playing a guitar.", [b for _, b in PARAPHRASES + UNRELATED], top_k=2),
            )
        finally:
            await facade.stop()

    close, far, ranked = asyncio.run(scenario())
    expected_close = [s.distance for s in engine.compare(PARAPHRASES, "wrd")]
    assert [s.distance for s in close.scores] == pytest.approx(expected_close, abs=1e-5)
    assert [s.distance for s in far.scores] == pytest.approx(
        [s.distance for s in engine.compare(UNRELATED, "greedy")], abs=1e-5
    )
    expected_rank = engine.rank("A man is playing a guitar.", [b for _, b in PARAPHRASES + UNRELATED], top_k=2)
    assert [r.index for r in ranked.ranking.results] == [r.index for r in expected_rank.results]
    assert close.truncated == far.truncated == ranked.truncated == []


def test_async_facade_reports_cut_texts_and_names_a_text_over_the_limit(encoder: TokenEncoder) -> None:
    long_text = "word " * (encoder.max_tokens + 10)

    async def scenario() -> tuple:
        facade = AsyncSimilarityEngine(SimilarityEngine(encoder))
        await facade.start()
        try:
            cut = await facade.compare([("short", long_text)], truncate=True)
            with pytest.raises(TextTooLongError) as refused:
                await facade.compare([("short", "fine"), (long_text, "short")])
            return cut, refused.value
        finally:
            await facade.stop()

    cut, error = asyncio.run(scenario())
    assert cut.truncated == [1]
    assert error.index == 2 and error.limit == encoder.max_tokens
