"""Quality regression: Spearman on STS-B dev matches the reference table in SOURCES.md, and the
default method stays ahead of pooled cosine measured beside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evaluation.sts import spearman_by_method
from models.similarity.encoder import TokenEncoder
from models.similarity.gold_pairs import read_gold_pairs
from models.similarity.methods import DEFAULT_METHOD

COLUMNS = {"WRD": "wrd", "WMD": "wmd", "greedy": "greedy"}


def reference_rows(sources: Path) -> dict[bool, dict[str, float]]:
    """The reference Spearman figures, keyed by whether [CLS]/[SEP] are left out."""
    lines = sources.read_text(encoding="utf-8").splitlines()
    header = next(line for line in lines if line.startswith("| split") and "WRD" in line)
    names = [cell.strip() for cell in header.strip("|").split("|")]
    rows: dict[bool, dict[str, float]] = {}
    for line in lines:
        if line.startswith("| STS-B dev"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            skip = "left out" in cells[0]
            rows[skip] = {
                method: float(cells[i])
                for i, name in enumerate(names)
                for key, method in COLUMNS.items()
                if re.match(rf"{key}\b", name)
            }
    assert set(rows) == {False, True} and all(len(r) == 3 for r in rows.values()), rows
    return rows


@pytest.mark.parametrize("skip_special_tokens", [False, True], ids=["all-tokens", "no-cls-sep"])
def test_stsb_dev_spearman_matches_the_reference(
    encoder: TokenEncoder, data_dir: Path, skip_special_tokens: bool
) -> None:
    expected = reference_rows(data_dir / "SOURCES.md")[skip_special_tokens]
    pairs = read_gold_pairs(data_dir / "stsb" / "sts-dev.csv")
    assert len(pairs) == 1500
    measured = spearman_by_method(encoder, pairs, list(expected), skip_special_tokens=skip_special_tokens)
    for method, value in expected.items():
        assert measured[method] == pytest.approx(value, abs=0.1), (method, measured[method], value)


DEFAULT_AHEAD_OF = {"stsb/sts-dev.csv": 86.82, "sick/SICK_trial.txt": 80.16}
"""The default method's Spearman x 100 when it was chosen (fp32; README's variants table)."""


@pytest.mark.parametrize("split", sorted(DEFAULT_AHEAD_OF))
def test_the_default_method_is_ahead_of_pooled_cosine_measured_beside_it(
    encoder: TokenEncoder, data_dir: Path, split: str
) -> None:
    pairs = read_gold_pairs(data_dir / split)
    measured = spearman_by_method(encoder, pairs, [DEFAULT_METHOD, "cosine"])
    assert measured[DEFAULT_METHOD] > measured["cosine"], measured
    assert measured[DEFAULT_METHOD] == pytest.approx(DEFAULT_AHEAD_OF[split], abs=0.1)
