"""The ``simlink`` command line: one console script for every job."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress, TextColumn, track
from rich.table import Table

from index.manifest import IndexLoadError
from models.loader import ModelLoadError, resolve_model_source
from service.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from evaluation.kgclue_report import KgclueReport
    from evaluation.link_report import LinkReport
    from models.linking import LinkingEngine, Seq2SeqModel
    from models.linking.trainer import TrainConfig, TrainReport
    from models.linking.training_data import Example
    from models.linking.vocabulary import VocabularyReport
    from models.similarity import TokenEncoder

T = TypeVar("T")

app = typer.Typer(help="Text similarity by optimal transport, and generative entity retrieval.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Evaluate on public benchmarks.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")
console = Console()

ModelOption = Annotated[
    Optional[str], typer.Option(help="'embedded', a local Hugging Face model directory, or a hub name.")
]
DTypeOption = Annotated[Optional[str], typer.Option(help="auto, fp32 or bf16.")]
LayerOption = Annotated[Optional[int], typer.Option(help="Hidden layer to use; -1 is the last.")]
MaxTokensOption = Annotated[Optional[int], typer.Option(help="Most tokens per text.")]
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
    max_tokens: MaxTokensOption = None,
    link_model: Annotated[Optional[str], typer.Option(help="Linker model directory (from 'simlink train').")] = None,
    link_index: Annotated[Optional[Path], typer.Option(help="Linker index (from 'simlink build-index').")] = None,
) -> None:
    """Start the HTTP service (settings also come from SIMLINK_* variables)."""
    import uvicorn

    from models.loader import limit_malloc_arenas
    from service.server import configure_logging, serve_one_process, uvicorn_options

    limit_malloc_arenas()

    overrides = {
        "host": host,
        "port": port,
        "workers": workers,
        "model": model,
        "dtype": dtype,
        "layer": layer,
        "torch_threads": threads,
        "max_tokens": max_tokens,
        "link_model": link_model,
        "link_index": link_index,
    }
    settings = _settings(**overrides)
    configure_logging(settings)
    try:
        settings.load_api_keys()  # a missing or empty keys file stops start-up, naming it
    except ValueError as error:
        raise _fail(str(error)) from error
    if settings.workers == 1:
        from service.observability import Metrics
        from service.runtime import build_runtime

        try:
            runtime = build_runtime(settings, Metrics())
        except (ModelLoadError, IndexLoadError, ValueError) as error:
            raise _fail(str(error)) from error
        serve_one_process(runtime)
        return
    _check_model(settings)  # each worker loads the model itself; catch a wrong path before starting them
    for key, value in overrides.items():  # worker processes read their settings from the environment
        if value is not None:
            os.environ[f"{ENV_PREFIX}{key.upper()}"] = str(value)
    # Several processes: uvicorn's own graceful stop (no drain hook; one process per container is
    # the recommended deployment, with replicas behind a load balancer).
    uvicorn.run(
        "service.app:create_app_from_environment", factory=True, workers=settings.workers, **uvicorn_options(settings)
    )


def _progress(items: Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    """The command line's :class:`index.progress.Progress`: a transient bar."""
    return track(items, description=description, total=total, console=console, transient=True)


@contextmanager
def _loss_bar(label: str, digits: int) -> Iterator[Callable[[int, int, float], None]]:
    """A progress bar with the latest loss for a trainer; yields the trainer's ``on_step`` callback."""
    with Progress(*Progress.get_default_columns(), TextColumn("loss {task.fields[loss]}"), console=console) as bar:
        task = bar.add_task(label, total=None, loss="-")

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss=f"{loss:.{digits}f}")

        yield on_step


GoldPairsOption = Annotated[
    Path,
    typer.Option(
        help="Scored pairs: STS Benchmark .csv, SICK .txt, JSONL {a, b, score} or TSV a<TAB>b<TAB>score.",
        exists=True,
        dir_okay=False,
    ),
]


