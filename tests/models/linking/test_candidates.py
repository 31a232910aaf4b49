"""The lexical heuristics of the linking wing, on hand-made names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from models.linking.candidates import (
    LexicalCandidates,
    LexicalMatch,
    NgramCandidates,
    _fold_each,
    copied_characters,
    find_mention,
    fold,
    lcs_length,
    matching_form,
    surfaces,
    words,
)


def test_words_keep_apostrophes_and_dotted_abbreviations_whole() -> None:
    assert words("O'Brien moved to the U.S. in 1990!") == ["o'brien", "moved", "to", "the", "u.s", "in", "1990"]


def test_find_mention_gives_the_character_span_of_a_name_or_of_it_before_its_qualifier() -> None:
    text = "Which city's founder is JOHN FORBES?"
    assert find_mention("John Forbes", text) == (24, 35)
    assert find_mention("John Forbes (British Army officer)", text) == (24, 35)
    assert find_mention("John", "Johnny and John") == (11, 15)  # whole words only
    assert find_mention("刘晓华（广东工业大学教授）", "广东的刘晓华教授是谁") == (3, 6)  # no spaces in Chinese
    assert find_mention("Ann Lewis", text) is None


def test_find_mention_prefers_the_marked_mention_and_avoids_taken_places() -> None:
    text = "The python ate my Python book"
    assert find_mention("Python", text) == (4, 10)
    assert find_mention("Python", text, within=(18, 24)) == (18, 24)
    assert find_mention("Python", text, within=(0, 3)) == (4, 10)  # not written there: the first place
    hotel = "Is the Paris Hilton hotel in Paris?"
    assert find_mention("Paris", hotel) == (7, 12)
    assert find_mention("Paris", hotel, avoid=[(7, 19)]) == (29, 34)
    assert find_mention("Paris", "Paris Hilton", avoid=[(0, 12)]) is None


def test_punctuation_accents_plurals_and_a_comma_qualifier_do_not_hide_a_name() -> None:
    assert find_mention("U.S. Route 165", "Who died on the US Route 165?") == (16, 28)
    assert find_mention("B. Shiva Rao", "Iqbal Singh and B Shiva Rao") == (16, 27)
    assert find_mention("Behave Yourself!", "an editor of Behave Yourself?") == (13, 28)
    assert find_mention("Front-engine design", "the front engine design platform") == (4, 23)
    assert find_mention("José Rivera", "awards of Jose Rivera") == (10, 21)
    assert find_mention("José", "Jose\u0301 won") == (0, 5)  # the accent written apart is in the span
    assert find_mention("Screenwriter", "awards given to screenwriters?") == (16, 29)  # the span holds the ending
    assert find_mention("Church", "two churches") == (4, 12)
    assert find_mention("Cohoes, New York", "Does Cohoes have a junction?") == (5, 11)
    assert find_mention("Obama", "Obama's wife") == (0, 5)
    assert find_mention("UK", "the UK's capital") == (4, 6)
    assert find_mention("U.S.", "the U.S. army") == (4, 8)  # a name's closing stop stays in its span
    assert find_mention("Paris", "Paris,France") == (0, 5)


def test_the_looser_matching_does_not_invent_names() -> None:
    assert find_mention("Ada", "Adas") is None  # a short name takes no plural ending
    assert find_mention("1990", "the 1990s") is None  # nor does a number
    assert find_mention("Screenwriter", "screenwritership") is None
    assert find_mention("Earth, Wind & Fire", "Is the Earth round?") is None  # not a place's qualifier
    assert find_mention("Tyler, the Creator", "Tyler is here") is None
    assert find_mention("10,000 Maniacs", "I have 10 cats") is None
    assert find_mention("35", "Python 3.5") is None
    assert find_mention("C#", "vitamin C") is None
    assert find_mention("ガス", "カス") is None  # accents are dropped from Latin letters only
    assert find_mention("国北", "中国，北京") is None  # punctuation parts words


ALPHABET = "ab (é刘-.s,'"


@given(st.text(alphabet=ALPHABET, max_size=30), st.text(alphabet=ALPHABET + ")", min_size=1, max_size=8))
def test_a_mention_is_found_exactly_where_the_text_writes_a_surface(text: str, name: str) -> None:
    span = find_mention(name, text)
    form = matching_form(text).text
    written = [
        (start, start + len(surface))
        for surface in surfaces(name)
        for start in range(len(form) - len(surface) + 1)
        if form.startswith(surface, start)
    ]
    if span is None:
        assert not [place for place in written if _stands_alone(form, *place)]
    else:
        there = matching_form(text[span[0] : span[1]]).text.strip()
        assert _surface_or_plural(there, surfaces(name))
        assert _stands_alone(text, *span)


def _surface_or_plural(written: str, names: set[str]) -> bool:
    """Whether ``written`` is one of ``names``, or one of at least 4 characters with a plural ending."""
    endings = [written[: -len(ending)] for ending in ("s", "es") if written.endswith(ending)]
    return written in names or any(len(base) >= 4 and base in names for base in endings)


def _stands_alone(text: str, start: int, end: int) -> bool:
    """No letter or digit runs on across either end (this alphabet's only Chinese character aside)."""

    def joined(a: str, b: str) -> bool:
        return a.isalnum() and b.isalnum() and "刘" not in (a, b)

    before = start > 0 and joined(text[start - 1], text[start])
    return not (before or (end < len(text) and joined(text[end - 1], text[end])))


def test_ngram_candidates_admit_exact_names_and_longer_names_they_start() -> None:
    candidates = NgramCandidates(
        ["John Forbes (British Army officer)", "John", "Chess", "John Smith", "Dead Sea"], lambda n: n
    )
    assert set(candidates("Which city's founder is John Forbes?")) == {"John Forbes (British Army officer)", "John"}
    assert candidates("Who plays chess?") == ("Chess",)
    assert candidates("nothing matches here") is None


SUBJECTS = [
    ("s1", "刘晓华（广东工业大学教授）"),
    ("s2", "刘晓华（演员）"),
    ("s3", "中国"),
    ("s4", "中国人民大学"),
    ("e1", "Amazon"),
    ("e2", "Amazon Web Services"),
    ("e3", "Python (programming language)"),
    ("e4", "Ada"),
]


def test_surfaces_are_the_name_and_the_name_before_its_qualifier() -> None:
    assert surfaces("刘晓华（广东工业大学教授）") == {"刘晓华 广东工业大学教授", "刘晓华"}
    assert surfaces("Python (programming language)") == {"python programming language", "python"}
    assert surfaces("Sacramento, California") == {"sacramento california", "sacramento"}
    assert surfaces("Crosby, Stills, Nash & Young") == {"crosby stills nash & young"}
    assert surfaces("(untitled)") == {"untitled"}
    assert surfaces("!!!") == set()  # nothing a text could be matched on


@given(st.text(max_size=40) | st.text(alphabet="aAßİﬁé\u0301Σς（１", max_size=12))
def test_folding_a_text_whole_is_folding_it_character_by_character(text: str) -> None:
    folded = fold(text)
    assert folded == _fold_each(text) and len(folded) == len(text)


def test_the_matching_form_keeps_each_characters_place_in_the_original() -> None:
    form = matching_form("  O’Hara  the U.S.—Navy's José? ")
    assert form.text == "ohara the us navy s jose "
    start = form.text.index("jose")
    assert form.original(start, start + 4) == (26, 30)
    assert form.original(0, 5) == (2, 8)  # "O’Hara", the apostrophe inside


def test_a_span_takes_the_accents_the_matching_form_drops_and_no_mark_it_keeps() -> None:
    accented = matching_form("Jose\u0301 Rizal")  # a combining accent after a Latin letter: dropped
    assert accented.text == "jose rizal" and accented.original(0, 4) == (0, 5)
    kept = matching_form("00000\x80\U0001cf00")  # a mark after a non-Latin character is kept as its own
    assert kept.text == "00000\x80\U0001cf00" and kept.original(0, 6) == (0, 6)


@given(st.text(min_size=1, max_size=40), st.data())
def test_every_match_is_a_surface_of_its_name_at_its_offsets(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    names = {"k0": text[start:end], "k1": text[: end - start]}
    for match in LexicalCandidates(names.items()).matches(text):
        written = matching_form(text[match.start : match.end]).text.strip()
        assert _surface_or_plural(written, surfaces(names[match.key]))


def test_a_mention_keeps_the_names_inside_it() -> None:
    find = LexicalCandidates(SUBJECTS)
    assert find("中国人民大学位于北京", mention=(0, 2)) == ("s3",)
    assert find("中国人民大学位于北京", mention=(0, 6)) == ("s4",)
    assert find("中国人民大学位于北京", mention=(1, 3)) == ("s4",)  # none inside: the longest overlapping
    assert find("中国人民大学位于北京", mention=(7, 9)) is None


def test_a_chinese_name_is_found_inside_a_sentence_without_spaces_with_every_entity_sharing_it() -> None:
    find = LexicalCandidates(SUBJECTS)
    assert find("刘晓华是哪里的教授？") == ("s1", "s2")
    assert find.matches("请问刘晓华") == [LexicalMatch(2, 5, "s1"), LexicalMatch(2, 5, "s2")]


def test_a_match_inside_a_longer_match_is_dropped_and_kept_when_alone() -> None:
    find = LexicalCandidates(SUBJECTS)
    assert find("中国人民大学的校长") == ("s4",)
    assert find("中国的首都") == ("s3",)
    assert find("who runs Amazon Web Services?") == ("e2",)
    assert find("Amazon's founder") == ("e1",)


def test_english_names_match_whole_words_only_and_any_case() -> None:
    find = LexicalCandidates(SUBJECTS)
    assert find("Adam reads ADA") == ("e4",)
    assert find("Adam and Adamant") is None
    assert find("is PYTHON fast") == ("e3",)


def test_full_width_and_ascii_forms_match_each_other() -> None:
    find = LexicalCandidates([("k", "ＡＢＣ大学"), ("q", "Ada")])
    assert find("abc大学在哪") == ("k",)
    assert find("ＡＤＡ") == ("q",)


def test_a_text_writing_no_name_has_no_candidates() -> None:
    assert LexicalCandidates(SUBJECTS)("nothing to see") is None
    assert LexicalCandidates([])("anything") is None


def _lcs_by_table(a: str, b: str) -> int:
    """The textbook dynamic programme, to hold the library's LCS to."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, start=1):
        for j, y in enumerate(b, start=1):
            table[i][j] = table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


@given(st.text(alphabet="abcé刘晓华 ", max_size=40), st.text(alphabet="abcé刘晓华 ", max_size=40))
def test_lcs_length_is_the_longest_common_subsequence(a: str, b: str) -> None:
    assert lcs_length(a, b) == _lcs_by_table(a, b) == lcs_length(b, a)


def test_copied_characters_count_the_target_the_text_writes_in_order() -> None:
    assert copied_characters("刘晓华（广东工业大学教授）", "广东的刘晓华教授") == 5  # 刘晓华 ... 教授
    assert copied_characters("刘晓华（演员）", "广东的刘晓华教授") == 3
    assert copied_characters("Amazon Web Services", "who runs AMAZON web services") == len("amazon web services")
    assert copied_characters("", "anything") == 0
