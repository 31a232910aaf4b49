"""The micro-batcher merges concurrent requests into one call and hands back each share."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from models.admission import ShuttingDownError
from models.batching import MicroBatcher


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.parametrize("wait_ms", [50, 0])
def test_concurrent_requests_share_one_call_and_keep_their_order(wait_ms: float) -> None:
    """Requests that queue while a batch runs form the next one, with or without a wait for company."""
    calls: list[list[int]] = []
    release = threading.Event()

    def square(items: list[int]) -> list[int]:
        release.wait(timeout=5)
        calls.append(list(items))
        return [item * item for item in items]

    async def scenario() -> list[list[int]]:
        batcher = MicroBatcher(square, max_items=100, max_wait_ms=wait_ms)
        await batcher.start()
        first = asyncio.create_task(batcher.submit([1]))  # occupies the worker
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit([10 * k, 10 * k + 1])) for k in range(1, 6)]
        await asyncio.sleep(0.05)
        release.set()
        results = [await first, *[await task for task in rest]]
        await batcher.stop()
        return results

    results = run(scenario())
    assert results == [[1], *[[(10 * k) ** 2, (10 * k + 1) ** 2] for k in range(1, 6)]]
    assert len(calls) == 2 and len(calls[1]) == 10  # five waiting requests merged into one call


def test_an_error_reaches_every_request_of_the_batch() -> None:
    def fail(items: list[int]) -> list[int]:
        raise RuntimeError("model exploded")

    async def scenario() -> list[BaseException]:
        batcher = MicroBatcher(fail, max_wait_ms=20)
        await batcher.start()
        outcomes = await asyncio.gather(*(batcher.submit([k]) for k in range(3)), return_exceptions=True)
        await batcher.stop()
        return outcomes

    outcomes = run(scenario())
    assert all(isinstance(o, RuntimeError) and "exploded" in str(o) for o in outcomes)


def test_batch_size_is_reported_and_capped() -> None:
    sizes: list[int] = []

    async def scenario() -> None:
        batcher = MicroBatcher(lambda items: items, max_items=4, max_wait_ms=20, on_batch=sizes.append)
        await batcher.start()
        await asyncio.gather(*(batcher.submit([k, k]) for k in range(6)))
        await batcher.stop()

    run(scenario())
    assert sum(sizes) == 12 and max(sizes) <= 4


def test_submitting_to_a_stopped_batcher_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        run(MicroBatcher(lambda items: items).submit([1]))


def test_several_workers_run_batches_side_by_side() -> None:
    both_inside = threading.Barrier(2, timeout=2)

    def meet(items: list[int]) -> list[int]:
        both_inside.wait()  # breaks (and raises) unless a second batch runs at the same time
        return items

    async def scenario(workers: int) -> list[list[int]]:
        batcher = MicroBatcher(meet, max_items=1, max_wait_ms=0, workers=workers)
        await batcher.start()
        try:
            return list(await asyncio.gather(batcher.submit([1]), batcher.submit([2])))
        finally:
            await batcher.stop()

    assert run(scenario(2)) == [[1], [2]]
    both_inside.reset()
    with pytest.raises(threading.BrokenBarrierError):
        run(scenario(1))


def test_stopping_fails_the_requests_of_a_running_batch_and_refuses_new_ones() -> None:
    inside, release = threading.Event(), threading.Event()

    def slow(items: list[int]) -> list[int]:
        inside.set()
        release.wait(timeout=5)
        return items

    async def scenario() -> None:
        batcher = MicroBatcher(slow, max_wait_ms=0)
        await batcher.start()
        running = asyncio.create_task(batcher.submit([1]))
        while not inside.is_set():
            await asyncio.sleep(0.01)
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0.05)
        assert running.done() and "shutting down" in str(running.exception())
        release.set()
        await stopping
        with pytest.raises(RuntimeError, match="not running"):
            await batcher.submit([2])

    run(scenario())


def test_each_facade_runs_its_batches_with_its_own_thread_count() -> None:
    """The linker's worker may use two threads while the encoder's uses one, side by side."""
    import torch

    from models.batching import BatchedFacade

    seen: dict[str, list[int]] = {"one": [], "two": []}

    def recorder(name: str):
        def process(items: list[int]) -> list[int]:
            torch.ones(64, 64) @ torch.ones(64, 64)  # a parallel op: the thread's own count is in use
            seen[name].append(torch.get_num_threads())
            return items

        return process

    async def scenario() -> None:
        one = BatchedFacade(recorder("one"), name="one", stage="s", unit="u", threads=1)
        two = BatchedFacade(recorder("two"), name="two", stage="s", unit="u", threads=2)
        await one.start()
        await two.start()
        for _ in range(5):
            await asyncio.gather(one._batcher.submit([1]), two._batcher.submit([2]))
        await one.stop()
        await two.stop()

    before = torch.get_num_threads()
    try:
        run(scenario())
    finally:
        torch.set_num_threads(before)
    assert seen == {"one": [1] * 5, "two": [2] * 5}


def _steady_clients(refill_share: float, clients: int, rounds: int) -> list[int]:
    """Batch sizes when ``clients`` each send ``rounds`` requests one after another, each coming
    back a few milliseconds after its answer (client ``k`` after ``k + 1`` ms), as over a network."""
    sizes: list[int] = []

    def slow(items: list[int]) -> list[int]:
        sizes.append(len(items))
        threading.Event().wait(0.1)  # a batch's compute
        return items

    async def client(batcher: MicroBatcher, number: int) -> None:
        for _ in range(rounds):
            await batcher.submit([number])
            await asyncio.sleep((number + 1) / 1000)

    async def scenario() -> None:
        batcher = MicroBatcher(slow, max_items=100, max_wait_ms=0, refill_share=refill_share)
        await batcher.start()
        await asyncio.gather(*(client(batcher, number) for number in range(clients)))
        await batcher.stop()

    run(scenario())
    return sizes


def test_after_a_batch_of_several_the_next_waits_for_the_clients_to_come_back() -> None:
    """The answered clients return within the refill window (half of a 100 ms batch), so every
    batch after the first two holds all of them (without it, batches alternate between one client
    and the others); a lone client's batches never wait for company, however long the window."""
    sizes = _steady_clients(refill_share=0.5, clients=6, rounds=5)
    assert sum(sizes) == 30 and all(size == 6 for size in sizes[2:]), sizes
    began = time.monotonic()
    assert _steady_clients(refill_share=100.0, clients=1, rounds=3) == [1, 1, 1]
    assert time.monotonic() - began < 5  # a wait would be 10 s after each batch


