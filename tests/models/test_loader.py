"""Finding and loading models: embedded default, local directories, hub names, and failures."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.loader import (
    ModelLoadError,
    embedded_model_dir,
    limit_malloc_arenas,
    load_encoder_model,
    resolve_model_source,
)


def test_embedded_default_is_resolved_without_network() -> None:
    for setting in (None, "", "embedded"):
        source = resolve_model_source(setting)
        assert source.kind == "embedded"
        assert (Path(source.location) / "config.json").is_file()


def test_local_directory_and_hub_names_are_told_apart() -> None:
    assert resolve_model_source(str(embedded_model_dir())).kind == "local"
    assert resolve_model_source("sentence-transformers/all-MiniLM-L6-v2").kind == "hub"


def test_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match=str(missing)):
        resolve_model_source(str(missing))


def test_directory_without_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=f"no config.json.*{tmp_path}"):
        resolve_model_source(str(tmp_path))


def _copy_model(target: Path) -> Path:
    shutil.copytree(embedded_model_dir(), target, ignore=shutil.ignore_patterns("model.safetensors"))
    return target


def test_local_copy_loads(tmp_path: Path) -> None:
    target = _copy_model(tmp_path / "copy")
    shutil.copy(embedded_model_dir() / "model.safetensors", target / "model.safetensors")
    loaded = load_encoder_model(str(target))
    assert loaded.source.kind == "local" and loaded.name == "copy"
    assert loaded.describe()["parameters"] == loaded.parameter_count > 20_000_000


def test_corrupt_weights_are_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    target = _copy_model(tmp_path / "corrupt")
    (target / "model.safetensors").write_bytes(b"this is not a safetensors file")
    with pytest.raises(ModelLoadError, match=f"could not load model from {target}"):
        load_encoder_model(str(target))


def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_natively(tmp_path: Path) -> None:
    from models.loader import choose_dtype, cpu_flags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n\nflags\t\t: fpu avx2\n")
    assert {"avx512f", "amx_bf16", "fpu"} <= cpu_flags(cpuinfo)
    assert cpu_flags(tmp_path / "missing") == frozenset()
    native = choose_dtype("auto", frozenset({"avx512f", "amx_bf16"}))
    assert native.dtype == "bf16" and "amx_bf16" in native.reason
    emulated = choose_dtype("auto", frozenset({"avx2", "avx512f"}))
    assert emulated.dtype == "fp32" and "no native bf16" in emulated.reason
    assert choose_dtype("fp32", frozenset({"amx_bf16"})).dtype == "fp32"
    assert choose_dtype("bf16", frozenset()).dtype == "bf16"
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        choose_dtype("fp16")


_BLOCK_MIB = (1, 2, 3, 1, 2)  # under 4 MiB: NumPy asks for huge pages from there, which fault fewer times
_PAGE_FAULTS_OF_REUSE = f"""
import resource
import numpy as np
from models.loader import reuse_freed_memory
taken = reuse_freed_memory()
def cycle():  # blocks of a few megabytes, held together and freed together, as a forward pass does
    held = [np.ones(size << 20, dtype=np.uint8) for size in {_BLOCK_MIB}]
    del held
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print(taken, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _reuse_and_faults_per_cycle(environment: dict[str, str]) -> tuple[str, float]:
    run = subprocess.run([sys.executable, "-c", _PAGE_FAULTS_OF_REUSE], capture_output=True, text=True, env=environment)
    assert run.returncode == 0, run.stderr
    taken, per_cycle = run.stdout.split()
    return taken, float(per_cycle)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_freed_blocks_are_reused_without_faulting_in_again_unless_the_environment_sets_malloc() -> None:
    own = {name: value for name, value in os.environ.items() if not name.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    pages_touched = sum(_BLOCK_MIB) << 20 >> 12
    taken, faults = _reuse_and_faults_per_cycle(own)
    assert taken == "True"
    assert faults < pages_touched / 20  # a few stray pages, not the blocks
    # an operator's own threshold stands; this one has glibc map every block afresh, and it shows
    taken, faults = _reuse_and_faults_per_cycle({**own, "MALLOC_MMAP_THRESHOLD_": "131072"})
    assert taken == "False"
    assert faults > pages_touched / 2


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_malloc_arenas_are_capped_unless_the_environment_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the operator's choice stands
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is True  # glibc on Linux, as here and in the image
