"""What a running server holds: its settings, the loaded engines, their batchers and metrics."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from models.encoder import EncodedText, TokenEncoder, TokenizedText
from models.loader import load_encoder_model, set_torch_threads
from service.batcher import MicroBatcher
from service.metrics import Metrics
from service.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The engines of one server process, built once at start-up from the settings."""

    settings: Settings
    encoder: TokenEncoder
    encoder_batcher: MicroBatcher[TokenizedText, EncodedText]
    metrics: Metrics
    started_at: float = field(default_factory=time.time)

    async def start(self) -> None:
        await self.encoder_batcher.start()

    async def stop(self) -> None:
        await self.encoder_batcher.stop()


def build_encoder(settings: Settings) -> TokenEncoder:
    """The token encoder the settings describe (model, dtype, threads, layer, limits).

    Raises :class:`models.loader.ModelLoadError` naming the path when the model is missing
    or cannot be loaded, and ``ValueError`` for a layer or token limit the model lacks.
    """
    set_torch_threads(settings.torch_threads)
    loaded = load_encoder_model(settings.model, settings.dtype)
    return TokenEncoder(loaded, settings.layer, settings.max_tokens, settings.encoder_batch_size)


def build_runtime(settings: Settings, metrics: Metrics) -> Runtime:
    """Builds the encoder (see :func:`build_encoder`), warms it up and wires its batcher."""
    encoder = build_encoder(settings)
    encoder.warm_up()
    logger.info("encoder ready: %s", encoder.loaded.describe())
    batch_sizes = metrics.batch_size.labels("encoder")
    batcher: MicroBatcher[TokenizedText, EncodedText] = MicroBatcher(
        encoder.embed,
        max_items=settings.batch_max_texts,
        max_wait_ms=settings.batch_wait_ms,
        on_batch=batch_sizes.observe,
        name="encoder-batcher",
    )
    return Runtime(settings=settings, encoder=encoder, encoder_batcher=batcher, metrics=metrics)
