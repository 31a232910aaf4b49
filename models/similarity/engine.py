"""The similarity job as one object: texts in, scores out.

:class:`SimilarityEngine` is the synchronous engine for Python callers and batch jobs.
:class:`AsyncSimilarityEngine` is the façade a server calls: it owns tokenize -> batch -> score,
merging the texts of concurrent callers into shared forward passes (:mod:`models.batching`) and
running the CPU work off the event loop, so an HTTP route only validates and converts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from models.admission import Admission
from models.batching import BatchedFacade, run_cancellable
from models.similarity.encoder import EncodedText, TokenEncoder, TokenizedText
from models.similarity.methods import DEFAULT_METHOD
from models.similarity.scoring import PairScore, Ranking, rank_candidates, score_pairs
from models.timing import timed


@dataclass(frozen=True)
class ScoredPairs:
    """Scores of pairs in order, and the positions (in ``a0, b0, a1, b1, ...`` order) of texts
    that were cut to the token limit."""

    scores: list[PairScore]
    truncated: list[int]


@dataclass(frozen=True)
class RankedTexts:
    """A ranking, and the positions (source first, then candidates) of texts that were cut."""

    ranking: Ranking
    truncated: list[int]


def _flatten(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return [text for pair in pairs for text in pair]


def _low_token_estimate(texts: Sequence[str]) -> int:
    """Fewer tokens than English text usually has (about one per four characters, plus [CLS]/[SEP])."""
    return sum(len(text) // 5 + 2 for text in texts)


def _cut(encoded: Sequence[EncodedText]) -> list[int]:
    return [position for position, text in enumerate(encoded) if text.truncated]


class SimilarityEngine:
    """Encodes texts and scores them: the whole similarity job, usable without a server.

    ``skip_special_tokens`` is the default for leaving [CLS]/[SEP] out of the transport; each
    call may override it.
    """

    def __init__(self, encoder: TokenEncoder, skip_special_tokens: bool = False) -> None:
        self.encoder = encoder
        self.skip_special_tokens = skip_special_tokens

    def skips_special_tokens(self, skip_special_tokens: bool | None = None) -> bool:
        """Whether a call leaves [CLS]/[SEP] out: its own choice, else the engine's default."""
        return self.skip_special_tokens if skip_special_tokens is None else skip_special_tokens

    def compare(
        self,
        pairs: Sequence[tuple[str, str]],
        method: str = DEFAULT_METHOD,
        alignment: int = 0,
        truncate: bool = False,
        skip_special_tokens: bool | None = None,
        tokens: bool = False,
        cosine: bool = False,
    ) -> list[PairScore]:
        """Scores each ``(a, b)`` pair, in order; ``alignment > 0`` returns that many plan cells,
        ``tokens`` every token with its weight, ``cosine`` the cosine matrix (see :func:`score_pair`)."""
        encoded = self.encoder.encode(_flatten(pairs), truncate=truncate)
        skip = self.skips_special_tokens(skip_special_tokens)
        return score_pairs(encoded, method, alignment, skip, tokens, cosine)

    def rank(
        self,
        source: str,
        candidates: Sequence[str],
        method: str = DEFAULT_METHOD,
        top_k: int = 10,
        truncate: bool = False,
        prune: bool = True,
        skip_special_tokens: bool | None = None,
    ) -> Ranking:
        """The ``top_k`` candidates most similar to ``source``, best first."""
        encoded = self.encoder.encode([source, *candidates], truncate=truncate)
        return rank_candidates(
            encoded[0], encoded[1:], method, top_k, prune, self.skips_special_tokens(skip_special_tokens)
        )


class AsyncSimilarityEngine(BatchedFacade[TokenizedText, EncodedText]):
    """The similarity engine for a server: concurrent callers share forward passes.

    Tokenizing runs in a worker thread (a text over the token limit, or with no tokens, raises
    :class:`~models.similarity.encoder.TextError` naming its position); then the request's cost,
    its token count, is admitted or refused by ``admission`` (:mod:`models.admission`); the forward
    pass runs in the batcher's ``workers`` threads (several at once for a packed encoder, whose
    traced forward pass releases Python's lock), and transport in a worker thread that stops
    between pairs or candidates if the caller goes. ``on_batch(size)`` sees each forward batch's
    text count, ``on_drop(size)`` the texts of abandoned requests that were never encoded.
    """

    def __init__(
        self,
        engine: SimilarityEngine,
        workers: int = 1,
        max_batch_texts: int = 256,
        batch_wait_ms: float = 2.0,
        on_batch: Callable[[int], None] | None = None,
        admission: Admission | None = None,
        on_drop: Callable[[int], None] | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(
            engine.encoder.embed,
            name="encoder-batcher",
            stage="encode",
            unit="tokens",
            workers=workers,
            max_items=max_batch_texts,
            wait_ms=batch_wait_ms,
            on_batch=on_batch,
            on_drop=on_drop,
            admission=admission,
            threads=threads,
        )
        self.engine = engine

    @property
    def encoder(self) -> TokenEncoder:
        return self.engine.encoder

    @asynccontextmanager
    async def _encoded(self, texts: Sequence[str], truncate: bool) -> AsyncIterator[list[EncodedText]]:
        """Tokenizes, admits the token count, embeds in the shared batch; the admission is held
        until the caller's scoring is done. Under load, a request that cannot fit even by a low
        estimate of its tokens is refused before it is tokenized."""
        if self.admission.in_flight:
            self.admission.check(min(_low_token_estimate(texts), self.admission.per_request))
        tokenized = await asyncio.to_thread(self.encoder.tokenize, texts, truncate)
        with self.admission.admit(sum(len(text) for text in tokenized)):
            yield await self._batcher.submit(tokenized)

    async def compare(
        self,
        pairs: Sequence[tuple[str, str]],
        method: str = DEFAULT_METHOD,
        alignment: int = 0,
        truncate: bool = False,
        skip_special_tokens: bool | None = None,
        tokens: bool = False,
        cosine: bool = False,
    ) -> ScoredPairs:
        """As :meth:`SimilarityEngine.compare`, with the positions of texts that were cut."""
        skip = self.engine.skips_special_tokens(skip_special_tokens)
        async with self._encoded(_flatten(pairs), truncate) as encoded:
            with timed("transport"):
                scores = await run_cancellable(score_pairs, encoded, method, alignment, skip, tokens, cosine)
        return ScoredPairs(scores, _cut(encoded))

    async def rank(
        self,
        source: str,
        candidates: Sequence[str],
        method: str = DEFAULT_METHOD,
        top_k: int = 10,
        truncate: bool = False,
        skip_special_tokens: bool | None = None,
    ) -> RankedTexts:
        """As :meth:`SimilarityEngine.rank` (always pruned), with the positions of texts that were cut."""
        skip = self.engine.skips_special_tokens(skip_special_tokens)
        async with self._encoded([source, *candidates], truncate) as encoded:
            with timed("transport"):
                ranking = await run_cancellable(rank_candidates, encoded[0], encoded[1:], method, top_k, True, skip)
        return RankedTexts(ranking, _cut(encoded))