@evaluate_app.command("sts")
def evaluate_sts(
    data: GoldPairsOption,
    model: ModelOption = None,
    dtype: DTypeOption = None,
    layer: LayerOption = None,
    threads: ThreadsOption = None,
    skip_special_tokens: Annotated[bool, typer.Option(help="Leave [CLS]/[SEP] out of the transport.")] = False,
) -> None:
    """Print the Spearman correlation (x100) of every method with the gold scores."""
    from evaluation.sts import spearman_by_method
    from models.similarity.gold_pairs import GoldPairFormatError, read_gold_pairs
    from service.runtime import build_encoder

    settings = _settings(model=model, dtype=dtype, layer=layer, torch_threads=threads)
    try:
        pairs = read_gold_pairs(data)
        encoder = build_encoder(settings)
    except (GoldPairFormatError, ModelLoadError, ValueError) as error:
        raise _fail(str(error)) from error
    loaded = encoder.loaded
    scores = spearman_by_method(encoder, pairs, skip_special_tokens=skip_special_tokens, progress=_progress)
    typer.echo(f"{data}: {len(pairs)} pairs, {loaded.name} ({loaded.dtype}, {loaded.dtype_reason}), Spearman x 100")
    table = Table()
    table.add_column("method")
    table.add_column("spearman", justify="right")
    for method, value in scores.items():
        table.add_row(method, f"{value:.2f}")
    console.print(table)


@evaluate_app.command("link")
def evaluate_link(
    data: Annotated[
        Path, typer.Option(help="The LC-QuAD 1.0 folder (train-data.json, entities.txt).", exists=True, file_okay=False)
    ],
    model: Annotated[
        Optional[str], typer.Option(help="Trained linker directory; without it only the baselines run.")
    ] = None,
    index: Annotated[Optional[Path], typer.Option(help="Index built from the exported KB with that model.")] = None,
    export_kb: Annotated[
        Optional[Path], typer.Option(help="Write the closed-world KB and the train split (for build-index/train).")
    ] = None,
    dev_percent: Annotated[int, typer.Option(help="Share of questions in the dev split (by id hash).")] = 10,
    copy_weights: Annotated[
        str, typer.Option(help="Copy weights to try (comma-separated; see SIMLINK_LINK_COPY_WEIGHT).")
    ] = "0,0.5,1,2,4",
    test: Annotated[
        Optional[Path],
        typer.Option(
            help="Evaluate on this LC-QuAD-format file instead of the dev split: every question of the "
            "training file trains, and the exported KB holds the names of both files.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    num_beams: Annotated[int, typer.Option(help="Beam width of the generative linker.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Questions per generate call.")] = 25,
    threads: ThreadsOption = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="Also write the figures as JSON here (split, default_method, entity_linking, kbqa, several_max_gap)."
        ),
    ] = None,
) -> None:
    """LC-QuAD dev (or --test): entity linking (generative vs dictionary and dense baselines) and
    single-triple KBQA."""
    from evaluation.lcquad import read_lcquad
    from evaluation.link_report import evaluate_linking
    from models.loader import set_torch_threads
    from service.runtime import build_encoder

    weights = _copy_weights(copy_weights)
    set_torch_threads(threads)
    try:
        lcquad = read_lcquad(data, dev_percent, test)
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from error
    typer.echo(
        f"LC-QuAD: {len(lcquad.train)} train / {len(lcquad.dev)} {lcquad.split} questions ({lcquad.skipped} skipped), "
        f"KB of {len(lcquad.names)} names and {len(lcquad.pairs)} (resource, predicate) pairs"
    )
    if export_kb is not None:
        paths = lcquad.write_kb(export_kb)
        typer.echo("wrote " + ", ".join(str(path) for path in paths))
        if model is None:
            return
    encoder = build_encoder(_settings(torch_threads=threads))
    linker = _open_linker(model, index, threads, encoder) if model is not None else None
    report = evaluate_linking(lcquad, encoder.embed_sentences, linker, num_beams, batch_size, _progress, weights)
    _print_link_report(report)
    if out is not None:
        out.write_text(json.dumps(report.to_json(), indent=2) + "\n")


_LINK_COLUMNS = {
    "precision": "precision",
    "recall": "recall",
    "f1": "F1",
    "exact_match": "exact match",
    "valid_names": "valid names",
    "recall_seen": "recall seen",
    "recall_unseen": "recall unseen",
}


def _copy_weights(option: str) -> list[float]:
    """``--copy-weights`` as numbers; an unreadable one stops the command before any work."""
    try:
        weights = [float(weight) for weight in option.split(",")]
    except ValueError as error:
        raise _fail(f"--copy-weights: {error}") from error
    if not all(math.isfinite(weight) and weight >= 0 for weight in weights):
        raise _fail("--copy-weights: weights are finite numbers, at least 0")
    return weights


