"""Fine-tunes the seq2seq linker and saves a model directory the service and the index builder load.

The output directory holds the model and tokenizer (Hugging Face format), ``training_config.json``
and ``dev_metrics.json`` (dev loss and constrained exact match). A ``checkpoint/`` inside it
is written every few hundred steps and when the time budget runs out, so ``resume`` continues
where a run stopped (same examples, same order, same optimizer state).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from index.trie import TokenTrie
from models.linking.generation import constrained_beam_search
from models.linking.seq2seq import (
    Seq2SeqModel,
    is_bert2bert,
    is_warm_start,
    load_seq2seq_model,
    restrict_output_vocabulary,
    shorten_decoder,
)
from models.linking.training_data import Example, target_ids
from models.linking.vocabulary import VocabularyReport, example_texts, extend_vocabulary, vocabulary_coverage
from models.training import Schedule, StepCallback, latest_checkpoint, readable_as_umask, run_training_steps

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """How to train; saved beside the model as ``training_config.json``."""

    epochs: float = 3.0
    max_minutes: float | None = None
    max_steps: int | None = None  # stops early with the schedule of ``epochs`` (compare models at equal steps)
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup_steps: int = 50
    seed: int = 0
    dev_fraction: float = 0.05
    max_dev_examples: int = 200
    bf16: bool = True
    checkpoint_every: int = 200
    max_input_tokens: int = 128
    extend_vocab: bool = True  # add the characters of the examples the tokenizer cannot spell (see vocabulary.py)
    output_vocabulary: OutputChoice = "kb"  # "kb": a bert2bert decoder writes only its examples' name tokens


@dataclass
class TrainReport:
    """What a run did: steps (in total, resumed ones included; and in this run), losses and dev metrics."""

    steps: int
    steps_this_run: int
    examples_per_second: float
    seconds: float
    first_loss: float
    last_loss: float
    dev: dict[str, float]
    stopped_by: str
    vocabulary: dict[str, Any] = field(default_factory=dict)
    output_tokens: int | None = None  # the tokens the decoder writes, when restricted


VocabularyCallback = Callable[[VocabularyReport], None]
OutputChoice = Literal["kb", "full"]
OUTPUT_CHOICES: tuple[OutputChoice, ...] = ("kb", "full")


def split_dev(
    examples: Sequence[Example], fraction: float, limit: int, seed: int
) -> tuple[list[Example], list[Example]]:
    """A deterministic (seeded) train/dev split."""
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    size = min(limit, int(len(shuffled) * fraction))
    return shuffled[size:], shuffled[:size]


class _Batches:
    """Tokenized training batches; targets are the exact trie sequences."""

    def __init__(self, model: Seq2SeqModel, max_input_tokens: int) -> None:
        self.model = model
        self.max_input_tokens = max_input_tokens
        self._encoded: dict[str, list[int]] = {}

    def _encode_targets(self, examples: Sequence[Example]) -> None:
        missing = list({text for e in examples for text in e.target_texts() if text not in self._encoded})
        if missing:
            self._encoded.update(zip(missing, self.model.tokens.encode_names(missing), strict=True))

    def targets(self, examples: Sequence[Example]) -> list[list[int]]:
        self._encode_targets(examples)
        special = self.model.tokens.special_tokens
        forced_bos = self.model.model.generation_config.forced_bos_token_id
        prefix = [forced_bos] if forced_bos is not None else []
        return [prefix + target_ids(example, self._encoded, special) for example in examples]

    def __call__(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        inputs = self.model.tokenizer(
            [e.source for e in examples],
            padding=True,
            truncation=True,
            max_length=self.max_input_tokens,
            return_tensors="pt",
        )
        targets = self.targets(examples)
        labels = torch.full((len(targets), max(map(len, targets))), -100, dtype=torch.long)
        for row, target in enumerate(targets):
            labels[row, : len(target)] = torch.from_numpy(self.model.decoder_ids(target))
        return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "labels": labels}


def _learning_rate(step: int, config: TrainConfig) -> float:
    return config.learning_rate * min(1.0, (step + 1) / max(1, config.warmup_steps))


def training_fingerprint(train_set: Sequence[Example], config: TrainConfig) -> str:
    """What a resumed run must share with the run it continues: the examples, their order and batching."""
    digest = hashlib.sha256(f"{config.seed}|{config.batch_size}|{config.dev_fraction}".encode())
    for example in train_set:
        digest.update(f"{example.source}\t{example.task}\t{example.name}\t{example.predicate}\n".encode())
    return digest.hexdigest()


DEFAULT_DECODER_LAYERS = 2
"""The decoder depth a warm start keeps unless asked (see :func:`load_for_training`)."""


def load_for_training(
    model: str | None, out_dir: Path, resume: bool, seed: int = 0, decoder_layers: int | None = None
) -> Seq2SeqModel:
    """The model a run starts from: ``model`` (seeded first, since a warm start draws new
    cross-attention weights), cut to its first ``decoder_layers`` decoder layers, or with
    ``resume`` the latest checkpoint under ``out_dir`` (``ValueError`` if there is none; a
    checkpoint keeps the depth it was saved with).

    A bert2bert warm start (the embedded MiniLM, or a local encoder) keeps
    :data:`DEFAULT_DECODER_LAYERS` decoder layers unless ``decoder_layers`` says otherwise: with
    the decoder restricted to the KB's tokens, 2 layers matched 6 on LC-QuAD after 30 minutes and
    beat them on the 5-minute quick start, and generate faster (``bench/results/lcquad.md``). A
    model trained before keeps its depth unless asked.
    """
    torch.manual_seed(seed)
    if not resume:
        loaded = load_seq2seq_model(model)
        if decoder_layers is None and is_warm_start(model) and is_bert2bert(loaded.model):
            decoder_layers = min(DEFAULT_DECODER_LAYERS, len(loaded.model.decoder.bert.encoder.layer))
        if decoder_layers is not None:
            shorten_decoder(loaded, decoder_layers)
        return loaded
    checkpoint = latest_checkpoint(out_dir)
    if checkpoint is None:
        raise ValueError(f"nothing to resume: no checkpoint in {out_dir}")
    return load_seq2seq_model(str(checkpoint))


def _dev_metrics(
    model: Seq2SeqModel, batches: _Batches, dev: Sequence[Example], every_example: Sequence[Example], batch_size: int
) -> dict[str, float]:
    """Dev loss and exact match of constrained beam search over a trie of every target (train and dev),
    i.e. among all the names the examples know, not just the dev ones."""
    if not dev:
        return {}
    model.model.eval()
    losses = []
    exact = 0
    targets = batches.targets(dev)
    prefix = model.decoder_prefix_length - 1  # a forced BOS, if the model has one
    trie = TokenTrie.build(target[prefix:] for target in batches.targets(every_example))
    with torch.inference_mode():
        for start in range(0, len(dev), batch_size):
            chunk = dev[start : start + batch_size]
            losses.append(float(model.model(**batches(chunk)).loss) * len(chunk))
            found = constrained_beam_search(
                model,
                [e.source for e in chunk],
                [trie] * len(chunk),
                num_beams=3,
                max_new_tokens=max(map(len, targets)) + 1,
                max_input_tokens=batches.max_input_tokens,
            )
            for hypotheses, target in zip(found, targets[start : start + batch_size], strict=True):
                exact += bool(hypotheses) and list(hypotheses[0].tokens) == target[prefix:]
    return {"dev_examples": len(dev), "dev_loss": sum(losses) / len(dev), "dev_exact_match": exact / len(dev)}


def _prepare_vocabulary(
    model: Seq2SeqModel, examples: Sequence[Example], config: TrainConfig
) -> VocabularyReport | None:
    """Extends the vocabulary to the examples' characters (``config.extend_vocab``), or only measures
    how many of them are ``[UNK]``; None for a tokenizer that cannot tell."""
    texts = example_texts(examples)
    if config.extend_vocab:
        return extend_vocabulary(model, texts, config.seed)
    return vocabulary_coverage(model.tokenizer, texts)


def restrict_to_examples(model: Seq2SeqModel, batches: _Batches, examples: Sequence[Example]) -> int | None:
    """Lets a bert2bert decoder write only the tokens of the examples' targets (every KB name and
    predicate has examples): its output layer, which every generation step reads, shrinks to those
    rows (:func:`models.linking.seq2seq.restrict_output_vocabulary`). Returns how many tokens it
    writes, or None for another architecture, which keeps its whole vocabulary."""
    if not is_bert2bert(model.model):
        logger.info("output vocabulary: %s is not a bert2bert model; it keeps every token", model.name)
        return None
    tokens = {token for target in batches.targets(examples) for token in target}
    if model.output is not None and tokens <= set(model.output.token_ids.tolist()):
        return len(model.output)  # a resumed run: already restricted to these
    return len(restrict_output_vocabulary(model, tokens))


def train(
    model: Seq2SeqModel,
    examples: Sequence[Example],
    out_dir: Path,
    config: TrainConfig,
    resume: bool = False,
    on_step: StepCallback | None = None,
    on_vocabulary: VocabularyCallback | None = None,
    on_output: Callable[[int], None] | None = None,
) -> TrainReport:
    """Fine-tunes ``model`` on ``examples`` and saves it to ``out_dir``.

    First, with ``config.extend_vocab``, the characters of the examples that the tokenizer cannot
    spell become tokens of their own (:func:`models.linking.vocabulary.extend_vocabulary`; the saved
    tokenizer keeps them); ``on_vocabulary`` is told what was added, and the report records it.
    Then, with ``config.output_vocabulary`` "kb", a bert2bert decoder is restricted to the tokens
    of the examples' names and predicates (:func:`restrict_to_examples`; ``on_output`` is told how
    many); an index of names that need other tokens is then refused when it is built.
    Stops after ``config.epochs`` epochs or ``config.max_minutes``, whichever comes first.
    With ``resume`` the optimizer state and step count are read from the checkpoint under ``out_dir``
    (load the model itself from :func:`latest_checkpoint` too); the examples and options must be
    the same as the run it continues (``ValueError`` otherwise).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    # EncoderDecoderModel warns on every labelled forward that old checkpoints computed the loss differently.
    warnings.filterwarnings("ignore", message="Version v4.12.0 introduces a better way", category=FutureWarning)
    train_set, dev_set = split_dev(examples, config.dev_fraction, config.max_dev_examples, config.seed)
    if not train_set:
        raise ValueError("no training examples")
    vocabulary = _prepare_vocabulary(model, examples, config)
    if on_vocabulary is not None and vocabulary is not None:
        on_vocabulary(vocabulary)
    batches = _Batches(model, config.max_input_tokens)
    output_tokens = restrict_to_examples(model, batches, examples) if config.output_vocabulary == "kb" else None
    if on_output is not None and output_tokens is not None:
        on_output(output_tokens)
    optimizer = torch.optim.AdamW(model.model.parameters(), lr=config.learning_rate)
    schedule = Schedule(
        len(train_set),
        config.batch_size,
        config.epochs,
        config.seed,
        config.bf16,
        config.max_minutes,
        config.max_steps,
        config.checkpoint_every,
    )
    model.model.train()
    run = run_training_steps(
        model.model,
        model.tokenizer,
        optimizer,
        schedule,
        lambda chosen: model.model(**batches([train_set[i] for i in chosen])).loss,
        lambda step, _total: _learning_rate(step, config),
        out_dir,
        training_fingerprint(train_set, config),
        resume,
        on_step,
    )
    dev = _dev_metrics(model, batches, dev_set, examples, config.batch_size)
    model.model.save_pretrained(out_dir)
    model.tokenizer.save_pretrained(out_dir)
    readable_as_umask(out_dir)
    steps_this_run = run.steps - run.first_step
    speed = steps_this_run * config.batch_size / max(run.seconds, 1e-9)
    report = TrainReport(
        run.steps, steps_this_run, speed, run.seconds, run.first_loss, run.last_loss, dev, run.stopped_by
    )
    report.vocabulary = vocabulary.to_json() if vocabulary is not None else {}
    report.output_tokens = output_tokens
    (out_dir / "training_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    (out_dir / "dev_metrics.json").write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n")
    return report
