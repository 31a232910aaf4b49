"""The LC-QuAD report's pieces over the session's tiny linker: the several gap fitted on train, dense coverage."""

from __future__ import annotations

from dataclasses import replace

from evaluation.lcquad import LcQuad, Question
from evaluation.link_report import dense_coverage, fit_several_gap, generative_predictions
from evaluation.metrics import score_predictions
from models.linking import AUTO, LinkingEngine
from models.linking.candidates import DenseCandidates
from models.linking.seq2seq import load_seq2seq_model
from tests.conftest import TINY_ENTITIES, TinyLinker
from tests.models.linking.one_name import OneName

QUESTIONS = [
    Question("1", "Is Marie Curie from France?", ("Marie Curie", "France")),
    Question("2", "Which country is Japan?", ("Japan",)),
    Question("3", "Paris and Japan", ("Paris", "Japan")),
    Question("4", "Marie Curie", ("Marie Curie",)),
]


def test_the_several_gap_is_the_training_splits_best_and_ties_go_to_the_larger_gap(tiny_linker: TinyLinker) -> None:
    engine = LinkingEngine.open(load_seq2seq_model(str(tiny_linker.model_dir)), tiny_linker.index_dir)
    names = sorted({entity["name"] for entity in TINY_ENTITIES})
    held_out = [Question("9", "Python in France", ("Python", "France"))]
    data = LcQuad(train=QUESTIONS, dev=held_out, names=names, pairs=[])
    gap, train_f1 = fit_several_gap(engine, data, num_beams=3, batch_size=2, gaps=(0.0, 1.0, 50.0, None))
    assert set(train_f1) == {"0", "1", "50", "any"}
    best = max(train_f1.values())
    assert train_f1["any" if gap is None else f"{gap:g}"] == best
    larger = [g for g in (1.0, 50.0, None) if gap is not None and (g is None or g > gap)]
    assert all(train_f1["any" if g is None else f"{g:g}"] < best for g in larger), "ties go to the larger gap"
    # a gap of 0 keeps only results as likely as the first: the top beam, unless beams tie
    top = generative_predictions(engine, QUESTIONS, 3, 2, candidates=AUTO)[None][0]  # the fit's request
    assert train_f1["0"] == score_predictions(replace(data, dev=QUESTIONS), top, 0.0)["f1"]


def test_dense_coverage_counts_the_unwritten_gold_entities_among_the_nearest_names(tiny_linker: TinyLinker) -> None:
    engine = LinkingEngine.open(load_seq2seq_model(str(tiny_linker.model_dir)), tiny_linker.index_dir)
    nearest = OneName(engine, "Marie Curie")
    dense = replace(engine, dense=DenseCandidates(nearest.vectors(), nearest, k=1))
    ids = {entity["name"]: entity["id"] for entity in TINY_ENTITIES if entity["name"] != "Paris"}
    questions = [
        Question("1", "the physicist who lived in France", ("Marie Curie", "France")),  # Curie: unwritten, nearest
        Question("2", "the land of the rising sun and France", ("Japan", "France")),  # Japan: unwritten, not near
        Question("3", "the physicist who won two Nobel prizes", ("Marie Curie",)),  # writes no name: full trie
        Question("4", "Marie Curie", ("Marie Curie",)),  # written
    ]
    coverage = dense_coverage(dense, questions, ks=(1,), to_id=ids.__getitem__, chunk=2)
    assert coverage == {
        "questions": 4,
        "questions_writing_a_name": 3,
        "gold_not_written": 2,
        "share_in_nearest_k": {"1": 0.5},
    }