def _print_link_report(report: LinkReport) -> None:
    table = Table(title=f"LC-QuAD {report.split}, {report.questions} questions, entity linking")
    table.add_column("method")
    for column in (*_LINK_COLUMNS.values(), "ms/question"):
        table.add_column(column, justify="right")
    for method, summary in report.entity_linking.items():
        cells = [f"{summary[key]:.3f}" for key in _LINK_COLUMNS]
        table.add_row(method, *cells, f"{summary['ms_per_question']:.1f}")
    Console(width=max(console.width, 150)).print(table)
    if report.several_max_gap:
        gap = report.several_max_gap["fitted"]
        serve = f"serve it with SIMLINK_LINK_SEVERAL_MAX_GAP={gap}" if gap is not None else "leave it unset"
        typer.echo(
            "several: gap fitted on the training split for candidates auto requests: "
            f"{'none (any gap)' if gap is None else gap} "
            f"(train F1 by gap: {json.dumps(report.several_max_gap['train_f1'])}); {serve}"
        )
    if report.dense_candidates:
        train = report.dense_candidates["train"]
        typer.echo(
            f"dense candidates: k = {report.dense_candidates['k']}; on the training split, in the "
            f"{train['questions_writing_a_name']} questions that write some name, of the {train['gold_not_written']} "
            f"gold entities the question does not write, the share among its k nearest names: "
            f"{json.dumps(train['share_in_nearest_k'])}"
        )
    if report.kbqa:
        typer.echo(f"KBQA, single-triple dev questions: {json.dumps(report.kbqa)}")


def _open_linker(
    model: str, index: Optional[Path], threads: Optional[int] = None, encoder: TokenEncoder | None = None
) -> LinkingEngine:
    """The linker as a server with these settings opens it (disambiguation and dense candidates on
    the embedded encoder, or on ``encoder``, included)."""
    from service.runtime import build_linker

    if index is None:
        raise _fail("--index is needed with --model (build it with 'simlink build-index --model MODEL')")
    try:
        return build_linker(_settings(link_model=model, link_index=index, torch_threads=threads), encoder)
    except (ModelLoadError, IndexLoadError) as error:
        raise _fail(str(error)) from error


