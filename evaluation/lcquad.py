"""LC-QuAD 1.0 as simlink data: questions with gold entities, and the closed-world KB they imply.

The knowledge base is closed-world: every DBpedia resource named in the file's SPARQL queries
plus ``entities.txt`` (readable name = the URI's last part, ``_`` as spaces, percent-decoded).
Questions split deterministically (by a hash of their id) into train and dev. The gold entities
of a question are the resources of its query; for KBQA, single-triple questions give a gold
(resource, predicate) pair.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

RESOURCE = "http://dbpedia.org/resource/"
PREDICATE = re.compile(r"^http://dbpedia\.org/(?:ontology|property)/([a-z][^/]*)$")
TERM = r"(<[^>]+>|\?\w+)"
TRIPLE = re.compile(rf"{TERM}\s+{TERM}\s+{TERM}")


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    entities: tuple[str, ...]
    pair: tuple[str, str] | None = None
    """(resource name, predicate) for single-triple questions."""


@dataclass
class LcQuad:
    """The questions (split) and the closed-world knowledge base built from the file."""

    train: list[Question]
    dev: list[Question]
    """The evaluated questions: the dev split of the training file, or a ``--test`` file."""
    names: list[str]
    pairs: list[tuple[str, str]]
    skipped: int = 0
    split: str = "dev"

    def write_kb(self, directory: Path) -> tuple[Path, Path, Path]:
        """Writes the KB as simlink inputs (entities JSONL, facts TSV) and the train split as labelled JSONL.

        Facts have ``?uri`` as object: LC-QuAD gives queries, not their DBpedia answers.
        """
        directory.mkdir(parents=True, exist_ok=True)
        entities, facts, labelled = directory / "entities.jsonl", directory / "facts.tsv", directory / "train.jsonl"
        with entities.open("w") as stream:
            for name in self.names:
                stream.write(json.dumps({"id": entity_id(name), "name": name}, ensure_ascii=False) + "\n")
        facts.write_text("".join(f"{s}\t{p}\t?uri\n" for s, p in self.pairs), encoding="utf-8")
        with labelled.open("w") as stream:
            for question in self.train:
                for name in question.entities:
                    row = {"text": question.text, "entity": entity_id(name)}
                    stream.write(json.dumps(row, ensure_ascii=False) + "\n")
                if question.pair:
                    row = {"question": question.text, "subject": question.pair[0], "predicate": question.pair[1]}
                    stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            for text, name in name_swaps(self):
                stream.write(json.dumps({"text": text, "entity": entity_id(name)}, ensure_ascii=False) + "\n")
        return entities, facts, labelled


def entity_id(name: str) -> str:
    """The id an exported KB gives a resource: its readable name with ``_`` for spaces (the URI's tail)."""
    return name.replace(" ", "_")


def readable_name(uri: str) -> str:
    """``http://dbpedia.org/resource/Dead_Sea`` -> ``Dead Sea`` (percent-decoded)."""
    return unquote(uri.removeprefix(RESOURCE)).replace("_", " ").strip()


def _parse_query(query: str) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    triples = TRIPLE.findall(query)
    resources = [readable_name(t[1:-1]) for triple in triples for t in triple if t.startswith(f"<{RESOURCE}")]
    pair = None
    if len(triples) == 1:
        subject, predicate, obj = triples[0]
        match = PREDICATE.match(predicate[1:-1])
        if match and len(resources) == 1 and "?" in subject + obj:
            pair = (resources[0], match.group(1))
    return tuple(dict.fromkeys(resources)), pair


def in_dev_split(question_id: str, dev_percent: int) -> bool:
    """Whether a question goes to the dev split: a hash of its id, so the split never changes."""
    return int(hashlib.sha1(question_id.encode()).hexdigest(), 16) % 100 < dev_percent


def _read_questions(path: Path, names: dict[str, None], pairs: dict[tuple[str, str], None]) -> tuple[list, int]:
    """The questions of one LC-QuAD file (null or malformed ones skipped and counted); their resources
    and single-triple pairs are added to ``names`` and ``pairs``."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not LC-QuAD JSON ({error})") from error
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of LC-QuAD questions")
    questions, skipped = [], 0
    for row in rows:
        text, query = row.get("corrected_question"), row.get("sparql_query")
        if not isinstance(text, str) or not text.strip() or text.strip() in {"n/a", "[]"} or not query:
            skipped += 1
            continue
        entities, pair = _parse_query(query)
        if not entities:
            skipped += 1
            continue
        names.update(dict.fromkeys(entities))
        if pair:
            pairs[pair] = None
        questions.append(Question(str(row.get("_id")), text.strip(), entities, pair))
    return questions, skipped


def read_lcquad(directory: Path, dev_percent: int = 10, test: Path | None = None) -> LcQuad:
    """Reads ``train-data.json`` and ``entities.txt``; null or malformed questions are skipped and counted.

    Without ``test``, a hash of each id puts ``dev_percent`` of the questions in the dev split. With a
    ``test`` file (LC-QuAD format), every question of ``train-data.json`` trains, the test questions
    are the evaluation split, and the closed-world KB holds the names of both files: the KB is known
    in advance, only the labels are held out.
    """
    names: dict[str, None] = {}
    pairs: dict[tuple[str, str], None] = {}
    questions, skipped = _read_questions(directory / "train-data.json", names, pairs)
    if test is not None:
        train, split = questions, "test"
        evaluated, test_skipped = _read_questions(test, names, pairs)
        skipped += test_skipped
    else:
        split = "dev"
        train = [q for q in questions if not in_dev_split(q.id, dev_percent)]
        evaluated = [q for q in questions if in_dev_split(q.id, dev_percent)]
    for line in (directory / "entities.txt").read_text(encoding="utf-8").splitlines():
        if line.strip().startswith(RESOURCE):
            names[readable_name(line.strip())] = None
    return LcQuad(train, evaluated, [name for name in names if name], list(pairs), skipped, split)


def name_swaps(data: LcQuad, seed: int = 0) -> list[tuple[str, str]]:
    """One synthetic (question, name) per KB name: a training question with a single gold entity that
    appears verbatim, that entity replaced by the KB name (teaches copying names, not memorising them)."""
    rng = random.Random(seed)
    templates = [(q.text, q.entities[0]) for q in data.train if len(q.entities) == 1 and q.entities[0] in q.text]
    if not templates:
        return []
    swaps = []
    for name in data.names:
        text, original = rng.choice(templates)
        swaps.append((text.replace(original, name, 1), name))
    return swaps
