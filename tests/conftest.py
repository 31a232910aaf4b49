"""Shared fixtures: the real embedded encoder (loaded once) and the shared evaluation data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.encoder import TokenEncoder
from models.loader import load_encoder_model

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The public data sets beside the repository (or where SIMLINK_DATA_DIR points)."""
    return Path(os.environ.get("SIMLINK_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    directory = shared_data_dir()
    if not (directory / "SOURCES.md").is_file():
        pytest.skip(f"shared evaluation data not found at {directory} (set SIMLINK_DATA_DIR)")
    return directory


@pytest.fixture(scope="session")
def encoder() -> TokenEncoder:
    """The embedded all-MiniLM-L6-v2 in fp32, as the service loads it by default."""
    return TokenEncoder(load_encoder_model("embedded", "fp32"))
