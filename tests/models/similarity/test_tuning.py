"""Tuning: the exact transport's gradient is its plan, the torch twins equal the method table, and a
short run on real pairs lowers the loss and leaves a model the service loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.similarity import EncoderSpec, SimilarityEngine
from models.similarity.gold_pairs import GoldPair, read_gold_pairs
from models.similarity.methods import METHODS
from models.similarity.tuning import (
    DIFFERENTIABLE_DISTANCES,
    TuneConfig,
    _PairBatches,
    differentiable_similarity,
    gold_targets,
    load_for_tuning,
    tune,
)
from models.training import latest_checkpoint


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_the_gradient_of_the_exact_transport_cost_is_the_optimal_plan(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
    a, b = a / a.sum(), b / b.sum()
    cost = torch.tensor(rng.random((n, m)), requires_grad=True)
    ot.emd2(torch.tensor(a), torch.tensor(b), cost).backward()
    plan = ot.emd(a, b, cost.detach().numpy())
    np.testing.assert_allclose(cost.grad.numpy(), plan, atol=1e-12)
    # and the value moves as the plan says it does for a small change of one cost
    i, j = np.unravel_index(np.argmax(plan), plan.shape)
    bumped = cost.detach().numpy().copy()
    bumped[i, j] += 1e-7
    change = ot.emd2(a, b, bumped) - ot.emd2(a, b, cost.detach().numpy())
    assert change == pytest.approx(1e-7 * plan[i, j], rel=1e-3, abs=1e-15)


@pytest.mark.parametrize("method", sorted(DIFFERENTIABLE_DISTANCES))
def test_each_torch_twin_gives_its_rows_similarity(method: str) -> None:
    rng = np.random.default_rng(4)
    row = METHODS[method]
    for _ in range(20):
        x, y = rng.normal(size=(rng.integers(1, 9), 6)), rng.normal(size=(rng.integers(1, 9), 6))
        result = row.distance(x, y)
        distance = result if isinstance(result, float) else result.distance
        twin = differentiable_similarity(method, torch.tensor(x), torch.tensor(y))
        assert float(twin) == pytest.approx(row.similarity(max(distance, 1e-12)), abs=1e-9)


def test_gold_scores_are_rescaled_by_the_files_range() -> None:
    targets, span = gold_targets([GoldPair("a", "b", 1.0), GoldPair("c", "d", 5.0), GoldPair("e", "f", 2.0)])
    assert targets == [0.0, 1.0, 0.25] and span == (1.0, 5.0)
    with pytest.raises(ValueError, match="scored differently"):
        gold_targets([GoldPair("a", "b", 3.0), GoldPair("c", "d", 3.0)])


def _training_loss(model_dir: str | None, pairs: list[GoldPair], method: str) -> float:
    loaded = load_for_tuning(model_dir, Path("unused"), resume=False)
    loaded.model.eval()
    with torch.inference_mode():
        return float(_PairBatches(loaded, TuneConfig(method=method)).loss(pairs, gold_targets(pairs)[0]))


def test_tuning_on_a_few_hundred_pairs_lowers_the_loss_and_saves_a_servable_model(
    tmp_path: Path, data_dir: Path
) -> None:
    pairs = read_gold_pairs(data_dir / "stsb" / "sts-train.csv")[:240]
    out = tmp_path / "tuned"
    config = TuneConfig(method="anchored-wrd", epochs=1, learning_rate=1e-4, checkpoint_every=5)
    report = tune(load_for_tuning(None, out, resume=False), pairs, out, config)
    assert report.steps == 15 and report.stopped_by == "epochs"
    assert _training_loss(str(out), pairs, "anchored-wrd") < _training_loss(None, pairs, "anchored-wrd")
    assert json.loads((out / "tune_config.json").read_text())["method"] == "anchored-wrd"
    engine = SimilarityEngine(EncoderSpec(model=str(out)).load())
    close, far = engine.compare([(pairs[0].a, pairs[0].a), (pairs[0].a, "The stock market fell sharply.")])
    assert close.similarity == pytest.approx(1.0, abs=1e-6) and far.similarity < close.similarity
    assert latest_checkpoint(out) is not None


def test_a_stopped_run_resumes_and_another_runs_checkpoint_is_refused(tmp_path: Path, data_dir: Path) -> None:
    pairs = read_gold_pairs(data_dir / "stsb" / "sts-train.csv")[:64]
    out = tmp_path / "tuned"
    config = TuneConfig(method="cosine", epochs=2, max_minutes=0.0)
    first = tune(load_for_tuning(None, out, resume=False), pairs, out, config)
    assert (first.steps, first.stopped_by) == (1, "time budget")
    config.max_minutes = None
    resumed = tune(load_for_tuning(None, out, resume=True), pairs, out, config, resume=True)
    assert (resumed.steps, resumed.steps_this_run) == (8, 7)
    with pytest.raises(ValueError, match="other examples"):
        tune(load_for_tuning(None, out, resume=True), pairs[:32], out, config, resume=True)
    with pytest.raises(ValueError, match="cannot be tuned; use one of: anchored-wrd, wrd, cosine"):
        tune(load_for_tuning(None, out, resume=False), pairs, out, TuneConfig(method="greedy"))
