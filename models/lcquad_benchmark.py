"""Entity linking and KBQA evaluation on LC-QuAD 1.0, with two baselines measured on the same split.

The knowledge base is closed-world: every DBpedia resource named in the file's SPARQL queries
plus ``entities.txt`` (readable name = the URI's last part, ``_`` as spaces, percent-decoded).
Questions split deterministically (by a hash of their id) into train and dev. The gold entities
of a question are the resources of its query; for KBQA, single-triple questions give a gold
(resource, predicate) pair.

Baselines: dictionary matching (greedy longest n-grams of the question equal to a KB name) and
dense retrieval (MiniLM mean-pooled cosine between the question and every name, top 1).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from models.linking import LinkingEngine, LinkQuery

RESOURCE = "http://dbpedia.org/resource/"
PREDICATE = re.compile(r"^http://dbpedia\.org/(?:ontology|property)/([a-z][^/]*)$")
TERM = r"(<[^>]+>|\?\w+)"
TRIPLE = re.compile(rf"{TERM}\s+{TERM}\s+{TERM}")
WORD = re.compile(r"\w+(?:['’.]\w+)*")


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
    names: list[str]
    pairs: list[tuple[str, str]]
    skipped: int = 0

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


def _is_dev(question_id: str, dev_percent: int) -> bool:
    return int(hashlib.sha1(question_id.encode()).hexdigest(), 16) % 100 < dev_percent


def read_lcquad(directory: Path, dev_percent: int = 10) -> LcQuad:
    """Reads ``train-data.json`` and ``entities.txt``; null or malformed questions are skipped and counted."""
    rows = json.loads((directory / "train-data.json").read_text(encoding="utf-8"))
    train, dev, skipped = [], [], 0
    names: dict[str, None] = {}
    pairs: dict[tuple[str, str], None] = {}
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
        question = Question(str(row.get("_id")), text.strip(), entities, pair)
        (dev if _is_dev(question.id, dev_percent) else train).append(question)
    for line in (directory / "entities.txt").read_text(encoding="utf-8").splitlines():
        if line.strip().startswith(RESOURCE):
            names[readable_name(line.strip())] = None
    return LcQuad(train, dev, [name for name in names if name], list(pairs), skipped)


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


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class DictionaryLinker:
    """Greedy longest match: the longest n-grams of the question that equal a KB name, left to right."""

    def __init__(self, names: Iterable[str]) -> None:
        self.by_words: dict[tuple[str, ...], str] = {}
        for name in names:
            self.by_words.setdefault(tuple(_words(name)), name)
        self.longest = max(map(len, self.by_words))

    def link(self, text: str) -> list[str]:
        words = _words(text)
        used = [False] * len(words)
        found = []
        for size in range(min(self.longest, len(words)), 0, -1):
            for start in range(len(words) - size + 1):
                if any(used[start : start + size]):
                    continue
                name = self.by_words.get(tuple(words[start : start + size]))
                if name is not None:
                    found.append(name)
                    used[start : start + size] = [True] * size
        return found


class DenseLinker:
    """Top-1 cosine between the question's and every name's mean-pooled MiniLM vector."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], names: Sequence[str]) -> None:
        self.names = list(names)
        self.embed = embed
        self.matrix = embed(self.names)

    def link_all(self, texts: Sequence[str]) -> list[list[str]]:
        best = (self.embed(texts) @ self.matrix.T).argmax(axis=1)
        return [[self.names[i]] for i in best]


@dataclass
class LinkScores:
    """Micro precision/recall/F1 over (question, entity) pairs, exact match per question, valid-name share."""

    true_positive: int = 0
    predicted: int = 0
    gold: int = 0
    exact: int = 0
    questions: int = 0
    valid: int = 0
    seen_hits: list[int] = field(default_factory=lambda: [0, 0])
    unseen_hits: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, predicted: Sequence[str], gold: Sequence[str], kb: set[str], seen: set[str]) -> None:
        predicted_set, gold_set = set(predicted), set(gold)
        self.true_positive += len(predicted_set & gold_set)
        self.predicted += len(predicted_set)
        self.gold += len(gold_set)
        self.exact += predicted_set == gold_set
        self.questions += 1
        self.valid += sum(name in kb for name in predicted_set)
        for name in gold_set:
            bucket = self.seen_hits if name in seen else self.unseen_hits
            bucket[0] += name in predicted_set
            bucket[1] += 1

    def summary(self) -> dict[str, float]:
        precision = self.true_positive / max(self.predicted, 1)
        recall = self.true_positive / max(self.gold, 1)
        return {
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-12),
            "exact_match": self.exact / max(self.questions, 1),
            "valid_names": self.valid / max(self.predicted, 1),
            "recall_seen": self.seen_hits[0] / max(self.seen_hits[1], 1),
            "recall_unseen": self.unseen_hits[0] / max(self.unseen_hits[1], 1),
        }