@evaluate_app.command("shared-names")
def evaluate_shared_names_command(
    model: Annotated[str, typer.Option(help="Trained linker directory.")],
    index: Annotated[Path, typer.Option(help="Index built from the KB with that model.")],
    sentences: Annotated[
        Path,
        typer.Option(
            help="Labelled sentences for entities that share a name (JSONL: text, mention, entity), kept out "
            "of training, e.g. examples/demo_kb/shared_names.jsonl.",
            exists=True,
            dir_okay=False,
        ),
    ],
    num_beams: Annotated[int, typer.Option(help="Beam width of the generative linker.")] = 5,
    threads: ThreadsOption = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """Shared names: first-result accuracy with entities of one name tied (in id order) and ordered by
    the disambiguation stage."""
    from evaluation.shared_names import evaluate_shared_names, read_sentences
    from index.kb import KbFormatError
    from models.loader import set_torch_threads

    set_torch_threads(threads)
    try:
        labelled = read_sentences(sentences)
    except (KbFormatError, OSError) as error:
        raise _fail(str(error)) from error
    report = evaluate_shared_names(_open_linker(model, index, threads), labelled, num_beams)
    typer.echo(
        f"{int(report['sentences'])} sentences; first result right: {report['ties_in_id_order']:.3f} with ties "
        f"in id order, {report.get('disambiguated', float('nan')):.3f} disambiguated by description"
    )
    if out is not None:
        out.write_text(json.dumps(report, indent=2) + "\n")


@evaluate_app.command("kgclue")
def evaluate_kgclue_command(
    data: Annotated[Path, typer.Option(help="The KgCLUE folder (train.json, dev.json).", exists=True, file_okay=False)],
    model: Annotated[
        Optional[str],
        typer.Option(
            help="A trained linker to evaluate (its index is built here); without it or --train-minutes "
            "only the lexical baseline runs."
        ),
    ] = None,
    train_minutes: Annotated[
        Optional[float], typer.Option(help="Train a linker on the KB and the train split for this long first.")
    ] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Or stop training after this many steps.", min=1)] = None,
    base_model: Annotated[
        str, typer.Option(help="Where training starts: 'embedded', a local encoder (e.g. a Chinese BERT) or seq2seq.")
    ] = "embedded",
    extend_vocab: Annotated[
        bool, typer.Option(help="Add the KB's characters the tokenizer cannot spell (see 'simlink train').")
    ] = True,
    work: Annotated[Path, typer.Option(help="Where the KB, the trained model and the index are written.")] = Path(
        "runs/kgclue"
    ),
    export_kb: Annotated[
        Optional[Path], typer.Option(help="Write the closed-world KB and the train split here (for build-index/train).")
    ] = None,
    test: Annotated[
        Optional[Path],
        typer.Option(
            help="Also evaluate on this file (KgCLUE rows); its triples join the KB.", exists=True, dir_okay=False
        ),
    ] = None,
    heldout_percent: Annotated[int, typer.Option(help="Share of train.json held out for choices (by id hash).")] = 5,
    num_beams: Annotated[int, typer.Option(help="Beam width of the generative linker.")] = 5,
    copy_weights: Annotated[
        str,
        typer.Option(
            help="Copy weights to try on the held-out split (comma-separated; see SIMLINK_LINK_COPY_WEIGHT); "
            "the best there, with or without candidates auto, is the setting scored on dev."
        ),
    ] = "0,0.5,1,2,4",
    batch_size: Annotated[int, typer.Option(help="Questions per generate call.")] = 25,
    train_batch_size: Annotated[int, typer.Option(help="Training examples per step.")] = 16,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate.")] = 1e-4,
    epochs: Annotated[float, typer.Option(help="Most passes over the examples.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Seed for the training split, order and initialisation.")] = 0,
    threads: ThreadsOption = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """KgCLUE: KgCLUE's official score, subject and predicate accuracy of the lexical baseline and of
    generative KBQA (trained here or loaded), on the held-out train split, dev and --test."""
    from evaluation.kgclue import load_kgclue
    from evaluation.kgclue_report import evaluate_kgclue
    from index.kb import KbFormatError
    from models.loader import set_torch_threads

    weights = _copy_weights(copy_weights)

    set_torch_threads(threads)
    try:
        kgclue = load_kgclue(data, heldout_percent, test)
    except (KbFormatError, OSError) as error:
        raise _fail(str(error)) from error
    typer.echo(
        f"KgCLUE: {len(kgclue.train)} train / {len(kgclue.heldout)} held-out / {len(kgclue.dev)} dev / "
        f"{len(kgclue.test)} test questions; closed-world KB of {len(kgclue.subjects)} subjects and "
        f"{len(kgclue.facts)} facts (the answer triples of these files)"
    )
    trained = train_minutes is not None or max_steps is not None
    if trained and model is not None:
        raise _fail("give --model (a trained linker) or --train-minutes/--max-steps (train one), not both")
    if export_kb is not None or trained or model is not None:
        paths = kgclue.write_kb(export_kb or work / "kb")
    if export_kb is not None:
        typer.echo("wrote " + ", ".join(str(path) for path in paths))
        if not trained and model is None:
            return
    if trained:
        from models.linking.trainer import TrainConfig

        config = TrainConfig(
            epochs=epochs,
            max_minutes=train_minutes,
            max_steps=max_steps,
            batch_size=train_batch_size,
            learning_rate=learning_rate,
            seed=seed,
            extend_vocab=extend_vocab,
        )
        model = str(_train_kgclue(paths, work / "model", base_model, config))
    linker = _kgclue_linker(model, paths, work / "index") if model is not None else None
    label = f"generative (beam {num_beams}{'' if extend_vocab or not trained else ', vocabulary not extended'})"
    report = evaluate_kgclue(kgclue, linker, num_beams, batch_size, _progress, label, weights)
    _print_kgclue_report(report)
    if report.chosen:
        typer.echo(f"chosen on the held-out split, scored on dev: {json.dumps(report.chosen)}")
    if out is not None:
        out.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")


def _train_kgclue(paths: tuple[Path, Path, Path], out: Path, base_model: str, config: TrainConfig) -> Path:
    """Trains a linker on the exported KB (entities, facts) and train split (labelled), as
    'simlink train' would with those files; returns the model directory."""
    from index.kb import KbFormatError
    from models.linking.trainer import load_for_training
    from models.linking.training_data import examples_from_files

    entities, facts, labelled = paths
    try:
        examples = examples_from_files(entities, facts, labelled, config.seed)
        seq2seq = load_for_training(base_model, out, resume=False, seed=config.seed)
    except (KbFormatError, ModelLoadError, ValueError) as error:
        raise _fail(str(error)) from error
    _train_with_progress(seq2seq, examples, out, config)
    return out


def _kgclue_linker(model: str, paths: tuple[Path, Path, Path], index: Path) -> LinkingEngine:
    """The linker ``model`` over an index of the exported KB built with its tokenizer."""
    from index.builder import KbSources, build_index
    from models.linking import LinkingEngine, load_seq2seq_model

    entities, facts, _ = paths
    try:
        seq2seq = load_seq2seq_model(model, _settings().link_dtype)
        build_index(KbSources(entities, facts), index, seq2seq.tokens, progress=_progress)
        return LinkingEngine.open(seq2seq, index)
    except (ModelLoadError, IndexLoadError, ValueError) as error:
        raise _fail(str(error)) from error


_KGCLUE_COLUMNS = {
    "score": "score",
    "object_exact_match": "object EM",
    "object_f1": "object F1",
    "subject_accuracy": "subject acc.",
    "predicate_accuracy": "predicate acc.",
}


def _print_kgclue_report(report: KgclueReport) -> None:
    names = {"heldout": "held out of train.json (for choices)", "dev": "dev.json (reported)", "test": "--test file"}
    for split, methods in report.splits.items():
        table = Table(title=f"KgCLUE {names[split]}")
        table.add_column("method")
        table.add_column("questions", justify="right")
        for column in (*_KGCLUE_COLUMNS.values(), "ms/question"):
            table.add_column(column, justify="right")
        for method, scores in methods.items():
            for subset, label in (("all", method), ("not_verbatim", "  └ subject name not in the question")):
                row = scores[subset]
                cells = [f"{row[key]:.4f}" if row["questions"] else "-" for key in _KGCLUE_COLUMNS]
                speed = f"{row['ms_per_question']:.2f}" if "ms_per_question" in row else ""
                table.add_row(label, str(row["questions"]), *cells, speed)
        Console(width=max(console.width, 150)).print(table)


EntitiesOption = Annotated[
    Path,
    typer.Option(
        help='Entities JSONL: {"id", "name", "aliases", "description"} per line.', exists=True, dir_okay=False
    ),
]
FactsOption = Annotated[
    Optional[Path],
    typer.Option(
        help="Facts: 'subject<TAB>predicate<TAB>object' or 'subject ||| predicate ||| object' lines.",
        exists=True,
        dir_okay=False,
    ),
]
LinkModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        help="Seq2seq model whose tokenizer to use: 'embedded' (bert2bert from the "
        "embedded MiniLM), a directory from 'simlink train', a local BERT-style encoder directory "
        "(bert2bert warm-started from it, e.g. a Chinese BERT), or any HF seq2seq model.",
    ),
]