def test_a_negative_refill_share_is_refused() -> None:
    with pytest.raises(ValueError, match="refill_share"):
        MicroBatcher(lambda items: items, refill_share=-0.1)


def test_stopping_while_a_request_arrives_in_the_refill_wait_neither_hangs_nor_loses_it() -> None:
    """The worker waits for the clients of its last batch; a request that arrives in the same
    loop turn as the stop is failed with the shutdown error, and the stop returns."""

    async def scenario() -> tuple[bool, BaseException | None]:
        batcher = MicroBatcher(lambda items: items, max_items=16, max_wait_ms=0, refill_share=100.0)
        await batcher.start()
        await asyncio.gather(batcher.submit([1]), batcher.submit([2]))  # the next batch waits for two
        lone = asyncio.ensure_future(batcher.submit([3]))
        await asyncio.sleep(0.01)  # the worker is waiting for a second request
        late = asyncio.ensure_future(batcher.submit([4]))
        stopping = asyncio.ensure_future(batcher.stop())
        done, _ = await asyncio.wait([stopping], timeout=5)
        await asyncio.wait([lone, late], timeout=1)
        return bool(done), late.exception() if late.done() else None

    stopped, late_error = run(scenario())
    assert stopped
    assert isinstance(late_error, ShuttingDownError)
