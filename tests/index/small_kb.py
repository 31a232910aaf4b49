"""A small knowledge base for index tests: a shared name (Paris), KgCLUE and TSV facts, two objects of one pair."""

from __future__ import annotations

import json
from pathlib import Path

from index.builder import KbSources

ENTITIES = [
    {"id": "city:paris", "name": "Paris", "aliases": ["City of Light"], "description": "Capital of France."},
    {"id": "person:paris", "name": "Paris", "description": "A prince of Troy."},
    {"id": "country:france", "name": "France"},
    {"id": "person:marie_curie", "name": "Marie Curie"},
]
FACTS = [
    "France\tcapital\tParis",
    "France\tofficial language\tFrench",
    "Marie Curie ||| born in ||| Warsaw",
    "France\tofficial language\tBreton",
]


def write_kb(directory: Path, entities: list[dict] = ENTITIES, facts: list[str] = FACTS) -> KbSources:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "entities.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entities))
    (directory / "facts.tsv").write_text("".join(f + "\n" for f in facts))
    return KbSources(directory / "entities.jsonl", directory / "facts.tsv")
