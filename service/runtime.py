"""What a running server holds: its settings, the loaded engines, their batchers and metrics."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field

from models.admission import Admission, ShuttingDownError
from models.linking import AsyncLinkingEngine, LinkerSpec, LinkingEngine, LinkLimits
from models.loader import (
    ModelLoadError,
    available_cores,
    keep_helpers_on_one_thread,
    reuse_freed_memory,
    set_torch_threads,
)
from models.similarity import AsyncSimilarityEngine, EncoderSpec, SimilarityEngine, TokenEncoder
from service.observability import Metrics
from service.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The engines of one server process, built once at start-up from the settings.

    ``ready()`` says whether to send it work (a load balancer's readiness probe); ``drain()`` is
    how it stops: refuse new work at once, let what runs finish, and fail what still waits after
    the grace period.
    """

    settings: Settings
    similarity: AsyncSimilarityEngine
    metrics: Metrics
    linker: AsyncLinkingEngine | None = None
    started_at: float = field(default_factory=time.time)
    draining: bool = False
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def _engines(self) -> list[AsyncSimilarityEngine | AsyncLinkingEngine]:
        return [engine for engine in (self.similarity, self.linker) if engine is not None]

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for engine in self._engines():
            await engine.start()

    async def stop(self) -> None:
        for engine in self._engines():
            await engine.stop()
        if self.linker is not None:
            self.linker.engine.close()

    def not_ready_because(self) -> str | None:
        """Why the server should get no work now (draining, or the encoder's budget is spent), or None."""
        if self.draining:
            return "draining before a stop"
        admission = self.similarity.admission
        if admission.full:
            return f"at capacity: {admission.in_flight} of {admission.budget} {admission.unit} in flight"
        return None

    def drain(self, grace_s: float) -> None:
        """Stops taking work now; after ``grace_s`` seconds, whatever still waits in a queue fails
        with 503. Safe to call from a signal handler in any thread."""
        if self._loop is None or self.draining:
            return
        self._loop.call_soon_threadsafe(self._begin_drain, grace_s)

    def _begin_drain(self, grace_s: float) -> None:
        self.draining = True
        for engine in self._engines():
            engine.admission.close()
        logger.info("draining: no new work; queued work fails in %.1f s", grace_s)
        assert self._loop is not None
        self._loop.call_later(grace_s, self._fail_queued)

    def _fail_queued(self) -> None:
        failed = sum(engine.fail_queued(ShuttingDownError()) for engine in self._engines())
        if failed:
            logger.warning("drain grace period over: %d queued request(s) answered 503", failed)