@app.command("build-index")
def build_index_command(
    entities: EntitiesOption,
    out: Annotated[Path, typer.Option(help="Index directory to write (replaced only when the build succeeds).")],
    facts: FactsOption = None,
    model: LinkModelOption = "embedded",
    lenient: Annotated[bool, typer.Option(help="Skip and count bad rows instead of stopping at the first.")] = False,
    name_vectors: Annotated[
        bool,
        typer.Option(
            help="Also store every entity name's sentence vector, from the server's encoder (SIMLINK_MODEL, "
            "SIMLINK_LAYER): dense candidates for 'candidates: auto'. 4 bytes per name and dimension (1.5 GB per "
            "million names with the embedded encoder); about 7 minutes per million names on 2 cores."
        ),
    ] = False,
) -> None:
    """Build the trie index of a knowledge base for /link-entity."""
    from index.builder import KbSources, build_index
    from index.kb import KbFormatError
    from models.linking.seq2seq import load_linking_tokenizer
    from service.runtime import encoder_spec

    try:
        tokenizer = load_linking_tokenizer(model)
        embedder = encoder_spec(_settings()).load() if name_vectors else None
        result = build_index(KbSources(entities, facts), out, tokenizer, lenient, _progress, embedder)
    except (KbFormatError, ModelLoadError, ValueError) as error:
        raise _fail(str(error)) from error
    manifest = result.manifest
    counts = ", ".join(f"{key} {value}" for key, value in manifest.counts.items())
    typer.echo(f"index written to {out}: {counts}; tokenizer {manifest.tokenizer}")
    if manifest.name_vectors:
        typer.echo(f"name vectors: {manifest.name_vectors['count']} names from {manifest.name_vectors['encoder']}")
    for report in result.reports:
        if report.skipped:
            typer.echo(f"skipped {report.skipped} bad row(s) of {report.path}:", err=True)
            for problem in report.problems:
                typer.echo(f"  {problem}", err=True)


