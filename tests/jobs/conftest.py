"""The bulk jobs set torch's thread count in their worker threads, which also moves the count that
threads started later inherit: each test here puts it back, so that later tests see the default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def restore_torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
