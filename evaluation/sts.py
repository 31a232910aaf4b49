"""Semantic textual similarity evaluation: Spearman correlation of each method with gold scores.

Reads the STS Benchmark CSV (tab-separated, no header, no quoting; score in field 5, the
sentences in fields 6 and 7) and SICK (tab-separated with a header naming ``sentence_A``,
``sentence_B`` and ``relatedness_score``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import spearmanr

from index.progress import Progress, no_progress
from models.similarity import METHOD_NAMES, TokenEncoder, score_pairs


@dataclass(frozen=True)
class GoldPair:
    """Two sentences and their human similarity score."""

    a: str
    b: str
    gold: float


class StsFormatError(ValueError):
    """A line of an STS file could not be read; the message names the file and line."""


def read_sts_pairs(path: Path) -> list[GoldPair]:
    """Reads an STS Benchmark or SICK file into gold pairs."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if lines and lines[0].startswith("pair_ID\t"):
        return _read_sick(path, lines)
    pairs = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) < 7:
            raise StsFormatError(f"{path}:{number}: expected at least 7 tab-separated fields, got {len(fields)}")
        pairs.append(GoldPair(fields[5], fields[6], _score(fields[4], path, number)))
    return pairs


def _read_sick(path: Path, lines: list[str]) -> list[GoldPair]:
    header = lines[0].split("\t")
    try:
        a, b, score = header.index("sentence_A"), header.index("sentence_B"), header.index("relatedness_score")
    except ValueError as error:
        raise StsFormatError(f"{path}:1: SICK header lacks sentence_A, sentence_B or relatedness_score") from error
    pairs = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) < len(header):
            raise StsFormatError(f"{path}:{number}: expected {len(header)} fields, got {len(fields)}")
        pairs.append(GoldPair(fields[a], fields[b], _score(fields[score], path, number)))
    return pairs


def _score(value: str, path: Path, number: int) -> float:
    try:
        return float(value)
    except ValueError as error:
        raise StsFormatError(f"{path}:{number}: score {value!r} is not a number") from error


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