@app.command()
def train(
    entities: EntitiesOption,
    out: Annotated[Path, typer.Option(help="Model directory to write.")],
    facts: FactsOption = None,
    labelled: Annotated[
        Optional[Path],
        typer.Option(help="Labelled JSONL (linking or KBQA rows, KgCLUE form accepted).", exists=True, dir_okay=False),
    ] = None,
    model: LinkModelOption = "embedded",
    epochs: Annotated[float, typer.Option(help="Passes over the examples.")] = 3.0,
    minutes: Annotated[Optional[float], typer.Option(help="Time budget; stops (and checkpoints) when spent.")] = None,
    max_steps: Annotated[
        Optional[int],
        typer.Option(help="Stop after this many steps, keeping the learning-rate schedule of --epochs.", min=1),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 16,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate.")] = 1e-4,
    seed: Annotated[int, typer.Option(help="Seed for the split, the order and the initialisation.")] = 0,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast on CPU.")] = True,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint if there is one.")] = False,
    decoder_layers: Annotated[
        Optional[int],
        typer.Option(
            help="Keep only the first N decoder layers of a bert2bert model. A warm start (the embedded "
            "MiniLM, a local encoder) keeps 2 by default (the README's decoder-depth figures); a trained model "
            "keeps its depth.",
            min=1,
        ),
    ] = None,
    extend_vocab: Annotated[
        bool,
        typer.Option(
            help="Add the characters of the KB and labelled texts that the tokenizer cannot spell (they would be "
            "[UNK]) as tokens, growing the model to match; a no-op when there are none."
        ),
    ] = True,
    output_vocabulary: Annotated[
        str,
        typer.Option(
            help="kb: a bert2bert decoder writes only the tokens of the KB's names and predicates (a smaller output "
            "layer, faster linking; an index of names needing other tokens is refused); full: every token."
        ),
    ] = "kb",
    threads: ThreadsOption = None,
) -> None:
    """Fine-tune the seq2seq linker on a knowledge base (and labelled data, if any)."""
    from index.kb import KbFormatError
    from models.linking.trainer import OUTPUT_CHOICES, TrainConfig, load_for_training
    from models.linking.training_data import examples_from_files
    from models.loader import set_torch_threads

    set_torch_threads(threads)
    if output_vocabulary not in OUTPUT_CHOICES:
        raise _fail(f"--output-vocabulary must be one of {', '.join(OUTPUT_CHOICES)}, got {output_vocabulary!r}")
    try:
        examples = examples_from_files(entities, facts, labelled, seed)
        seq2seq = load_for_training(model, out, resume, seed, decoder_layers)
    except (KbFormatError, ModelLoadError, ValueError) as error:
        raise _fail(str(error)) from error
    config = TrainConfig(
        epochs=epochs,
        max_minutes=minutes,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        bf16=bf16,
        extend_vocab=extend_vocab,
        output_vocabulary=output_vocabulary,  # type: ignore[arg-type]  # checked above
    )
    _train_with_progress(seq2seq, examples, out, config, resume)


def _train_with_progress(
    seq2seq: Seq2SeqModel, examples: list[Example], out: Path, config: TrainConfig, resume: bool = False
) -> TrainReport:
    """Trains with a progress bar, printing what the vocabulary step did and how the run ended."""
    from models.linking.trainer import train as run_training

    typer.echo(
        f"{len(examples)} examples; training {seq2seq.name} ({seq2seq.loaded.parameter_count / 1e6:.1f}M "
        f"parameters) into {out}"
    )
    with _loss_bar("training", digits=3) as on_step:

        def on_vocabulary(vocabulary: VocabularyReport) -> None:
            typer.echo(f"vocabulary: {vocabulary}")

        def on_output(tokens: int) -> None:
            typer.echo(
                f"output vocabulary: the decoder writes {tokens:,} of {len(seq2seq.tokenizer):,} tokens, those of "
                "the names and predicates it learns (--output-vocabulary full for every token)"
            )

        try:
            report = run_training(
                seq2seq,
                examples,
                out,
                config,
                resume=resume,
                on_step=on_step,
                on_vocabulary=on_vocabulary,
                on_output=on_output,
            )
        except ValueError as error:
            raise _fail(str(error)) from error
    typer.echo(
        f"stopped by {report.stopped_by} at step {report.steps} ({report.steps_this_run} steps in "
        f"{report.seconds:.0f} s, {report.examples_per_second:.1f} examples/s); loss {report.first_loss:.3f} -> "
        f"{report.last_loss:.3f}; dev {report.dev}"
    )
    typer.echo(f"model written to {out}")
    return report


