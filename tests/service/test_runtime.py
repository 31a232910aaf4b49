"""Process wiring done when a server is built: thread counts for torch and the helper libraries, the linker's spec."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from models.linking.engine import LinkerSpec
from models.loader import keep_helpers_on_one_thread
from service.runtime import build_encoder, threads_per_worker
from service.settings import Settings
from tests.conftest import TinyLinker, save_tiny_roberta


def test_helpers_are_kept_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")  # restored after the test
    with threadpool_limits(limits=None):  # restores BLAS's own thread counts on exit
        keep_helpers_on_one_thread()
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert blas and all(threads == 1 for threads in blas)
        assert os.environ["TOKENIZERS_PARALLELISM"] == "false"


def test_cores_are_shared_out_among_workers() -> None:
    cores = len(os.sched_getaffinity(0))
    assert threads_per_worker(1) == cores
    assert threads_per_worker(cores) == 1
    assert threads_per_worker(cores * 4) == 1  # never zero


def test_an_unpacked_encoder_gets_one_worker_with_all_the_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from service.observability import Metrics
    from service.runtime import build_runtime
    from service.settings import Settings

    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")  # restored after the test
    threads = torch.get_num_threads()
    try:
        with threadpool_limits(limits=None):  # restores BLAS's thread counts
            runtime = build_runtime(Settings(model=str(save_tiny_roberta(tmp_path))), Metrics())
            assert not runtime.similarity.encoder.packing
            assert runtime.similarity.workers == 1
            assert runtime.similarity.threads == threads_per_worker(1)
            assert torch.get_num_threads() == 1, "start-up work leaves no OpenMP pool on this thread"
    finally:
        torch.set_num_threads(threads)


def test_the_default_precision_is_chosen_from_the_cpu_and_says_why() -> None:
    from models.loader import choose_dtype

    loaded = build_encoder(Settings()).loaded
    expected = choose_dtype("auto")
    assert (loaded.dtype, loaded.dtype_reason) == (expected.dtype, expected.reason)
    assert loaded.dtype_reason.startswith("auto: ")


def test_the_linkers_default_precision_is_chosen_from_the_cpu_too(tiny_linker: TinyLinker) -> None:
    from models.loader import choose_dtype
    from service.runtime import build_linker

    expected = choose_dtype("auto")
    settings = Settings(link_model=str(tiny_linker.model_dir), link_index=tiny_linker.index_dir)
    linker = build_linker(settings)
    assert linker is not None
    described = linker.describe()["model"]
    assert (described["dtype"], described["dtype_reason"]) == (expected.dtype, expected.reason)
    assert str(linker.model.model.dtype) == {"bf16": "torch.bfloat16", "fp32": "torch.float32"}[expected.dtype]
    linker.close()
    explicit = build_linker(settings.model_copy(update={"link_dtype": "fp32"}))
    assert explicit is not None and explicit.describe()["model"]["dtype_reason"] == "set explicitly"
    explicit.close()


def test_the_linker_gets_the_servers_encoder_for_disambiguation_or_dense_candidates(tmp_path: Path) -> None:
    from service.runtime import encoder_spec, linker_spec

    def spec(**settings: object) -> LinkerSpec:
        found = linker_spec(Settings(link_model="m", link_index=tmp_path, **settings))
        assert found is not None
        return found

    assert spec().encoder == encoder_spec(Settings()) and spec().disambiguate and spec().dense_candidates == 5
    dense_only = spec(link_disambiguate=False, link_dense_candidates=3)
    assert dense_only.encoder is not None and not dense_only.disambiguate and dense_only.dense_candidates == 3
    assert spec(link_disambiguate=False, link_dense_candidates=0).encoder is None
