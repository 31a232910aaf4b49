"""The baselines' logic on hand-made names."""

from __future__ import annotations

from evaluation.baselines import DictionaryLinker


def test_dictionary_prefers_the_longest_names() -> None:
    linker = DictionaryLinker(["Al Gore", "Al Gore presidential campaign", "Ann Lewis", "Gore"])
    assert linker.link("Who is the incumbent of Al Gore presidential campaign and of Ann Lewis?") == [
        "Al Gore presidential campaign",
        "Ann Lewis",
    ]
    assert linker.link("nothing here") == []
