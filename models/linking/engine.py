"""Generative entity linking and KBQA: the seq2seq model writes a name the trie allows, the KB resolves it.

Usable from Python without the server::

    engine = LinkingEngine.open(load_seq2seq_model("runs/demo-model"), Path("runs/demo-index"))
    engine.link([LinkQuery("Who founded [START_ENT] Amazon [END_ENT]?")])

:class:`AsyncLinkingEngine` is the server's façade: concurrent queries share ``generate`` calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.linking_index import LinkingIndex
from index.trie import TokenTrie
from models.admission import Admission
from models.batching import BatchedFacade
from models.linking.generation import Hypothesis, NextTokenSource, constrained_beam_search
from models.linking.seq2seq import Seq2SeqModel, Task, format_input, load_seq2seq_model
from models.loader import DType


@dataclass(frozen=True)
class LinkerSpec:
    """How to open a :class:`LinkingEngine`, as plain values: a server opens its linker from one,
    and a bulk job sends one to each worker process."""

    model: str
    index: Path
    dtype: DType = "fp32"
    max_input_tokens: int = 256

    def open(self) -> LinkingEngine:
        """Loads the model and opens the index; errors name the path (see :meth:`LinkingEngine.open`)."""
        return LinkingEngine.open(load_seq2seq_model(self.model, self.dtype), self.index, self.max_input_tokens)


class UnknownCandidatesError(ValueError):
    """Candidate entity ids that the index does not hold."""

    def __init__(self, unknown: Sequence[str]) -> None:
        shown = ", ".join(repr(entity_id) for entity_id in unknown[:10])
        super().__init__(f"{len(unknown)} unknown entity id(s): {shown}")
        self.unknown = list(unknown)


@dataclass(frozen=True)
class LinkQuery:
    """One linking request: a text (with an optional mention span) and how many answers to return."""

    text: str
    task: Task = "entity"
    mention: tuple[int, int] | None = None
    top_k: int = 5
    num_beams: int = 5
    candidates: tuple[str, ...] | None = None


@dataclass(frozen=True)
class EntityMatch:
    id: str
    name: str
    score: float


@dataclass(frozen=True)
class PairMatch:
    subject: str
    predicate: str
    answers: tuple[str, ...]
    score: float


Matches = list[EntityMatch] | list[PairMatch]


_INPUT_TOKENS_RESERVED = 8  # [CLS], [SEP], the task tag and the two mention markers, with room to spare


def _token_window(
    offsets: Sequence[tuple[int, int]], mention: tuple[int, int], budget: int, length: int
) -> tuple[int, int]:
    """Character span of at most ``budget`` consecutive tokens (given by their character ``offsets``)
    that holds the mention's tokens, with as many tokens before the mention as after it where the
    text allows."""
    first = next((i for i, (_, end) in enumerate(offsets) if end > mention[0]), len(offsets))
    last = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < mention[1]), first)
    before = max(0, (budget - (last + 1 - first)) // 2)
    start_token = max(0, first - before)
    end_token = min(len(offsets), start_token + budget)
    start_token = max(0, min(start_token, end_token - budget))
    start = 0 if start_token == 0 else offsets[start_token][0]
    end = length if end_token == len(offsets) else offsets[end_token - 1][1]
    return min(start, mention[0]), max(end, mention[1])


@dataclass
class LinkingEngine:
    """A seq2seq model and the index of the knowledge base whose names it may write."""

    model: Seq2SeqModel
    index: LinkingIndex
    max_input_tokens: int = 256
    _max_lengths: dict[str, int] = field(init=False)

    @classmethod
    def open(cls, model: Seq2SeqModel, index_path: Path, max_input_tokens: int = 256) -> LinkingEngine:
        """Opens the index at ``index_path`` for ``model``, refusing one built with another tokenizer
        or other special tokens (:class:`index.manifest.IndexLoadError`, naming the path)."""
        index = LinkingIndex.open(index_path, model.tokens.identity)
        index.manifest.check_special_tokens(index.path, model.tokens.special_tokens)
        return cls(model, index, max_input_tokens)

    def __post_init__(self) -> None:
        counts = self.index.manifest.counts
        self._max_lengths = {
            "entity": counts.get("longest_entity_sequence", 64),
            "kbqa": counts.get("longest_kbqa_sequence", 64),
        }

    def supports(self, task: Task) -> bool:
        """Whether the index holds anything to answer ``task`` with (``kbqa`` needs facts)."""
        key = "subject_predicate_pairs" if task == "kbqa" else "distinct_names"
        return self.index.manifest.counts.get(key, 0) > 0

    def describe(self) -> dict[str, Any]:
        """The model and the index (with its manifest), as plain data."""
        return {"model": self.model.describe(), "index": self.index.describe()}

    def close(self) -> None:
        self.index.close()

    def check_candidates(self, candidates: Sequence[str]) -> dict[str, int]:
        """Sequence ids of the candidates' names; raises :class:`UnknownCandidatesError` for unknown ids."""
        found = self.index.store.sequences_of_entities(candidates)
        unknown = [entity_id for entity_id in candidates if entity_id not in found]
        if unknown:
            raise UnknownCandidatesError(unknown)
        return found

    def _trie_for(self, query: LinkQuery) -> NextTokenSource:
        if query.task == "kbqa":
            return self.index.kbqa_trie
        if query.candidates is None:
            return self.index.entity_trie
        sequence_ids = set(self.check_candidates(query.candidates).values())
        return TokenTrie.build(self.index.entity_trie.sequence(sequence_id) for sequence_id in sequence_ids)

    def link(self, queries: Sequence[LinkQuery]) -> list[Matches]:
        """Matches per query, best first; queries with the same beam width share one ``generate`` call."""
        results: list[Matches] = [[] for _ in queries]
        by_beams: dict[int, list[int]] = {}
        for position, query in enumerate(queries):
            by_beams.setdefault(query.num_beams, []).append(position)
        for num_beams, positions in by_beams.items():
            group = [queries[position] for position in positions]
            hypotheses = constrained_beam_search(
                self.model,
                [self._model_input(query) for query in group],
                [self._trie_for(query) for query in group],
                num_beams=num_beams,
                max_new_tokens=max(self._max_lengths[query.task] for query in group) + 1,
                max_input_tokens=self.max_input_tokens,
            )
            for position, query, found in zip(positions, group, hypotheses, strict=True):
                results[position] = self._resolve(query, found)
        return results

    def _model_input(self, query: LinkQuery) -> str:
        """The formatted input; a long text is cut to a window around the mention, so that the input's
        token limit can never cut the mention markers off."""
        text, mention = query.text, query.mention
        if mention is not None:
            text, mention = self._around_mention(text, mention)
        return format_input(text, query.task, mention)

    def _around_mention(self, text: str, mention: tuple[int, int]) -> tuple[str, tuple[int, int]]:
        """The part of ``text`` around ``mention`` that fits the input's token limit, and the mention's
        span in it. Measured in tokens, since a character is a token in Chinese but about a quarter of
        one in English; a tokenizer without character offsets gets a window of characters instead."""
        budget = self.max_input_tokens - _INPUT_TOKENS_RESERVED
        tokenizer = self.model.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            start = max(0, mention[0] - 2 * budget)
            end = mention[1] + 2 * budget
        else:
            offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            if len(offsets) <= budget:
                return text, mention
            start, end = _token_window(offsets, mention, budget, len(text))
        return text[start:end], (mention[0] - start, mention[1] - start)

    def _resolve(self, query: LinkQuery, hypotheses: list[Hypothesis]) -> Matches:
        if query.task == "kbqa":
            return self._resolve_pairs(hypotheses, query.top_k)
        return self._resolve_entities(hypotheses, query)

    def _resolve_entities(self, hypotheses: list[Hypothesis], query: LinkQuery) -> list[EntityMatch]:
        trie = self.index.entity_trie
        scored = [(trie.sequence_id(hypothesis.tokens), hypothesis.score) for hypothesis in hypotheses]
        entities = self.index.store.entities_of_sequences([sequence_id for sequence_id, _ in scored])
        allowed = set(query.candidates) if query.candidates is not None else None
        matches = [
            EntityMatch(entity_id, name, score)
            for sequence_id, score in scored
            for entity_id, name in entities.get(sequence_id, [])
            if allowed is None or entity_id in allowed
        ]
        return matches[: query.top_k]

    def _resolve_pairs(self, hypotheses: list[Hypothesis], top_k: int) -> list[PairMatch]:
        trie, store = self.index.kbqa_trie, self.index.store
        matches = []
        for hypothesis in hypotheses:
            for subject, predicate in store.pairs_of_sequence(trie.sequence_id(hypothesis.tokens)):
                matches.append(
                    PairMatch(subject, predicate, tuple(store.objects(subject, predicate)), hypothesis.score)
                )
        return matches[:top_k]


