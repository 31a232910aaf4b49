"""The trainer: a few steps lower the loss, and the saved directory loads as a linker; resume continues."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from index.builder import KbSources, build_index
from index.kb import read_entities, read_facts
from models.linking.engine import LinkingEngine, LinkQuery
from models.linking.seq2seq import load_seq2seq_model
from models.linking.trainer import TrainConfig, TrainReport, _Batches, train
from models.linking.training_data import entity_examples, fact_examples, read_labelled
from models.training import CHECKPOINT, latest_checkpoint
from tests.conftest import write_tiny_kb


def _loss(model, examples) -> float:
    model.model.eval()
    with torch.inference_mode():
        return float(model.model(**_Batches(model, 64)(examples)).loss)


def test_few_steps_lower_the_loss_and_write_a_loadable_model(tmp_path: Path) -> None:
    entities_path, facts_path = write_tiny_kb(tmp_path / "kb")
    entities = list(read_entities(entities_path))
    examples = [*entity_examples(entities), *fact_examples(read_facts(facts_path), entities)]
    model = load_seq2seq_model()
    before = _loss(model, examples)
    config = TrainConfig(
        epochs=2, batch_size=8, learning_rate=3e-4, warmup_steps=2, dev_fraction=0.1, checkpoint_every=3
    )
    report = train(model, examples, tmp_path / "model", config)
    assert _loss(model, examples) < before / 2
    train_size = len(examples) - int(len(examples) * 0.1)
    assert report.steps == 2 * -(-train_size // 8)
    saved = json.loads((tmp_path / "model" / "dev_metrics.json").read_text())
    assert saved["steps"] == report.steps and 0.0 <= saved["dev"]["dev_exact_match"] <= 1.0
    assert json.loads((tmp_path / "model" / "training_config.json").read_text())["batch_size"] == 8
    reloaded = load_seq2seq_model(str(tmp_path / "model"))
    build_index(KbSources(entities_path, facts_path), tmp_path / "index", reloaded.tokens)
    engine = LinkingEngine.open(reloaded, tmp_path / "index")
    (matches,) = engine.link([LinkQuery("France", "entity", (0, 6), top_k=1, num_beams=2)])
    assert matches and matches[0].id in {e.id for e in entities}
    assert (tmp_path / "model" / CHECKPOINT / "trainer_state.pt").is_file()
    umask = os.umask(0)
    os.umask(umask)
    weights = tmp_path / "model" / "model.safetensors"
    assert stat.S_IMODE(weights.stat().st_mode) == 0o666 & ~umask  # readable by a server running as another user


def _resume(out_dir: Path, examples: list, config: TrainConfig, **options) -> TrainReport:
    """Continues training in ``out_dir`` from its latest checkpoint, as ``simlink train --resume`` does."""
    model = load_seq2seq_model(str(latest_checkpoint(out_dir)))
    return train(model, examples, out_dir, config, resume=True, **options)


def test_resume_continues_from_the_checkpoint_step(tmp_path: Path) -> None:
    entities_path, _ = write_tiny_kb(tmp_path / "kb")
    examples = list(entity_examples(read_entities(entities_path)))
    config = TrainConfig(epochs=1, batch_size=8, dev_fraction=0.0, checkpoint_every=2)
    first = train(load_seq2seq_model(), examples, tmp_path / "model", config)
    config.epochs = 2
    steps_run: list[int] = []
    resumed = _resume(tmp_path / "model", examples, config, on_step=lambda step, total, loss: steps_run.append(step))
    assert steps_run == list(range(first.steps + 1, 2 * first.steps + 1))  # every run ends with a checkpoint
    assert resumed.steps == 2 * first.steps and resumed.steps_this_run == first.steps


def test_resume_refuses_other_examples_and_a_missing_checkpoint(tmp_path: Path) -> None:
    entities_path, _ = write_tiny_kb(tmp_path / "kb")
    examples = list(entity_examples(read_entities(entities_path)))
    config = TrainConfig(epochs=0.2, batch_size=8, dev_fraction=0.0)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(load_seq2seq_model(), examples, tmp_path / "model", config, resume=True)
    train(load_seq2seq_model(), examples, tmp_path / "model", config)
    with pytest.raises(ValueError, match="other examples"):
        train(load_seq2seq_model(), examples[:-1], tmp_path / "model", config, resume=True)


def test_a_stop_mid_checkpoint_swap_still_resumes(tmp_path: Path) -> None:
    entities_path, _ = write_tiny_kb(tmp_path / "kb")
    examples = list(entity_examples(read_entities(entities_path)))
    config = TrainConfig(epochs=0.5, batch_size=8, dev_fraction=0.0)
    first = train(load_seq2seq_model(), examples, tmp_path / "model", config)
    (tmp_path / "model" / CHECKPOINT).rename(tmp_path / "model" / f"{CHECKPOINT}.old")  # stopped between renames
    assert latest_checkpoint(tmp_path / "model") == tmp_path / "model" / f"{CHECKPOINT}.old"
    config.epochs = 1.0
    resumed = _resume(tmp_path / "model", examples, config)
    assert resumed.steps_this_run == resumed.steps - first.steps > 0
    assert latest_checkpoint(tmp_path / "model") == tmp_path / "model" / CHECKPOINT


def test_labelled_rows_in_every_accepted_form(tmp_path: Path) -> None:
    entities_path, _ = write_tiny_kb(tmp_path / "kb")
    rows = [
        {"text": "I fed the python.", "mention": {"start": 10, "end": 16}, "entity": "animal:python"},
        {"text": "Code in [START_ENT] Python [END_ENT].", "entity": "language:python"},
        {"question": "Which currency does Japan use?", "subject": "Japan", "predicate": "currency"},
        {"question": "Japan's capital?", "answer": "Japan ||| capital ||| Tokyo"},
    ]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    examples = read_labelled(path, list(read_entities(entities_path)))
    assert [e.source for e in examples[:2]] == [
        "[ENTITY] I fed the [START_ENT] python [END_ENT].",
        "[ENTITY] Code in [START_ENT] Python [END_ENT].",
    ]
    assert [(e.task, e.name, e.predicate) for e in examples] == [
        ("entity", "Python", ""),
        ("entity", "Python", ""),
        ("kbqa", "Japan", "currency"),
        ("kbqa", "Japan", "capital"),
    ]


def test_a_shorter_decoder_keeps_its_first_layers_and_saves_its_depth(tmp_path: Path) -> None:
    from models.linking.trainer import load_for_training
    from tests.conftest import save_tiny_seq2seq

    source = save_tiny_seq2seq("bert2bert", tmp_path / "deep")  # two decoder layers
    full = load_seq2seq_model(str(source))
    model = load_for_training(str(source), tmp_path / "out", resume=False, decoder_layers=1)
    (kept,) = model.model.decoder.bert.encoder.layer
    assert torch.equal(kept.output.dense.weight, full.model.decoder.bert.encoder.layer[0].output.dense.weight)
    model.model.save_pretrained(tmp_path / "shallow")
    model.tokenizer.save_pretrained(tmp_path / "shallow")
    reloaded = load_seq2seq_model(str(tmp_path / "shallow"))
    assert len(reloaded.model.decoder.bert.encoder.layer) == 1
    assert len(reloaded.model.encoder.encoder.layer) == 2  # the encoder keeps its depth
    for impossible in (0, 3):
        with pytest.raises(ValueError, match="between 1 and 2"):
            load_for_training(str(source), tmp_path / "out", resume=False, decoder_layers=impossible)
    with pytest.raises(ValueError, match="bert2bert"):
        load_for_training(str(save_tiny_seq2seq("t5", tmp_path / "t5")), tmp_path / "out", False, decoder_layers=1)


def test_a_warm_start_keeps_two_decoder_layers_and_a_trained_model_its_own(tmp_path: Path) -> None:
    from models.linking.trainer import DEFAULT_DECODER_LAYERS, load_for_training
    from tests.conftest import save_tiny_seq2seq

    warm = load_for_training(None, tmp_path / "out", resume=False)
    assert len(warm.model.decoder.bert.encoder.layer) == DEFAULT_DECODER_LAYERS == 2
    assert len(warm.model.encoder.encoder.layer) == 6
    source = save_tiny_seq2seq("bert2bert", tmp_path / "trained")  # a seq2seq directory: loaded as it is
    shallow = load_for_training(str(source), tmp_path / "out", resume=False)
    deep = load_for_training(None, tmp_path / "out", resume=False, decoder_layers=6)
    assert len(shallow.model.decoder.bert.encoder.layer) == 2 and len(deep.model.decoder.bert.encoder.layer) == 6
    kept = load_for_training(str(save_tiny_seq2seq("t5", tmp_path / "t5")), tmp_path / "out", resume=False)
    assert kept.model.config.num_decoder_layers == 1, "other architectures keep their depth"


def test_a_chinese_kb_gives_chinese_questions_and_description_examples(tmp_path: Path) -> None:
    from tests.conftest import write_chinese_kb

    entities_path, facts_path = write_chinese_kb(tmp_path / "kb")
    entities = list(read_entities(entities_path))
    sources = [e.source for e in entity_examples(entities)]
    assert "[ENTITY] [START_ENT] 北京 [END_ENT]是中国的首都。" in sources  # no spaces around a Chinese name needed
    questions = list(fact_examples(read_facts(facts_path), entities))
    assert questions and all("的" in q.source or "是" in q.source for q in questions)
    assert not any("what" in q.source for q in questions)
    assert {q.name for q in questions if q.predicate == "职业"} == {"刘晓华（广东工业大学教授）"}


@pytest.mark.parametrize("extend", [True, False], ids=["extended", "not-extended"])
def test_training_a_chinese_kb_extends_the_vocabulary_and_records_it(
    chinese_bert: Path, tmp_path: Path, extend: bool
) -> None:
    from models.linking.trainer import load_for_training
    from models.linking.training_data import examples_from_files
    from tests.conftest import write_chinese_kb

    entities_path, facts_path = write_chinese_kb(tmp_path / "kb")
    examples = examples_from_files(entities_path, facts_path, None)
    model = load_for_training(str(chinese_bert), tmp_path / "model", resume=False)
    size = len(model.tokenizer)
    told = []
    config = TrainConfig(epochs=1, batch_size=8, dev_fraction=0.0, extend_vocab=extend)
    report = train(model, examples, tmp_path / "model", config, on_vocabulary=told.append)
    assert [vocabulary.to_json() for vocabulary in told] == [report.vocabulary]
    saved = json.loads((tmp_path / "model" / "dev_metrics.json").read_text())
    assert saved["vocabulary"] == report.vocabulary and report.vocabulary["unk_share_before"] > 0.5
    assert json.loads((tmp_path / "model" / "training_config.json").read_text())["extend_vocab"] is extend
    reloaded = load_seq2seq_model(str(tmp_path / "model"))
    if extend:
        assert report.vocabulary["added"] > 0 and report.vocabulary["unk_share_after"] == 0.0
        assert len(reloaded.tokenizer) == size + report.vocabulary["added"]
        assert reloaded.tokens.identity.vocab_sha256 == model.tokens.identity.vocab_sha256  # saved with the model
    else:
        assert report.vocabulary["added"] == 0 and report.vocabulary["unk_share_after"] > 0.5
        assert len(reloaded.tokenizer) == size
    assert reloaded.model.encoder.get_input_embeddings().weight.shape[0] == len(reloaded.tokenizer)
