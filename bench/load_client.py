"""A lean HTTP/1.1 load generator: keep-alive connections sending prepared JSON POSTs.

The benchmarks run the clients on the same few cores as the server they measure, so every
millisecond a client spends building and parsing requests is taken from the server. A
general-purpose client (httpx) costs about 2.5 ms of CPU per request here; this one sends bytes
prepared in advance and reads each response by its Content-Length, so the cores go to the server.
Each response's status is checked and its JSON body is parsed and returned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from urllib.parse import urlsplit


class ResponseError(RuntimeError):
    """The server answered with a status other than 200."""


class BusyError(ResponseError):
    """The server answered 429; ``retry_after`` is its Retry-After in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def prepare_post(base_url: str, path: str, body: dict) -> bytes:
    """The raw bytes of ``POST path`` with ``body`` as JSON, for a keep-alive connection."""
    payload = json.dumps(body).encode()
    host = urlsplit(base_url).netloc
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> dict:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    length = int(next(v for k, v in headers.items() if k.strip().lower() == "content-length"))
    body = await reader.readexactly(length)
    if status == 429:
        retry_after = next((v for k, v in headers.items() if k.strip().lower() == "retry-after"), "1")
        raise BusyError(f"HTTP 429: {body[:300]!r}", float(retry_after))
    if status != 200:
        raise ResponseError(f"HTTP {status}: {body[:300]!r}")
    return json.loads(body)


async def post_all(
    base_url: str,
    requests: Sequence[bytes],
    clients: int,
    latencies: list[float] | None = None,
    retry_busy: bool = False,
) -> list[dict]:
    """Sends ``requests`` over ``clients`` concurrent keep-alive connections, each taking the next
    unsent request as soon as its previous answer is in; returns the parsed answers in order.
    With ``latencies``, each request's seconds from send to answer are appended to it. With
    ``retry_busy``, a 429 is waited out as its Retry-After says and the request sent again, as a
    well-behaved client does (the wait counts in the time); otherwise it raises :class:`BusyError`."""
    address = urlsplit(base_url)
    answers: list[dict | None] = [None] * len(requests)
    next_index = iter(range(len(requests)))

    async def client() -> None:
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        try:
            for i in next_index:
                sent = time.perf_counter()
                while answers[i] is None:
                    writer.write(requests[i])
                    try:
                        answers[i] = await _read_response(reader)
                    except BusyError as busy:
                        if not retry_busy:
                            raise
                        await asyncio.sleep(busy.retry_after)
                if latencies is not None:
                    latencies.append(time.perf_counter() - sent)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(client() for _ in range(clients)))
    return answers  # type: ignore[return-value]
