"""Semantic textual similarity evaluation: Spearman correlation of each method with gold scores.

The pairs come from :func:`models.similarity.gold_pairs.read_gold_pairs` (STS Benchmark, SICK,
JSONL or TSV), the reader ``simlink tune`` trains from.
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import spearmanr

from index.progress import Progress, no_progress
from models.similarity import METHOD_NAMES, TokenEncoder, score_pairs
from models.similarity.gold_pairs import GoldPair

_TEXTS_PER_PROGRESS_STEP = 256


def spearman_by_method(
    encoder: TokenEncoder,
    pairs: Sequence[GoldPair],
    methods: Sequence[str] = METHOD_NAMES,
    skip_special_tokens: bool = False,
    progress: Progress = no_progress,
) -> dict[str, float]:
    """Spearman correlation × 100 between each method's similarity and the gold scores.

    Texts are truncated to the encoder's token limit; ``progress`` wraps the long loops.
    """
    texts = [text for pair in pairs for text in (pair.a, pair.b)]
    tokenized = encoder.tokenize(texts, truncate=True)
    step = _TEXTS_PER_PROGRESS_STEP
    encoded = []
    for start in progress(range(0, len(tokenized), step), "encoding", -(-len(tokenized) // step)):
        encoded.extend(encoder.embed(tokenized[start : start + step]))
    gold = [pair.gold for pair in pairs]
    correlations = {}
    for method in progress(methods, "scoring", len(methods)):
        scores = score_pairs(encoded, method, skip_special_tokens=skip_special_tokens)
        predicted = [score.similarity for score in scores]
        correlations[method] = 100.0 * float(spearmanr(gold, predicted).statistic)
    return correlations
