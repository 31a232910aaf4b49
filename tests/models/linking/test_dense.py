"""Dense candidates: names nearest a text's vector join the names it writes, for ``candidates: auto``."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from index.builder import KbSources, build_index
from index.manifest import IndexLoadError
from models.linking.candidates import DenseCandidates
from models.linking.engine import AUTO, LinkerSpec, LinkingEngine, LinkQuery
from models.linking.seq2seq import load_seq2seq_model
from models.similarity.encoder import EncoderSpec, TokenEncoder
from tests.conftest import TinyLinker
from tests.models.linking.one_name import OneName


@pytest.fixture(scope="module")
def vectors_index(tiny_linker: TinyLinker, encoder: TokenEncoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny KB's index with its names' vectors from the embedded encoder."""
    path = tmp_path_factory.mktemp("dense") / "index"
    model = load_seq2seq_model(str(tiny_linker.model_dir))
    build_index(KbSources(tiny_linker.entities, tiny_linker.facts), path, model.tokens, name_vectors=encoder)
    return path


def test_a_name_the_text_does_not_write_joins_the_search_through_its_vector(engine: LinkingEngine) -> None:
    nearest = OneName(engine, "Marie Curie")
    dense = replace(engine, dense=DenseCandidates(nearest.vectors(), nearest, k=1))
    query = LinkQuery("Paris and its physicist who won two Nobel prizes", top_k=6, num_beams=6, candidates=AUTO)
    (words_only,) = engine.link([query])
    (with_dense,) = dense.link([query])
    assert {m.name for m in words_only} == {"Paris"}
    assert {m.name for m in with_dense} == {"Paris", "Marie Curie"}
    assert nearest.texts == [query.text]


def test_dense_candidates_embed_the_mention_and_leave_other_queries_alone(engine: LinkingEngine) -> None:
    nearest = OneName(engine, "Japan")
    dense = replace(engine, dense=DenseCandidates(nearest.vectors(), nearest, k=1))
    text = "the French Republic and Paris"
    marked = LinkQuery(text, mention=(text.index("Paris"), len(text)), top_k=4, num_beams=4, candidates=AUTO)
    (found,) = dense.link([marked])
    assert {m.name for m in found} <= {"Paris", "Japan"} and "Japan" in {m.name for m in found}
    assert nearest.texts == ["Paris"]
    nearest.texts.clear()
    dense.link([replace(marked, candidates=None), LinkQuery("France", "kbqa", candidates=AUTO)])
    assert nearest.texts == []  # only candidates: auto on the entity task asks for dense candidates


def test_a_text_that_writes_no_name_is_searched_over_the_whole_index_without_an_encoder_pass(
    engine: LinkingEngine,
) -> None:
    nearest = OneName(engine, "Marie Curie")
    dense = replace(engine, dense=DenseCandidates(nearest.vectors(), nearest, k=1))
    query = LinkQuery("the country of the rising sun", top_k=3, num_beams=3, candidates=AUTO)
    assert [m.id for m in dense.link([query])[0]] == [m.id for m in engine.link([replace(query, candidates=None)])[0]]
    assert nearest.texts == []


def test_an_inline_marked_mention_is_what_dense_candidates_embed(engine: LinkingEngine) -> None:
    nearest = OneName(engine, "Japan")
    dense = replace(engine, dense=DenseCandidates(nearest.vectors(), nearest, k=1))
    (found,) = dense.link([LinkQuery("Paris, [START_ENT] Nihon and France [END_ENT]", top_k=4, candidates=AUTO)])
    assert nearest.texts == ["Nihon and France"]
    assert {m.name for m in found} == {"France", "Japan"}  # Paris is written outside the mention


def test_a_text_the_encoder_refuses_gets_no_dense_candidates_and_spares_the_others(
    tiny_linker: TinyLinker, encoder: TokenEncoder, vectors_index: Path
) -> None:
    spec = LinkerSpec(str(tiny_linker.model_dir), vectors_index, encoder=EncoderSpec(), dense_candidates=2)
    dense = spec.open(encoder).dense
    assert dense is not None
    refused, kept = dense(["\u0301", "Marie Curie"])
    assert refused == [] and len(kept) == 2
    # through link() a refused mention writes no name, so it is searched over the whole index
    (found,) = spec.open(encoder).link([LinkQuery("Paris [START_ENT] \u0301 [END_ENT]", candidates=AUTO)])
    assert found


def test_a_linker_opened_on_an_index_with_vectors_finds_the_nearest_names(
    tiny_linker: TinyLinker, encoder: TokenEncoder, vectors_index: Path
) -> None:
    spec = LinkerSpec(str(tiny_linker.model_dir), vectors_index, encoder=EncoderSpec(), dense_candidates=2)
    engine = spec.open(encoder)
    assert engine.dense is not None and engine.dense.k == 2 and engine.describe()["dense_candidates"] == 2
    (nearest,) = engine.dense(["Marie Curie"])
    (best,) = engine.index.store.entities_of_sequences(nearest[:1]).values()
    assert best == [("person:marie_curie", "Marie Curie")]
    assert replace(spec, dense_candidates=0).open(encoder).dense is None


def test_vectors_from_another_encoder_are_refused_naming_the_index(
    tiny_linker: TinyLinker, encoder: TokenEncoder, vectors_index: Path, tmp_path: Path
) -> None:
    other = tmp_path / "index"
    shutil.copytree(vectors_index, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["name_vectors"]["encoder"] = "another-model (weights 0123456789ab), layer -1, mean of token vectors"
    (other / "manifest.json").write_text(json.dumps(manifest))
    spec = LinkerSpec(str(tiny_linker.model_dir), other, encoder=EncoderSpec())
    with pytest.raises(IndexLoadError, match=f"index at {other} holds name vectors from 'another-model.*DENSE"):
        spec.open(encoder)
    assert replace(spec, dense_candidates=0).open(encoder).dense is None
