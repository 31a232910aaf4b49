"""Error locations are rendered as the field paths a client wrote."""

from __future__ import annotations

from service.errors import field_path


def test_field_paths_read_like_the_request() -> None:
    assert field_path(("body", "pairs", 2, "a")) == "pairs[2].a"
    assert field_path(("body", "candidates", 0)) == "candidates[0]"
    assert field_path(("body", "method")) == "method"
    assert field_path(("body",)) == "body"


def test_union_member_tags_are_not_part_of_the_field() -> None:
    from service.errors import _field_location

    assert _field_location(("body", "candidates", "list[constrained-str]")) == ("body", "candidates")
    assert _field_location(("body", "candidates", "literal['auto']")) == ("body", "candidates")
    assert _field_location(("body", "pairs", 0, "a")) == ("body", "pairs", 0, "a")
