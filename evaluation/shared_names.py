"""Entities that share a name, told apart by the text: first-result accuracy of the linker with and
without its disambiguation stage, on labelled sentences kept out of training.

The sentences are entity-linking rows (``{"text", "mention": {"start", "end"}, "entity"}``) such as
the demo KB's ``shared_names.jsonl``. The tie baseline is the linker without a disambiguator: the
entities of the generated name in id order, which is right for one sense in two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from index.kb import KbFormatError, numbered_lines, parse_json_object
from models.linking import LinkingEngine, LinkQuery


@dataclass(frozen=True)
class SharedNameSentence:
    text: str
    mention: tuple[int, int]
    entity: str


def read_sentences(path: Path) -> list[SharedNameSentence]:
    """The labelled sentences; a bad row raises :class:`KbFormatError` naming file and line."""
    sentences = []
    for line, text in numbered_lines(path):
        row = parse_json_object(text, path, line)
        try:
            mention = (int(row["mention"]["start"]), int(row["mention"]["end"]))
            sentences.append(SharedNameSentence(str(row["text"]), mention, str(row["entity"])))
        except (KeyError, TypeError, ValueError) as error:
            raise KbFormatError(path, line, 'expected {"text", "mention": {"start", "end"}, "entity"}') from error
    return sentences


def first_result_accuracy(engine: LinkingEngine, sentences: Sequence[SharedNameSentence], num_beams: int) -> float:
    """Share of sentences whose first result is the labelled entity."""
    queries = [LinkQuery(s.text, "entity", s.mention, top_k=num_beams, num_beams=num_beams) for s in sentences]
    found = engine.link(queries)
    hits = sum(bool(matches) and matches[0].id == s.entity for s, matches in zip(sentences, found, strict=True))
    return hits / max(len(sentences), 1)


def evaluate_shared_names(
    engine: LinkingEngine, sentences: Sequence[SharedNameSentence], num_beams: int = 5
) -> dict[str, float]:
    """First-result accuracy with ties (the engine without its disambiguator) and with it."""
    tied = replace(engine, disambiguator=None)
    report = {"sentences": float(len(sentences)), "ties_in_id_order": first_result_accuracy(tied, sentences, num_beams)}
    if engine.disambiguator is not None:
        report["disambiguated"] = first_result_accuracy(engine, sentences, num_beams)
    return report