@app.command()
def tune(
    pairs: GoldPairsOption,
    out: Annotated[Path, typer.Option(help="Model directory to write (SIMLINK_MODEL serves it).")],
    method: Annotated[
        str, typer.Option(help="The similarity to tune for: anchored-wrd, wrd or cosine.")
    ] = "anchored-wrd",
    model: ModelOption = None,
    epochs: Annotated[float, typer.Option(help="Passes over the pairs.", min=0.01)] = 4.0,
    minutes: Annotated[Optional[float], typer.Option(help="Time budget; stops (and saves) when spent.")] = None,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.", min=1)] = 16,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate.")] = 2e-5,
    seed: Annotated[int, typer.Option(help="Seed for the order and dropout.")] = 0,
    dev: Annotated[
        Optional[Path],
        typer.Option(help="Scored pairs to report Spearman on before and after (never trained on).", exists=True),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint if there is one.")] = False,
    threads: ThreadsOption = None,
) -> None:
    """Fine-tune the encoder on scored pairs so that a similarity method tracks the scores."""
    from models.loader import set_torch_threads
    from models.similarity.gold_pairs import GoldPairFormatError, read_gold_pairs
    from models.similarity.tuning import TuneConfig, load_for_tuning
    from models.similarity.tuning import tune as run_tuning

    set_torch_threads(threads)
    config = TuneConfig(method, epochs, minutes, batch_size, learning_rate, seed=seed)
    try:
        examples = read_gold_pairs(pairs)
        dev_pairs = read_gold_pairs(dev) if dev else None
        start = _settings(model=model).model
        before = _dev_spearman(start, dev_pairs, method) if dev_pairs else None
        loaded = load_for_tuning(start, out, resume)
    except (GoldPairFormatError, ModelLoadError, ValueError) as error:
        raise _fail(str(error)) from error
    typer.echo(f"{len(examples)} pairs from {pairs}; tuning {loaded.name} for {method} into {out}")
    with _loss_bar("tuning", digits=4) as on_step:
        try:
            report = run_tuning(loaded, examples, out, config, resume=resume, on_step=on_step)
        except ValueError as error:
            raise _fail(str(error)) from error
    typer.echo(
        f"stopped by {report.stopped_by} at step {report.steps} ({report.steps_this_run} steps in "
        f"{report.seconds:.0f} s, {report.pairs_per_second:.1f} pairs/s); loss {report.first_loss:.4f} -> "
        f"{report.last_loss:.4f}"
    )
    if dev_pairs:
        after = _dev_spearman(str(out), dev_pairs, method)
        typer.echo(f"{dev}: Spearman x 100 of {method} {before:.2f} -> {after:.2f}")
    typer.echo(f"model written to {out}; serve it with SIMLINK_MODEL={out}")


def _dev_spearman(model: str, pairs: list, method: str) -> float:
    from evaluation.sts import spearman_by_method
    from models.loader import load_encoder_model
    from models.similarity import TokenEncoder

    return spearman_by_method(TokenEncoder(load_encoder_model(model, "fp32")), pairs, [method])[method]


EngineOption = Annotated[
    str, typer.Option(help="'local' (this process) or 'ray' (Ray Data: a local Ray, or the cluster at --address).")
]
AddressOption = Annotated[Optional[str], typer.Option(help="Ray cluster address (e.g. ray://head:10001).")]
WorkersOption = Annotated[
    Optional[int], typer.Option(help="Batches at once (threads here, actors on Ray); default from the cores.", min=1)
]
JobOutOption = Annotated[
    Path, typer.Option(help="Output: .jsonl or .parquet; a killed job rerun with the same command continues.")
]
LenientOption = Annotated[bool, typer.Option(help="Skip and count bad rows instead of stopping at the first.")]
MethodOption = Annotated[Optional[str], typer.Option(help="Similarity method (default: the server's, anchored-wrd).")]
TruncateOption = Annotated[bool, typer.Option(help="Cut texts over the token limit instead of refusing the row.")]
InputOption = Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Input file.")]


def _plan(engine: str, address: Optional[str], workers: Optional[int], threads: Optional[int], linking: bool = False):
    from jobs.bulk import linking_plan, similarity_plan

    if engine not in ("local", "ray"):
        raise _fail(f"--engine must be 'local' or 'ray', not {engine!r}")
    make = linking_plan if linking else similarity_plan
    return make(workers, threads, engine=engine, address=address)


def _similarity_job_setup(model, dtype, layer, max_tokens, method, truncate):
    """The encoder and the request options a similarity job uses: the server's settings and defaults,
    with the command line's options on top."""
    from jobs.tasks import ScoreOptions
    from models.similarity import DEFAULT_METHOD, METHOD_NAMES
    from service.runtime import encoder_spec

    settings = _settings(model=model, dtype=dtype, layer=layer, max_tokens=max_tokens)
    _check_model(settings)
    if method is not None and method not in METHOD_NAMES:
        raise _fail(f"--method must be one of {', '.join(METHOD_NAMES)}, not {method!r}")
    options = ScoreOptions(method or DEFAULT_METHOD, truncate, settings.skip_special_tokens)
    return encoder_spec(settings), options


