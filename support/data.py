"""Where the public evaluation data sets are: ``SIMLINK_DATA_DIR`` (through :class:`Settings`), else
``../shared/data`` beside the repository."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def data_dir(settings: Settings | None = None) -> Path:
    """The evaluation data folder the settings name, or the shared one beside the repository."""
    configured = (settings or Settings()).data_dir
    return configured if configured is not None else REPO.parent / "shared" / "data"
