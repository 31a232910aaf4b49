"""The one progress protocol of long jobs (index builds, training data, evaluations).

A job wraps each long loop in ``progress(items, description, total)`` and iterates what it
returns; the command line passes a progress bar, Python callers pass nothing. It lives in the
lowest package so that every job, whatever its layer, can take it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    """Wraps an iterable to report progress through it; must yield the same items in order."""

    def __call__(self, items: Iterable[T], description: str, total: int | None = None) -> Iterable[T]: ...


def no_progress(items: Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    """The silent :class:`Progress`: the items, untouched."""
    return items
