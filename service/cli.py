"""The ``simlink`` command line: one console script for every job."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from models.loader import ModelLoadError, resolve_model_source
from service.settings import ENV_PREFIX, Settings

app = typer.Typer(help="Text similarity by optimal transport, and generative entity retrieval.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Evaluate on public benchmarks.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")
console = Console()

ModelOption = Annotated[
    Optional[str], typer.Option(help="'embedded', a local Hugging Face model directory, or a hub name.")
]
DTypeOption = Annotated[Optional[str], typer.Option(help="fp32 or bf16.")]
LayerOption = Annotated[Optional[int], typer.Option(help="Hidden layer to use; -1 is the last.")]
ThreadsOption = Annotated[Optional[int], typer.Option("--threads", help="Torch CPU threads.")]


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the options given on the command line on top."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _check_model(settings: Settings) -> None:
    try:
        resolve_model_source(settings.model)
    except ModelLoadError as error:
        raise _fail(str(error)) from error


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Server processes.")] = None,
    model: ModelOption = None,
    dtype: DTypeOption = None,
    layer: LayerOption = None,
    threads: ThreadsOption = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Most tokens per text.")] = None,
) -> None:
    """Start the HTTP service (settings also come from SIMLINK_* variables)."""
    import uvicorn

    overrides = {
        "host": host,
        "port": port,
        "workers": workers,
        "model": model,
        "dtype": dtype,
        "layer": layer,
        "torch_threads": threads,
        "max_tokens": max_tokens,
    }
    settings = _settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.workers == 1:
        from service.app import create_app
        from service.metrics import Metrics
        from service.runtime import build_runtime

        try:
            runtime = build_runtime(settings, Metrics())
        except (ModelLoadError, ValueError) as error:
            raise _fail(str(error)) from error
        uvicorn.run(create_app(runtime=runtime), host=settings.host, port=settings.port, log_level=settings.log_level)
        return
    _check_model(settings)  # each worker loads the model itself; catch a wrong path before starting them
    for key, value in overrides.items():  # worker processes read their settings from the environment
        if value is not None:
            os.environ[f"{ENV_PREFIX}{key.upper()}"] = str(value)
    uvicorn.run(
        "service.app:create_app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
    )


def _progress(items: Iterable[Any], description: str) -> Iterable[Any]:
    return track(list(items), description=description, console=console, transient=True)


@evaluate_app.command("sts")
def evaluate_sts(
    data: Annotated[Path, typer.Option(help="An STS Benchmark .csv or SICK .txt file.", exists=True, dir_okay=False)],
    model: ModelOption = None,
    dtype: DTypeOption = None,
    layer: LayerOption = None,
    threads: ThreadsOption = None,
    skip_special_tokens: Annotated[bool, typer.Option(help="Leave [CLS]/[SEP] out of the transport.")] = False,
) -> None:
    """Print the Spearman correlation (x100) of every method with the gold scores."""
    from models.sts_benchmark import StsFormatError, read_sts_pairs, spearman_by_method
    from service.runtime import build_encoder

    settings = _settings(model=model, dtype=dtype, layer=layer, torch_threads=threads)
    try:
        pairs = read_sts_pairs(data)
        encoder = build_encoder(settings)
    except (StsFormatError, ModelLoadError, ValueError) as error:
        raise _fail(str(error)) from error
    loaded = encoder.loaded
    scores = spearman_by_method(encoder, pairs, skip_special_tokens=skip_special_tokens, progress=_progress)
    typer.echo(f"{data}: {len(pairs)} pairs, {loaded.name} ({settings.dtype}), Spearman x 100")
    table = Table()
    table.add_column("method")
    table.add_column("spearman", justify="right")
    for method, value in scores.items():
        table.add_row(method, f"{value:.2f}")
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    app()