def score_predictions(data: LcQuad, predicted: Sequence[Sequence[str]], seconds: float) -> dict[str, float]:
    """:class:`LinkScores` summary of one method's dev predictions, plus its time per question."""
    kb, seen = set(data.names), {name for question in data.train for name in question.entities}
    scores = LinkScores()
    for names, question in zip(predicted, data.dev, strict=True):
        scores.add(names, question.entities, kb, seen)
    return {**scores.summary(), "ms_per_question": 1000 * seconds / max(len(data.dev), 1)}


def mention_span(name: str, text: str, whole: bool = True) -> tuple[int, int] | None:
    """Word span of the name in the text (case-insensitive): all its words, or with ``whole=False``
    the longest prefix of them that occurs (``John Forbes`` for ``John Forbes (British Army officer)``)."""
    words, name_words = _words(text), _words(name)
    for size in range(len(name_words), 0 if not whole else len(name_words) - 1, -1):
        for start in range(len(words) - size + 1):
            if words[start : start + size] == name_words[:size]:
                return start, start + size
    return None


def mentioned(name: str, text: str) -> bool:
    """Whether the name's words occur consecutively in the text (case-insensitive)."""
    return bool(_words(name)) and mention_span(name, text) is not None


def several_entities(names: Sequence[str], text: str) -> list[str]:
    """The top beam, then every other beam whose name the text mentions verbatim at words that no
    name already chosen covers (so ``John`` does not join ``John Forbes (British Army officer)``)."""
    if not names:
        return []
    chosen = [names[0]]
    covered = [mention_span(names[0], text, whole=False)]
    for name in names[1:]:
        span = mention_span(name, text)
        if span and all(other is None or span[1] <= other[0] or other[1] <= span[0] for other in covered):
            chosen.append(name)
            covered.append(span)
    return chosen


class NgramCandidates:
    """A per-question candidate set for the trie: KB names equal to an n-gram of the question, and
    names that start with an n-gram of two or more words (``John Forbes`` in the question admits
    ``John Forbes (British Army officer)``)."""

    def __init__(self, names: Iterable[str], entity_id: Callable[[str], str]) -> None:
        self.exact: dict[tuple[str, ...], list[str]] = {}
        self.by_prefix: dict[tuple[str, ...], list[str]] = {}
        for name in names:
            words = tuple(_words(name))
            self.exact.setdefault(words, []).append(entity_id(name))
            for end in range(2, len(words) + 1):
                self.by_prefix.setdefault(words[:end], []).append(entity_id(name))
        self.longest = max(map(len, self.exact))

    def __call__(self, text: str) -> tuple[str, ...] | None:
        """Candidate ids, or None (use the full trie) when no n-gram matches."""
        words = _words(text)
        found: dict[str, None] = {}
        for size in range(1, min(self.longest, len(words)) + 1):
            for start in range(len(words) - size + 1):
                ngram = tuple(words[start : start + size])
                found.update(dict.fromkeys(self.exact.get(ngram, ())))
                found.update(dict.fromkeys(self.by_prefix.get(ngram, ())))
        return tuple(found) or None


def generative_predictions(
    engine: LinkingEngine,
    questions: Sequence[Question],
    num_beams: int,
    batch_size: int,
    progress: Callable[[Iterable, str, int], Iterable] = lambda items, description, total: items,
    candidates: Callable[[str], tuple[str, ...] | None] | None = None,
) -> tuple[list[list[str]], list[list[str]]]:
    """Per question: the top beam alone, and :func:`several_entities` of the beams (a cheap way to
    return several entities per question). With ``candidates``, each
    question's search is restricted to the ids it returns (the full trie when it returns None)."""
    top1, with_mentioned = [], []
    batches = [questions[i : i + batch_size] for i in range(0, len(questions), batch_size)]
    for batch in progress(batches, "linking", len(batches)):
        queries = [
            LinkQuery(
                q.text,
                "entity",
                top_k=num_beams,
                num_beams=num_beams,
                candidates=candidates(q.text) if candidates else None,
            )
            for q in batch
        ]
        for question, matches in zip(batch, engine.link(queries), strict=True):
            names = list(dict.fromkeys(match.name for match in matches))
            top1.append(names[:1])
            with_mentioned.append(several_entities(names, question.text))
    return top1, with_mentioned


def kbqa_accuracy(
    engine: LinkingEngine, questions: Sequence[Question], num_beams: int, batch_size: int
) -> dict[str, float]:
    """Top-1 accuracy of (subject, predicate), and of each part, on the single-triple questions."""
    single = [q for q in questions if q.pair]
    hits = {"pair": 0, "subject": 0, "predicate": 0}
    for start in range(0, len(single), batch_size):
        batch = single[start : start + batch_size]
        found = engine.link([LinkQuery(q.text, "kbqa", top_k=1, num_beams=num_beams) for q in batch])
        for question, matches in zip(batch, found, strict=True):
            predicted = (matches[0].subject, matches[0].predicate) if matches else ("", "")
            hits["pair"] += predicted == question.pair
            hits["subject"] += predicted[0] == question.pair[0]
            hits["predicate"] += predicted[1] == question.pair[1]
    return {"questions": len(single), **{f"{key}_accuracy": value / max(len(single), 1) for key, value in hits.items()}}