class AsyncLinkingEngine(BatchedFacade[LinkQuery, Matches]):
    """The linking engine for a server: concurrent queries with the same beam width share one
    ``generate`` call, run in a worker thread (:mod:`models.batching`). A query's cost is its beam
    count, admitted or refused by ``admission`` (:mod:`models.admission`). Stopping the façade
    leaves the engine open: whoever opened it closes it."""

    def __init__(
        self,
        engine: LinkingEngine,
        max_batch_queries: int = 16,
        batch_wait_ms: float = 2.0,
        on_batch: Callable[[int], None] | None = None,
        admission: Admission | None = None,
        on_drop: Callable[[int], None] | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(
            engine.link,
            name="link-batcher",
            stage="generate",
            unit="beams",
            max_items=max_batch_queries,
            wait_ms=batch_wait_ms,
            on_batch=on_batch,
            on_drop=on_drop,
            admission=admission,
            threads=threads,
        )
        self.engine = engine

    async def link(self, query: LinkQuery) -> Matches:
        """The matches of one query, best first; unknown candidate ids raise
        :class:`UnknownCandidatesError` before any generation."""
        if query.candidates is not None:
            await asyncio.to_thread(self.engine.check_candidates, query.candidates)
        with self.admission.admit(query.num_beams):
            (matches,) = await self._batcher.submit([query])
        return matches