def _run_bulk(job, out: Path) -> None:
    """Runs a bulk job, turning its expected failures into one clear line, and prints its summary."""
    from jobs.output import OutputError
    from jobs.runner import BadRowError

    try:
        summary = job()
    except (BadRowError, OutputError, ModelLoadError, IndexLoadError, ValueError, RuntimeError) as error:
        raise _fail(str(error)) from error
    resumed = f" (continued after line {summary.resumed_after})" if summary.resumed_after else ""
    typer.echo(f"wrote {summary.written} row(s) to {out}{resumed}")
    if summary.skipped:
        typer.echo(f"skipped {summary.skipped} bad row(s):", err=True)
        for problem in summary.problems:
            typer.echo(f"  {problem}", err=True)


@app.command()
def score(
    input: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help='Pairs: TSV \'a<TAB>b\', JSONL {"a", "b"}, or Parquet.')
    ],
    out: JobOutOption,
    method: MethodOption = None,
    truncate: TruncateOption = False,
    model: ModelOption = None,
    dtype: DTypeOption = None,
    layer: LayerOption = None,
    max_tokens: MaxTokensOption = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    workers: WorkersOption = None,
    threads: Annotated[Optional[int], typer.Option(help="Torch threads per worker (default: cores / workers).")] = None,
    lenient: LenientOption = False,
) -> None:
    """Score every pair of a file, as POST /similarity would: one output row per pair, in order."""
    from jobs.bulk import score as score_job

    encoder, options = _similarity_job_setup(model, dtype, layer, max_tokens, method, truncate)
    plan = _plan(engine, address, workers, threads)
    _run_bulk(lambda: score_job(input, out, encoder, options, plan, lenient, _progress), out)


@app.command()
def rank(
    queries: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help='Queries: one per line, JSONL {"text"}, or Parquet.')
    ],
    corpus: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Texts to rank: one per line, JSONL, or Parquet.")
    ],
    out: JobOutOption,
    top_k: Annotated[int, typer.Option(help="Best corpus texts per query.", min=1)] = 10,
    method: MethodOption = None,
    truncate: TruncateOption = False,
    model: ModelOption = None,
    dtype: DTypeOption = None,
    layer: LayerOption = None,
    max_tokens: MaxTokensOption = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    workers: WorkersOption = None,
    threads: Annotated[Optional[int], typer.Option(help="Torch threads per worker (default: cores / workers).")] = None,
    lenient: LenientOption = False,
) -> None:
    """Rank a corpus for every query, as POST /similarity/rank would (pruned, exact): one row per query."""
    from jobs.bulk import rank as rank_job

    encoder, options = _similarity_job_setup(model, dtype, layer, max_tokens, method, truncate)
    plan = _plan(engine, address, workers, threads)
    _run_bulk(lambda: rank_job(queries, corpus, out, encoder, options, top_k, plan, lenient, _progress), out)


@app.command()
def link(
    input: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help='Texts: one per line, or JSONL {"text", "task"?, "mention"?, "top_k"?, "num_beams"?}.',
        ),
    ],
    out: JobOutOption,
    model: Annotated[Optional[str], typer.Option(help="Linker model directory (default SIMLINK_LINK_MODEL).")] = None,
    index: Annotated[Optional[Path], typer.Option(help="Linker index (default SIMLINK_LINK_INDEX).")] = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    workers: WorkersOption = None,
    threads: Annotated[Optional[int], typer.Option(help="Torch threads per worker (default: cores / workers).")] = None,
    lenient: LenientOption = False,
) -> None:
    """Link every text of a file, as POST /link-entity would: one output row per text, in order."""
    from jobs.bulk import link as link_job
    from service.runtime import link_limits, linker_spec

    settings = _settings(link_model=model, link_index=index)
    try:
        spec = linker_spec(settings)
    except ModelLoadError as error:
        raise _fail(str(error)) from error
    if spec is None:
        raise _fail("--model and --index are needed (or SIMLINK_LINK_MODEL and SIMLINK_LINK_INDEX)")
    plan = _plan(engine, address, workers, threads, linking=True)
    limits = link_limits(settings)  # a row is refused as the server refuses such a request
    _run_bulk(lambda: link_job(input, out, spec, plan, lenient, _progress, limits), out)


def main() -> None:
    """Console-script entry point."""
    app()
