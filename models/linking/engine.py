"""Generative entity linking and KBQA: the seq2seq model writes a name the trie allows, the KB resolves it.

Usable from Python without the server::

    engine = LinkingEngine.open(load_seq2seq_model("runs/demo-model"), Path("runs/demo-index"))
    engine.link([LinkQuery("Who founded [START_ENT] Amazon [END_ENT]?")])

:class:`AsyncLinkingEngine` is the server's façade: concurrent queries share ``generate`` calls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from pathlib import Path
from typing import Any

from index.linking_index import LinkingIndex
from index.manifest import IndexLoadError
from index.name_vectors import NameVectors
from index.trie import TokenTrie
from models.admission import Admission
from models.batching import BatchedFacade
from models.linking.candidates import (
    DenseCandidates,
    LexicalCandidates,
    MatchingForm,
    copied_characters,
    find_mention,
    matching_form,
)
from models.linking.disambiguation import DescriptionScorer, Disambiguator
from models.linking.generation import Hypothesis, NextTokenSource, constrained_beam_search
from models.linking.query import AUTO, MENTION_END, MENTION_START, LinkQuery, Task, UnknownCandidatesError
from models.linking.seq2seq import Seq2SeqModel, format_input, load_seq2seq_model
from models.loader import DTypeSetting
from models.similarity.encoder import EncoderSpec, TokenEncoder
from models.similarity.engine import SimilarityEngine


@dataclass(frozen=True)
class LinkerSpec:
    """How to open a :class:`LinkingEngine`, as plain values: a server opens its linker from one,
    and a bulk job sends one to each worker process."""

    model: str
    index: Path
    _: KW_ONLY
    dtype: DTypeSetting = "auto"
    """The linker's precision: ``auto`` is bf16 where the CPU computes it natively
    (:func:`models.loader.choose_dtype`)."""
    max_input_tokens: int = 256
    encoder: EncoderSpec | None = None
    """The sentence encoder behind disambiguation and dense candidates; without one, neither runs
    whatever the two options below say."""
    disambiguate: bool = True
    """Order entities sharing a name by the similarity of their descriptions to the text
    (:mod:`models.linking.disambiguation`)."""
    dense_candidates: int = 5
    """With ``candidates: auto``, how many names nearest the text's vector join the names it writes
    (:class:`DenseCandidates`; 0: none). Used where the index holds name vectors."""
    copy_weight: float = 0.0
    several_max_gap: float | None = None

    def open(self, encoder: TokenEncoder | None = None) -> LinkingEngine:
        """Loads the model and opens the index; errors name the path (see :meth:`LinkingEngine.open`).
        ``encoder`` (one already loaded from ``self.encoder``) or a new one from that spec serves
        disambiguation and dense candidates."""
        model = load_seq2seq_model(self.model, self.dtype)
        engine = LinkingEngine.open(model, self.index, self.max_input_tokens)
        vectors = engine.index.name_vectors if self.dense_candidates else None
        if self.encoder is not None and (self.disambiguate or vectors is not None):
            encoder = encoder or self.encoder.load()
            if self.disambiguate:
                engine.disambiguator = DescriptionScorer(SimilarityEngine(encoder))
            if vectors is not None:
                engine.dense = DenseCandidates(
                    checked_vectors(vectors, encoder, self.index), encoder.embed_sentences, self.dense_candidates
                )
        engine.copy_weight = self.copy_weight
        engine.several_max_gap = self.several_max_gap
        return engine


def checked_vectors(vectors: NameVectors, encoder: TokenEncoder, index: Path) -> NameVectors:
    """``vectors`` if ``encoder`` made them; :class:`IndexLoadError` naming both otherwise."""
    if vectors.encoder != encoder.identity:
        raise IndexLoadError(
            f"index at {index} holds name vectors from {vectors.encoder!r}, but the linker's encoder is "
            f"{encoder.identity!r}; rebuild the index with --name-vectors under this encoder, or set "
            "SIMLINK_LINK_DENSE_CANDIDATES=0"
        )
    return vectors


@dataclass(frozen=True)
class EntityMatch:
    """An entity and how it was chosen: ``score`` is the generated name's log-probability; where
    several entities share that name, ``disambiguation`` is the score that ordered them. ``mention``
    is the character span where the text writes the name (:func:`find_mention`), if it does."""

    id: str
    name: str
    score: float
    disambiguation: float | None = None
    mention: tuple[int, int] | None = None


@dataclass(frozen=True)
class PairMatch:
    subject: str
    predicate: str
    answers: tuple[str, ...]
    score: float


Matches = list[EntityMatch] | list[PairMatch]


def _mention_span(query: LinkQuery) -> tuple[int, int] | None:
    """The query's mention span: the one it gives, or the text between the mention markers written
    in the text (white space trimmed), or None."""
    if query.mention:
        return query.mention
    opened, closed = query.text.find(MENTION_START), query.text.find(MENTION_END)
    if not 0 <= opened < closed:
        return None
    start, end = opened + len(MENTION_START), closed
    inner = query.text[start:end]
    start, end = start + len(inner) - len(inner.lstrip()), end - (len(inner) - len(inner.rstrip()))
    return (start, end) if start < end else None


def _mentioned(query: LinkQuery) -> str:
    """The query's mention (:func:`_mention_span`), else its text."""
    span = _mention_span(query)
    return query.text[span[0] : span[1]] if span else query.text


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
    disambiguator: Disambiguator | None = None
    copy_weight: float = 0.0
    """Added to a result's log-probability, per character of it the text writes (:func:`copied_characters`),
    to order the beam's results: the copy preference of Seq2Seq + prefix tree. 0 orders by the model alone."""
    several_max_gap: float | None = None
    """With ``LinkQuery.several``, a further beam joins only if its log-probability is at most this much
    below the first result's (None: any gap); fitted on a training split by ``simlink evaluate link``."""
    dense: DenseCandidates | None = None
    """Names nearest a text's vector, joining the names it writes for ``candidates: auto`` (None: none)."""
    _max_lengths: dict[str, int] = field(init=False)
    _lexical: dict[str, LexicalCandidates] = field(init=False, default_factory=dict)
    _lexical_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    @classmethod
    def open(
        cls,
        model: Seq2SeqModel,
        index_path: Path,
        max_input_tokens: int = 256,
        disambiguator: Disambiguator | None = None,
    ) -> LinkingEngine:
        """Opens the index at ``index_path`` for ``model``, refusing one built with another tokenizer
        or other special tokens (:class:`index.manifest.IndexLoadError`, naming the path). Without a
        ``disambiguator``, entities sharing a generated name come back tied, in id order."""
        index = LinkingIndex.open(index_path, model.tokens.identity)
        index.manifest.check_special_tokens(index.path, model.tokens.special_tokens)
        return cls(model, index, max_input_tokens, disambiguator)

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
        """The model, the index (with its manifest) and how many dense candidates ``auto`` adds, as plain data."""
        dense = self.dense.k if self.dense is not None else 0
        return {"model": self.model.describe(), "index": self.index.describe(), "dense_candidates": dense}

    def close(self) -> None:
        self.index.close()

    def check_candidates(self, candidates: Sequence[str]) -> dict[str, int]:
        """Sequence ids of the candidates' names; raises :class:`UnknownCandidatesError` for unknown ids."""
        found = self.index.store.sequences_of_entities(candidates)
        unknown = [entity_id for entity_id in candidates if entity_id not in found]
        if unknown:
            raise UnknownCandidatesError(unknown)
        return found

    def lexical_candidates(self, task: Task) -> LexicalCandidates:
        """The finder of the KB names a text writes: entity names (keys: entity ids) or KBQA subjects
        (keys: subjects). Built from the store on first use and kept: seconds and some memory per
        million names, paid only by deployments that ask for ``candidates: auto``."""
        with self._lexical_lock:
            if task not in self._lexical:
                store = self.index.store
                named = store.entity_names() if task == "entity" else ((s, s) for s in store.kbqa_subjects())
                self._lexical[task] = LexicalCandidates(named)
            return self._lexical[task]

    def _tries_for(self, queries: Sequence[LinkQuery]) -> list[NextTokenSource]:
        """The trie each query's search runs under: the whole index's, its candidates', or for
        ``candidates: auto`` the names the text writes and (entity task, with dense candidates) those
        nearest its vector; the whole index's when the text writes none."""
        written = [self._written(query) for query in queries]
        nearest = self._nearest(queries, written)
        return [self._trie_for(*found) for found in zip(queries, written, nearest, strict=True)]

    def _written(self, query: LinkQuery) -> tuple[str, ...] | None:
        """For ``candidates: auto``, the keys (entity ids, or subjects) of the names the text writes;
        None when it writes none, or the query does not ask for ``auto``."""
        if query.candidates != AUTO:
            return None
        return self.lexical_candidates(query.task)(query.text, _mention_span(query))

    def _nearest(self, queries: Sequence[LinkQuery], written: Sequence[tuple[str, ...] | None]) -> list[list[int]]:
        """The dense candidates of each ``auto`` entity query whose text writes a name (one that
        writes none is searched over the whole index anyway): the sequence ids of the names nearest
        its mention's vector, or its text's; empty for other queries."""
        found: list[list[int]] = [[] for _ in queries]
        if self.dense is None:
            return found
        wanted = [i for i, keys in enumerate(written) if keys is not None and queries[i].task == "entity"]
        for i, nearest in zip(wanted, self.dense([_mentioned(queries[i]) for i in wanted]), strict=True):
            found[i] = nearest
        return found

    def _trie_for(self, query: LinkQuery, written: tuple[str, ...] | None, nearest: Sequence[int]) -> NextTokenSource:
        full = self.index.kbqa_trie if query.task == "kbqa" else self.index.entity_trie
        if query.candidates is None or (query.candidates == AUTO and written is None):
            return full
        if query.candidates != AUTO:
            sequence_ids = set(self.check_candidates(query.candidates).values())
        elif query.task == "kbqa":
            sequence_ids = set(self.index.store.pair_sequences_of_subjects(written))
        else:
            sequence_ids = {*self.index.store.sequences_of_entities(written).values(), *nearest}
        return TokenTrie.build(full.sequence(sequence_id) for sequence_id in sequence_ids)

    def link(self, queries: Sequence[LinkQuery]) -> list[Matches]:
        """Matches per query, best first; queries with the same beam width share one beam search."""
        return [self.resolve(query, found) for query, found in zip(queries, self.search(queries), strict=True)]

    def search(self, queries: Sequence[LinkQuery]) -> list[list[Hypothesis]]:
        """The constrained beam search's hypotheses per query, best first by log-probability (the
        first half of :meth:`link`; :meth:`resolve` is the second)."""
        results: list[list[Hypothesis]] = [[] for _ in queries]
        by_beams: dict[int, list[int]] = {}
        for position, query in enumerate(queries):
            by_beams.setdefault(query.num_beams, []).append(position)
        for num_beams, positions in by_beams.items():
            group = [queries[position] for position in positions]
            hypotheses = constrained_beam_search(
                self.model,
                [self._model_input(query) for query in group],
                self._tries_for(group),
                num_beams=num_beams,
                max_new_tokens=max(self._max_lengths[query.task] for query in group) + 1,
                max_input_tokens=self.max_input_tokens,
            )
            for position, found in zip(positions, hypotheses, strict=True):
                results[position] = found
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

    def resolve(self, query: LinkQuery, hypotheses: list[Hypothesis]) -> Matches:
        """The KB's entities (or pairs with their answers) behind the hypotheses, ordered by the
        copy preference (``copy_weight``) and, within a shared name, by the disambiguator."""
        if self.copy_weight and len(hypotheses) > 1:
            hypotheses = self._favour_copies(query, hypotheses)
        if query.task == "kbqa":
            return self._resolve_pairs(hypotheses, query.top_k)
        return self._resolve_entities(hypotheses, query)

    def _resolve_entities(self, hypotheses: list[Hypothesis], query: LinkQuery) -> list[EntityMatch]:
        trie = self.index.entity_trie
        scored = [(trie.sequence_id(hypothesis.tokens), hypothesis.score) for hypothesis in hypotheses]
        entities = self.index.store.entities_of_sequences([sequence_id for sequence_id, _ in scored])
        allowed = set(query.candidates) if query.candidates not in (None, AUTO) else None
        form = matching_form(query.text)
        matches: list[EntityMatch] = []
        for sequence_id, score in scored:
            named = [(i, name) for i, name in entities.get(sequence_id, []) if allowed is None or i in allowed]
            if not named:
                continue
            if query.several and matches:  # checked before the disambiguator spends a pass on the name
                span = self._joining_span(named[0][1], score, matches, query.text, form)
                if span is None:
                    continue
                found = [replace(self._ordered(query, named, score, form)[0], mention=span)]
            else:
                found = self._ordered(query, named, score, form)
            matches.extend(found[:1] if query.several else found)
            if len(matches) >= query.top_k:
                break
        return matches[: query.top_k]

    def _joining_span(
        self, name: str, score: float, chosen: list[EntityMatch], text: str, form: MatchingForm
    ) -> tuple[int, int] | None:
        """Where the text writes a further beam's name apart from the chosen ones, if it joins a
        ``several`` answer; None if it is not written apart, is further than ``several_max_gap``
        below the first, or is part of a chosen name that the text does not write as such (the text's
        words for it belong to that name: *Warner Bros.* in a question that misspells *Warner Bros.
        International Television*)."""
        if self.several_max_gap is not None and chosen[0].score - score > self.several_max_gap:
            return None
        if any(match.mention is None and find_mention(name, match.name) is not None for match in chosen):
            return None
        taken = [match.mention for match in chosen if match.mention is not None]
        return find_mention(name, text, avoid=taken, form=form)

    def _favour_copies(self, query: LinkQuery, hypotheses: list[Hypothesis]) -> list[Hypothesis]:
        """The hypotheses by log-probability plus ``copy_weight`` per character of their name (or
        subject and predicate) that the text writes, or the mention when the query marks one (a long
        text shares a subsequence with any long name); their scores stay log-probabilities."""
        store = self.index.store
        if query.task == "kbqa":
            trie = self.index.kbqa_trie
            pairs = [store.pairs_of_sequence(trie.sequence_id(h.tokens)) for h in hypotheses]
            targets = ["".join(found[0]) if found else "" for found in pairs]
        else:
            trie = self.index.entity_trie
            sequence_ids = [trie.sequence_id(h.tokens) for h in hypotheses]
            named = store.entities_of_sequences(sequence_ids)
            targets = [named[i][0][1] if named.get(i) else "" for i in sequence_ids]
        source = _mentioned(query)
        bonus = [self.copy_weight * copied_characters(target, source) for target in targets]
        order = sorted(range(len(hypotheses)), key=lambda i: -(hypotheses[i].score + bonus[i]))
        return [hypotheses[i] for i in order]

    def _ordered(
        self, query: LinkQuery, named: list[tuple[str, str]], score: float, form: MatchingForm
    ) -> list[EntityMatch]:
        """The entities behind one generated name: alone as they are; several, best first by the
        disambiguator (in id order without one). Each with the place the text writes the name (inside
        the query's mention, if it marks one and the name is written there)."""
        text = query.text
        spans = {name: find_mention(name, text, within=query.mention, form=form) for _, name in named}
        if len(named) < 2 or self.disambiguator is None:
            return [EntityMatch(entity_id, name, score, None, spans[name]) for entity_id, name in named]
        descriptions = self.index.store.descriptions([entity_id for entity_id, _ in named])
        fits = self.disambiguator(text, [descriptions.get(entity_id, "") for entity_id, _ in named])
        ranked = sorted(zip(named, fits, strict=True), key=lambda item: (item[1] is None, -(item[1] or 0.0)))
        return [EntityMatch(i, name, score, fit, spans[name]) for (i, name), fit in ranked]

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
        refill_share: float = 0.0,
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
            refill_share=refill_share,
        )
        self.engine = engine

    async def link(self, query: LinkQuery) -> Matches:
        """The matches of one query, best first; unknown candidate ids raise
        :class:`UnknownCandidatesError` before any generation."""
        if query.candidates not in (None, AUTO):
            await asyncio.to_thread(self.engine.check_candidates, query.candidates)
        with self.admission.admit(query.num_beams):
            (matches,) = await self._batcher.submit([query])
        return matches