def threads_per_worker(workers: int) -> int:
    """The CPU cores this process may use, shared out among ``workers`` concurrent forward passes
    (server processes times encoder workers, when several processes share the cores)."""
    return max(1, available_cores() // workers)


def encoder_spec(settings: Settings) -> EncoderSpec:
    """The encoder the settings describe (model, dtype, layer, limits), as plain values."""
    return EncoderSpec(
        settings.model,
        settings.dtype,
        settings.layer,
        settings.max_tokens,
        settings.encoder_batch_tokens,
        settings.pack_texts,
    )


def build_encoder(settings: Settings) -> TokenEncoder:
    """The token encoder the settings describe, with their torch thread count.

    Raises :class:`models.loader.ModelLoadError` naming the path when the model is missing
    or cannot be loaded, and ``ValueError`` for a layer or token limit the model lacks.
    """
    set_torch_threads(settings.torch_threads)
    return encoder_spec(settings).load()


def linker_spec(settings: Settings) -> LinkerSpec | None:
    """The linker the settings describe, or None when neither ``link_model`` nor ``link_index`` is set.

    Raises :class:`ModelLoadError` when only one of the two is set.
    """
    if settings.link_model is None and settings.link_index is None:
        return None
    if settings.link_model is None or settings.link_index is None:
        missing = "SIMLINK_LINK_MODEL" if settings.link_model is None else "SIMLINK_LINK_INDEX"
        raise ModelLoadError(f"entity linking needs both a model and an index; {missing} is not set")
    return LinkerSpec(
        settings.link_model,
        settings.link_index,
        dtype=settings.link_dtype,
        max_input_tokens=settings.max_link_input_tokens,
        encoder=encoder_spec(settings) if settings.link_disambiguate or settings.link_dense_candidates else None,
        disambiguate=settings.link_disambiguate,
        dense_candidates=settings.link_dense_candidates,
        copy_weight=settings.link_copy_weight,
        several_max_gap=settings.link_several_max_gap,
    )


def link_limits(settings: Settings) -> LinkLimits:
    """The largest link query these settings accept, over HTTP and in bulk jobs alike."""
    return LinkLimits(settings.max_link_chars, settings.max_beams, settings.max_link_candidates)


def build_linker(settings: Settings, encoder: TokenEncoder | None = None) -> LinkingEngine | None:
    """The linking engine of :func:`linker_spec`, or None; ``encoder`` (the server's, built from the
    same settings) serves its disambiguation and dense candidates instead of a second copy.

    Raises :class:`ModelLoadError` or :class:`index.manifest.IndexLoadError` naming the path when
    either is missing, corrupt, or the index was built with another tokenizer than the model's.
    """
    spec = linker_spec(settings)
    return spec.open(encoder) if spec is not None else None


def encoder_workers(settings: Settings, encoder: TokenEncoder) -> int:
    """How many encoder batches run at once: ``encoder_workers`` when texts are packed (a traced
    forward pass that releases Python's lock), else one. The padded fallback runs op by op and
    takes the lock back after each op, so a second worker would mostly wait; its one forward pass
    gets the cores instead."""
    if encoder.packing:
        return settings.encoder_workers
    if settings.encoder_workers > 1:
        logger.warning(
            "encoder %s is not packed: running one encoder worker, not %d", encoder.name, settings.encoder_workers
        )
    return 1


def build_runtime(settings: Settings, metrics: Metrics) -> Runtime:
    """Builds the encoder (see :func:`build_encoder`) and the linker (see :func:`build_linker`),
    warms the encoder up and wraps both in their async façades. Unless ``torch_threads`` is set,
    the cores are shared out among the server processes and their encoder workers; the linker, which
    runs one batch at a time, gets every core of its process (``link_threads`` overrides it).

    Start-up work (loading, the packing check, the warm-up) runs on this thread with one torch
    thread, and requests run in the façades' batch workers, each with its own count. A parallel op
    here would leave an idle OpenMP pool behind; libgomp then manages more threads than there are
    cores and shortens every pool's spin-wait, so the linker's OpenMP threads fall asleep between
    the small ops of a decoder step and each op waits for them to wake (measured in the README's
    latency section)."""
    keep_helpers_on_one_thread()
    reuse_freed_memory()
    set_torch_threads(1)
    encoder = encoder_spec(settings).load()
    workers = encoder_workers(settings, encoder)
    encoder_threads = settings.torch_threads or threads_per_worker(settings.workers * workers)
    encoder.warm_up()
    logger.info("encoder ready: %s", encoder.loaded.describe())
    similarity = AsyncSimilarityEngine(
        SimilarityEngine(encoder, settings.skip_special_tokens),
        workers=workers,
        max_batch_texts=settings.batch_max_texts,
        batch_wait_ms=settings.batch_wait_ms,
        on_batch=metrics.batch_size.labels("encoder").observe,
        admission=_watched(
            Admission(settings.queue_budget_tokens, settings.max_request_tokens, "tokens"), metrics, "encoder"
        ),
        on_drop=metrics.dropped.labels("encoder").inc,
        threads=encoder_threads,
    )
    linker = build_linker(settings, encoder)
    async_linker = None
    if linker is not None:
        logger.info("linker ready: %s over index %s", linker.model.name, linker.index.path)
        async_linker = AsyncLinkingEngine(
            linker,
            max_batch_queries=settings.link_batch_max,
            batch_wait_ms=settings.link_batch_wait_ms,
            on_batch=metrics.batch_size.labels("linker").observe,
            admission=_watched(
                Admission(settings.link_queue_budget_beams, settings.max_beams, "beams"), metrics, "linker"
            ),
            on_drop=metrics.dropped.labels("linker").inc,
            threads=settings.link_threads or threads_per_worker(settings.workers),
            refill_share=settings.link_batch_refill_share,
        )
    freeze_startup_objects()
    return Runtime(settings=settings, similarity=similarity, metrics=metrics, linker=async_linker)


def freeze_startup_objects() -> None:
    """Moves everything loaded so far (models, libraries: about half a million objects) out of the
    garbage collector's reach. They live as long as the process, yet every full collection would
    walk them all and stop every request meanwhile, for a few hundred milliseconds here; frozen, a
    collection only walks what requests create. Process-wide, so done by the server, not the engines."""
    gc.collect()
    gc.freeze()


def _watched(admission: Admission, metrics: Metrics, engine: str) -> Admission:
    """``admission``, with its cost in flight shown in ``/metrics``."""
    metrics.in_flight.labels(engine).set_function(lambda: admission.in_flight)
    return admission
