"""Training examples for the linker: derived from the knowledge base alone, or read from labelled JSONL.

An example is a model input (task tag, text, mention markers) and a target: an entity name, or a
(subject, predicate) pair. Targets become exactly the token sequences the index's tries hold,
so what the model learns to write is what constrained decoding lets it write.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from index.kb import (
    KGCLUE_SEPARATOR,
    Entity,
    Fact,
    KbFormatError,
    numbered_lines,
    parse_json_object,
    read_entities,
    read_facts,
)
from index.manifest import SpecialTokens
from models.linking.candidates import writes_chinese
from models.linking.query import MENTION_END, MENTION_START, Task
from models.linking.seq2seq import format_input

QUESTION_TEMPLATES = (
    "what is the {predicate} of {subject}?",
    "{subject} {predicate}?",
    "tell me the {predicate} of {subject}.",
    "what {predicate} does {subject} have?",
    "do you know the {predicate} of {subject}?",
)
CHINESE_QUESTION_TEMPLATES = (
    "{subject}的{predicate}是什么？",
    "{subject}的{predicate}是？",
    "你知道{subject}的{predicate}吗？",
    "请问{subject}的{predicate}是什么？",
    "{subject}{predicate}是哪个？",
)
"""Used for a (subject, predicate) written in Chinese characters (see :func:`writes_chinese`)."""


@dataclass(frozen=True)
class Example:
    """One training pair: ``source`` is the formatted model input; the target is a name or a pair."""

    source: str
    task: Task
    name: str = ""
    predicate: str = ""

    def target_texts(self) -> tuple[str, ...]:
        return (self.name,) if self.task == "entity" else (self.name, self.predicate)


def target_ids(example: Example, encode: dict[str, list[int]], special: SpecialTokens) -> list[int]:
    """The trie sequence of the example's target, from pre-encoded target texts."""
    if example.task == "entity":
        return [*encode[example.name], special.end]
    return [*encode[example.name], special.separator, *encode[example.predicate], special.end]


def _surface_pattern(surface: str) -> str:
    """A pattern for ``surface`` as a whole word. Chinese is written without spaces, so a Chinese
    character at either end of the surface needs no word boundary there."""
    start = "" if writes_chinese(surface[0]) else r"(?<!\w)"
    end = "" if writes_chinese(surface[-1]) else r"(?!\w)"
    return f"{start}{re.escape(surface)}{end}"


def _find_surface(text: str, surfaces: Sequence[str]) -> tuple[int, int] | None:
    for surface in sorted(surfaces, key=len, reverse=True):
        match = re.search(_surface_pattern(surface), text, flags=re.IGNORECASE)
        if match:
            return match.span()
    return None


def entity_examples(entities: Iterable[Entity]) -> Iterator[Example]:
    """Names and aliases (marked, and bare) -> canonical name; descriptions with the name marked -> name."""
    for entity in entities:
        surfaces = list(dict.fromkeys((entity.name, *entity.aliases)))
        for surface in surfaces:
            yield Example(format_input(surface, "entity", (0, len(surface))), "entity", entity.name)
            yield Example(format_input(surface, "entity"), "entity", entity.name)
        span = _find_surface(entity.description, surfaces) if entity.description else None
        if span is not None:
            yield Example(format_input(entity.description, "entity", span), "entity", entity.name)


def fact_examples(
    facts: Iterable[Fact], entities: Sequence[Entity], per_pair: int = 2, seed: int = 0
) -> Iterator[Example]:
    """Templated questions for every (subject, predicate), with the subject's aliases as variants;
    Chinese templates for a subject or predicate written in Chinese."""
    rng = random.Random(seed)
    surfaces: dict[str, list[str]] = {}
    for entity in entities:
        surfaces.setdefault(entity.name, [entity.name]).extend(entity.aliases)
    for subject, predicate in dict.fromkeys((fact.subject, fact.predicate) for fact in facts):
        names = surfaces.get(subject, [subject])
        templates = CHINESE_QUESTION_TEMPLATES if writes_chinese(subject + predicate) else QUESTION_TEMPLATES
        for template in rng.sample(templates, k=min(per_pair, len(templates))):
            question = template.format(subject=rng.choice(names), predicate=predicate)
            yield Example(format_input(question, "kbqa"), "kbqa", subject, predicate)


def _span(row: dict, text: str, path: Path, line: int) -> tuple[int, int] | None:
    mention = row.get("mention")
    if mention is None:
        return None
    try:
        start, end = int(mention["start"]), int(mention["end"])
    except (TypeError, KeyError, ValueError) as error:
        raise KbFormatError(path, line, '"mention" must be {"start": int, "end": int}') from error
    if not 0 <= start < end <= len(text):
        raise KbFormatError(path, line, f"mention span [{start}, {end}) is outside the text (length {len(text)})")
    return start, end


def _labelled_example(row: dict, names: dict[str, str], path: Path, line: int) -> Example:
    if "entity" in row:
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise KbFormatError(path, line, '"text" must be a non-empty string')
        if row["entity"] not in names:
            raise KbFormatError(path, line, f"unknown entity id {row['entity']!r}")
        span = _span(row, text, path, line)
        if span is None and MENTION_START in text and MENTION_END in text:
            return Example(format_input(text, "entity"), "entity", names[row["entity"]])
        return Example(format_input(text, "entity", span), "entity", names[row["entity"]])
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise KbFormatError(path, line, 'expected "entity" (linking) or a non-empty "question" (KBQA)')
    if isinstance(row.get("answer"), str) and KGCLUE_SEPARATOR in row["answer"]:  # KgCLUE: "s ||| p ||| o"
        subject, predicate, *_ = (part.strip() for part in row["answer"].split(KGCLUE_SEPARATOR))
    else:
        subject, predicate = row.get("subject"), row.get("predicate")
    if not (isinstance(subject, str) and subject and isinstance(predicate, str) and predicate):
        raise KbFormatError(path, line, 'KBQA rows need "subject" and "predicate" (or a KgCLUE "answer")')
    return Example(format_input(question, "kbqa"), "kbqa", subject, predicate)


def read_labelled(path: Path, entities: Sequence[Entity]) -> list[Example]:
    """Labelled examples from JSONL; a bad row raises :class:`KbFormatError` naming file and line.

    Rows are ``{"text", "mention"?: {"start", "end"}, "entity": id}`` (or the mention marked in
    the text), ``{"question", "subject", "predicate"}``, or KgCLUE ``{"question", "answer": "s ||| p ||| o"}``.
    """
    names = {entity.id: entity.name for entity in entities}
    return [
        _labelled_example(parse_json_object(text, path, line), names, path, line) for line, text in numbered_lines(path)
    ]


def examples_from_files(entities: Path, facts: Path | None, labelled: Path | None, seed: int = 0) -> list[Example]:
    """Every training example a knowledge base gives: from its entities, its facts (templated
    questions) and, if any, labelled rows. A bad row raises :class:`KbFormatError` naming file and line."""
    kb_entities = list(read_entities(entities))
    kb_facts = list(read_facts(facts)) if facts else []
    examples = [*entity_examples(kb_entities), *fact_examples(kb_facts, kb_entities, seed=seed)]
    if labelled is not None:
        examples += read_labelled(labelled, kb_entities)
    return examples
