"""Overload: a real server at twice the load it can sustain keeps serving what it admits, quickly refuses
the rest, and holds its memory; then 10,000 requests within capacity all succeed.

Each round measures, on one ``simlink serve`` with its default settings (127.0.0.1 only):

1. **Sustainable throughput**: 16 keep-alive clients in a closed loop, each sending the next request
   as soon as its answer is in (8 STS-B dev pairs per request), for ``--seconds-sustained``.
2. **Twice that, open loop**: requests sent on a fixed schedule at 2x the rate just measured for
   ``--seconds-overload`` seconds, whatever the answers; each on a free keep-alive connection (new ones
   opened as needed). Reported: goodput (200s per second) as a share of the sustainable throughput,
   p99 latency of the admitted (200) requests, p99 latency of the refused (429) ones, and the
   server's resident memory before and after (after an idle second).

Rounds alternate (sustainable, overload, sustainable, overload, ...) because this machine's speed
drifts; each goodput share uses the sustainable rate measured right before it. Finally 10,000
one-pair requests at 32 concurrent connections: every one must be answered 200.

    python -m bench.overload [--rounds 2] [--seconds-overload 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import print_table, stsb_pairs
from bench.load_client import prepare_post
from support.server import LiveServer, live_server


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Sends one prepared request on a keep-alive connection; returns the status (body read and dropped)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split(" ", 2)[1])


class Connections:
    """Idle keep-alive connections to the server, opened on demand."""

    def __init__(self, base_url: str) -> None:
        self.address = urlsplit(base_url)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        return await asyncio.open_connection(self.address.hostname, self.address.port)

    def give_back(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.append(connection)

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def send(connections: Connections, request: bytes) -> tuple[int, float]:
    """(status, seconds) of one request; status 0 when it failed on a fresh connection. A pooled
    connection the server has closed meanwhile (its keep-alive timeout) is replaced and the request
    sent again, as HTTP clients do with stale pooled connections."""
    started = time.perf_counter()
    reused = bool(connections.idle)
    connection = await connections.take()
    try:
        status = await _exchange(*connection, request)
    except (OSError, asyncio.IncompleteReadError):
        connection[1].close()
        if not reused:
            return 0, time.perf_counter() - started
        connection = await asyncio.open_connection(connections.address.hostname, connections.address.port)
        try:
            status = await _exchange(*connection, request)
        except (OSError, asyncio.IncompleteReadError):
            connection[1].close()
            return 0, time.perf_counter() - started
    connections.give_back(connection)
    return status, time.perf_counter() - started


async def closed_loop(base_url: str, requests: list[bytes], clients: int, seconds: float) -> list[tuple[int, float]]:
    """``clients`` connections each sending the next request as soon as the last is answered."""
    connections = Connections(base_url)
    results: list[tuple[int, float]] = []
    stop_at = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client() -> None:
        while time.perf_counter() < stop_at:
            results.append(await send(connections, requests[next(counter) % len(requests)]))

    await asyncio.gather(*(client() for _ in range(clients)))
    await connections.close()
    return results


async def open_loop(base_url: str, requests: list[bytes], rate: float, seconds: float) -> list[tuple[int, float]]:
    """Requests sent on a fixed schedule of ``rate`` per second for ``seconds``, answered or not."""
    connections = Connections(base_url)
    started = time.perf_counter()
    tasks = []
    for k in range(int(rate * seconds)):
        delay = started + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(connections, requests[k % len(requests)])))
    results = list(await asyncio.gather(*tasks))
    await connections.close()
    return results


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def overload_round(server: LiveServer, requests: list[bytes], args: argparse.Namespace, number: int) -> dict:
    sustained = asyncio.run(closed_loop(server.url, requests, 16, args.seconds_sustained))
    ok = [seconds for status, seconds in sustained if status == 200]
    sustainable = len(ok) / args.seconds_sustained
    rss_before = rss_mb(server.process.pid)
    results = asyncio.run(open_loop(server.url, requests, 2 * sustainable, args.seconds_overload))
    time.sleep(1.0)
    rss_after = rss_mb(server.process.pid)
    admitted = [seconds for status, seconds in results if status == 200]
    refused = [seconds for status, seconds in results if status == 429]
    other = len(results) - len(admitted) - len(refused)
    other_statuses = Counter(status for status, _ in results if status not in (200, 429))
    row = {
        "sustainable": sustainable,
        "goodput": len(admitted) / args.seconds_overload,
        "p99_admitted": percentile(admitted, 0.99),
        "p99_refused": percentile(refused, 0.99),
        "refused": len(refused),
        "sent": len(results),
        "other": other,
        "rss_before": rss_before,
        "rss_after": rss_after,
    }
    print(
        f"  round {number}: sustainable {sustainable:.1f} req/s; at 2x: goodput {row['goodput']:.1f} req/s "
        f"({row['goodput'] / sustainable:.2f}), p99 admitted {row['p99_admitted']:.2f} s, p99 refused "
        f"{1000 * row['p99_refused']:.1f} ms, {len(refused)} of {len(results)} refused, {other} other "
        f"{dict(other_statuses)}; "
        f"RSS {rss_before:.0f} -> {rss_after:.0f} MB",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds-sustained", type=float, default=15.0)
    parser.add_argument("--seconds-overload", type=float, default=30.0)
    parser.add_argument("--requests-within-capacity", type=int, default=10_000)
    args = parser.parse_args()
    pairs = stsb_pairs("dev")
    with live_server() as server:
        batches = [pairs[start : start + 8] for start in range(0, len(pairs) - 8, 8)]
        requests = [
            prepare_post(server.url, "/similarity", {"pairs": [{"a": a, "b": b} for a, b in batch]})
            for batch in batches
        ]
        print(f"server pid {server.process.pid}, default settings; 8 STS-B dev pairs per request", flush=True)
        asyncio.run(closed_loop(server.url, requests, 16, 5.0))  # warm-up, unmeasured
        rows = [overload_round(server, requests, args, number) for number in range(1, args.rounds + 1)]
        single = [prepare_post(server.url, "/similarity", {"pairs": [{"a": a, "b": b}]}) for a, b in pairs]
        started = time.perf_counter()
        within = asyncio.run(_within_capacity(server.url, single, args.requests_within_capacity))
        seconds = time.perf_counter() - started
    failures = sum(status != 200 for status in within)
    print(
        f"  within capacity: {len(within)} one-pair requests at 32 concurrent in {seconds:.0f} s, {failures} failures"
    )
    print()

    def median_and_range(key: str, scale: float = 1.0, digits: int = 2) -> str:
        values = [row[key] * scale for row in rows]
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"

    for row in rows:
        row["share"] = row["goodput"] / row["sustainable"]
        row["rss_ratio"] = row["rss_after"] / row["rss_before"]

    print_table(
        ["measure (median of rounds, range)", "ours", "target"],
        [
            ["sustainable throughput, req/s (8 pairs each)", median_and_range("sustainable", 1, 1), ""],
            ["goodput at 2x load / sustainable", median_and_range("share"), "≥ 0.90"],
            ["p99 latency of admitted requests, s", median_and_range("p99_admitted"), "≤ 2"],
            ["p99 latency of refused (429) requests, ms", median_and_range("p99_refused", 1000, 1), "≤ 50"],
            ["requests neither 200 nor 429 at 2x load", str(sum(r["other"] for r in rows)), "0"],
            ["server RSS after / before the 2x load", median_and_range("rss_ratio"), "≤ 1.10"],
            [f"{len(within)} requests within capacity (32 concurrent): failures", str(failures), "0"],
        ],
    )


async def _within_capacity(base_url: str, requests: list[bytes], count: int) -> list[int]:
    connections = Connections(base_url)
    statuses: list[int] = []
    counter = iter(range(count))

    async def client() -> None:
        for k in counter:
            status, _ = await send(connections, requests[k % len(requests)])
            statuses.append(status)

    await asyncio.gather(*(client() for _ in range(32)))
    await connections.close()
    return statuses


if __name__ == "__main__":
    main()
