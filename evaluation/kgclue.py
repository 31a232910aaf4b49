"""KgCLUE as simlink data: questions with their answer triple, the closed-world KB they imply, and
KgCLUE's official score.

KgCLUE (CLUEbenchmark/KgCLUE) is Chinese one-hop KBQA: each row of ``train.json`` / ``dev.json`` is
``{"id", "question", "answer": "subject ||| predicate ||| object"}``. Its knowledge base (about 23
million triples) is a separate download that is not available here, so the KB is *closed-world*:
the answer triples of the files read. That KB has far fewer distractors than the real one: in
KgCLUE's files every subject occurs once, so each subject has a single predicate, and finding the
subject answers the question.

Subjects are often disambiguated titles, ``刘晓华（广东工业大学教授）``, while the question writes
``刘晓华``; :func:`subject_name` is the part before the qualifier, and the exported KB gives it to
the subject as an alias.

The official score (``baselines/evaluate_f1_em.py``) is computed on the object: ``0.5 × exact match
+ 0.5 × F1``, both after :func:`normalize`, where F1 is *not* a bag-of-characters overlap but
``2 × LCS / (len(a) + len(b))`` with LCS the longest common subsequence of the two strings' characters
(``pylcs.lcs``); see :func:`f1_similarity`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluation.lcquad import in_dev_split
from index.kb import KGCLUE_SEPARATOR, Fact, KbFormatError, numbered_lines, parse_json_object
from models.linking.candidates import lcs_length

_QUALIFIER = re.compile(r"[（(]")


@dataclass(frozen=True)
class KgclueQuestion:
    """One KgCLUE row: the question and its gold triple."""

    id: str
    question: str
    subject: str
    predicate: str
    object: str

    @property
    def triple(self) -> tuple[str, str, str]:
        return self.subject, self.predicate, self.object

    def names_its_subject(self) -> bool:
        """Whether the subject's name (before any qualifier) is written in the question as it is."""
        return normalize(subject_name(self.subject)) in normalize(self.question)


def subject_name(subject: str) -> str:
    """The subject before any parenthesised qualifier (full-width ``（`` or ASCII ``(``); the whole
    subject when nothing comes before the bracket."""
    return _QUALIFIER.split(subject, maxsplit=1)[0].strip() or subject


def normalize(text: str) -> str:
    """KgCLUE's normalisation: lower case, runs of white space as one space, none at the ends."""
    return " ".join(text.lower().split())


def _question(row: dict, path: Path, line: int) -> KgclueQuestion:
    question, answer = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise KbFormatError(path, line, '"question" must be a non-empty string')
    parts = [_cell(part).strip() for part in answer.split(KGCLUE_SEPARATOR)] if isinstance(answer, str) else []
    if len(parts) != 3 or not all(parts):
        raise KbFormatError(path, line, '"answer" must be "subject ||| predicate ||| object"')
    return KgclueQuestion(str(row.get("id", line)), question.strip(), *parts)


def read_kgclue(path: Path) -> list[KgclueQuestion]:
    """The rows of a KgCLUE file; a bad row raises :class:`index.kb.KbFormatError` naming file and line."""
    return [_question(parse_json_object(text, path, line), path, line) for line, text in numbered_lines(path)]


@dataclass
class KgclueData:
    """The questions, split, and the closed-world KB of their answer triples (each triple once, in
    file order: train, dev, then test)."""

    train: list[KgclueQuestion]
    heldout: list[KgclueQuestion]
    dev: list[KgclueQuestion]
    test: list[KgclueQuestion]
    facts: list[Fact]

    @property
    def subjects(self) -> list[str]:
        return list(dict.fromkeys(fact.subject for fact in self.facts))

    def splits(self) -> dict[str, list[KgclueQuestion]]:
        """The splits questions are scored on: the held-out part of train.json (for choices), dev, test."""
        found = {"heldout": self.heldout, "dev": self.dev, "test": self.test}
        return {name: questions for name, questions in found.items() if questions}

    def write_kb(self, directory: Path) -> tuple[Path, Path, Path]:
        """Writes the KB as simlink inputs and the train split as labelled rows: ``entities.jsonl`` (one
        entity per subject, its name before the qualifier as an alias), ``facts.tsv`` and ``train.jsonl``
        (KgCLUE's own ``{"question", "answer"}`` form, which ``simlink train --labelled`` reads)."""
        directory.mkdir(parents=True, exist_ok=True)
        entities, facts, labelled = directory / "entities.jsonl", directory / "facts.tsv", directory / "train.jsonl"
        with entities.open("w", encoding="utf-8") as stream:
            for subject in self.subjects:
                name = subject_name(subject)
                row = {"id": subject, "name": subject, "aliases": [name] if name != subject else []}
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        facts.write_text("".join(f"{f.subject}\t{f.predicate}\t{f.object}\n" for f in self.facts), encoding="utf-8")
        with labelled.open("w", encoding="utf-8") as stream:
            for question in self.train:
                row = {"question": question.question, "answer": " ||| ".join(question.triple)}
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        return entities, facts, labelled


def _cell(text: str) -> str:
    """A field as a TSV cell can hold it: tabs and line breaks become spaces."""
    return " ".join(text.replace("\t", " ").splitlines())


def load_kgclue(directory: Path, heldout_percent: int = 5, test: Path | None = None) -> KgclueData:
    """``train.json`` (split by a hash of the id: ``heldout_percent`` held out for choices), ``dev.json``
    and, optionally, another file of the same form to evaluate on; the KB is their answer triples."""
    train, heldout = [], []
    for question in read_kgclue(directory / "train.json"):
        (heldout if in_dev_split(question.id, heldout_percent) else train).append(question)
    dev = read_kgclue(directory / "dev.json")
    tested = read_kgclue(test) if test is not None else []
    everything = [*train, *heldout, *dev, *tested]
    facts = list(dict.fromkeys(Fact(*question.triple) for question in everything))
    return KgclueData(train, heldout, dev, tested, facts)


def f1_similarity(predicted: str, gold: str) -> float:
    """KgCLUE's F1 of two (normalized) strings: ``2 × LCS / (len + len)``, 0 when both are empty."""
    if not predicted and not gold:
        return 0.0
    return 2.0 * lcs_length(predicted, gold) / (len(predicted) + len(gold))


Triple = tuple[str, str, str]


def score_answers(predicted: Sequence[Triple | None], gold: Sequence[KgclueQuestion]) -> dict[str, float]:
    """KgCLUE's official score of the objects (``score`` = 0.5 × ``object_exact_match`` + 0.5 ×
    ``object_f1``), and the share of questions whose subject, predicate and both are right (exact
    match after :func:`normalize`). No prediction counts as an empty triple."""
    totals = dict.fromkeys(("object_exact_match", "object_f1", "subject_accuracy", "predicate_accuracy"), 0.0)
    totals["pair_accuracy"] = 0.0
    for triple, question in zip(predicted, gold, strict=True):
        subject, predicate, obj = (normalize(part) for part in (triple or ("", "", "")))
        wanted = [normalize(part) for part in question.triple]
        totals["object_exact_match"] += obj == wanted[2]
        totals["object_f1"] += f1_similarity(obj, wanted[2])
        totals["subject_accuracy"] += subject == wanted[0]
        totals["predicate_accuracy"] += predicate == wanted[1]
        totals["pair_accuracy"] += (subject, predicate) == (wanted[0], wanted[1])
    count = max(len(gold), 1)
    scores = {key: value / count for key, value in totals.items()}
    return {
        "questions": len(gold),
        "score": 0.5 * scores["object_exact_match"] + 0.5 * scores["object_f1"],
        **scores,
    }
