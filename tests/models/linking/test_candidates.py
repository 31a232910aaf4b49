"""The lexical heuristics of the linking wing, on hand-made names."""

from __future__ import annotations

from models.linking.candidates import NgramCandidates, mention_span, several_entities, words


def test_words_keep_apostrophes_and_dotted_abbreviations_whole() -> None:
    assert words("O'Brien moved to the U.S. in 1990!") == ["o'brien", "moved", "to", "the", "u.s", "in", "1990"]


def test_mention_span_finds_whole_names_or_their_longest_prefix() -> None:
    text = "Which city's founder is John Forbes?"
    assert mention_span("John Forbes", text) == (4, 6)
    assert mention_span("John Forbes (British Army officer)", text) is None
    assert mention_span("John Forbes (British Army officer)", text, whole=False) == (4, 6)


def test_ngram_candidates_admit_exact_names_and_longer_names_they_start() -> None:
    candidates = NgramCandidates(
        ["John Forbes (British Army officer)", "John", "Chess", "John Smith", "Dead Sea"], lambda n: n
    )
    assert set(candidates("Which city's founder is John Forbes?")) == {"John Forbes (British Army officer)", "John"}
    assert candidates("Who plays chess?") == ("Chess",)
    assert candidates("nothing matches here") is None


def test_several_entities_skips_beams_inside_chosen_mentions() -> None:
    text = "Which city's founder is John Forbes and whose mayor is Ann Lewis?"
    beams = ["John Forbes (British Army officer)", "John", "Ann Lewis", "Forbes", "Dead Sea"]
    assert several_entities(beams, text) == ["John Forbes (British Army officer)", "Ann Lewis"]
    assert several_entities([], text) == []
