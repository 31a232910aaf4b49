"""Operating a live server: abandoned work is not computed, SIGTERM drains, the schema holds under fuzzing."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from support.server import LiveServer, live_server
from tests.conftest import TinyLinker

pytestmark = pytest.mark.e2e
# One encoder worker, so that work queues behind a long batch; a budget large enough to admit it.
QUEUING = {
    "SIMLINK_DTYPE": "fp32",  # LONG is sized to take seconds in fp32; bf16 would finish it within the grace period
    "SIMLINK_ENCODER_WORKERS": "1",
    "SIMLINK_QUEUE_BUDGET_TOKENS": "100000",
}
LONG = {"pairs": [{"a": "word " * 100, "b": "other words " * 50}] * 64}  # 64 x 2 x 102 tokens: seconds of work
SMALL = {"pairs": [{"a": "A man is playing a guitar.", "b": "A person plays the guitar."}]}


def metric(server: LiveServer, name: str) -> float:
    """The value of one sample of ``/metrics`` (0 when absent)."""
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def send_and_hang_up(server: LiveServer, body: dict, after_s: float) -> None:
    """Sends a POST on a raw socket and closes it after ``after_s`` seconds, before any answer."""
    port = int(server.url.rsplit(":", 1)[1])
    payload = json.dumps(body).encode()
    request = (
        f"POST /similarity HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(request)
        time.sleep(after_s)


def test_requests_whose_clients_left_are_never_computed() -> None:
    with live_server(QUEUING) as server, ThreadPoolExecutor(4) as pool:
        long_request = pool.submit(httpx.post, f"{server.url}/similarity", json=LONG, timeout=300)
        time.sleep(0.5)  # the long batch is running; what comes next waits behind it
        hung_up = list(pool.map(lambda _: send_and_hang_up(server, SMALL, 0.2), range(3)))
        assert long_request.result().status_code == 200
        time.sleep(0.5)
        assert len(hung_up) == 3
        assert metric(server, 'simlink_cancelled_requests_total{reason="client_disconnected"}') == 3
        assert metric(server, 'simlink_dropped_items_total{engine="encoder"}') == 3 * 2  # two texts each
        assert metric(server, 'simlink_http_requests_total{route="/similarity",status="499"}') == 3
        assert metric(server, 'simlink_http_requests_total{route="/similarity",status="200"}') == 1


def test_sigterm_lets_running_work_finish_fails_the_queue_after_the_grace_period_and_exits() -> None:
    env = {**QUEUING, "SIMLINK_SHUTDOWN_GRACE_S": "0.3"}
    with live_server(env) as server, ThreadPoolExecutor(4) as pool:
        running = pool.submit(httpx.post, f"{server.url}/similarity", json=LONG, timeout=300)
        time.sleep(0.5)
        queued = [pool.submit(httpx.post, f"{server.url}/similarity", json=SMALL, timeout=300) for _ in range(2)]
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert running.result().status_code == 200
        for answer in (future.result() for future in queued):
            assert answer.status_code == 503 and "shutting down" in answer.json()["message"]
        with pytest.raises(httpx.TransportError):  # no new connections once draining
            httpx.post(f"{server.url}/similarity", json=SMALL, timeout=5)
        # uvicorn re-raises the signal it caught once it has shut down, as a process stopped by it should
        assert server.process.wait(timeout=120) in (0, -signal.SIGTERM)
        print(f"exited {time.monotonic() - started:.1f} s after SIGTERM")  # logged, not asserted
        assert "draining" in server.output()


def test_json_access_log_lines_carry_the_request_id_and_stage_times() -> None:
    with live_server({"SIMLINK_LOG_FORMAT": "json"}) as server:
        response = httpx.post(f"{server.url}/similarity", json=SMALL, headers={"x-request-id": "abc-123"})
        assert response.status_code == 200
        time.sleep(0.2)
        lines = [json.loads(line) for line in server.output().splitlines() if line.startswith('{"time"')]
    (line,) = [line for line in lines if line["request_id"] == "abc-123"]
    assert line["path"] == "/similarity" and line["status"] == 200 and line["encode_ms"] >= 0
    assert "key" not in json.dumps(line).lower()


@pytest.fixture(scope="module")
def fuzzed_server(tiny_linker: TinyLinker) -> LiveServer:
    env = {"SIMLINK_LINK_MODEL": str(tiny_linker.model_dir), "SIMLINK_LINK_INDEX": str(tiny_linker.index_dir)}
    with live_server({**env, "SIMLINK_MAX_PAIRS": "8", "SIMLINK_MAX_CANDIDATES": "20"}) as server:
        yield server


def test_schemathesis_finds_no_failure_with_every_check(fuzzed_server: LiveServer, tmp_path: Path) -> None:
    schemathesis = shutil.which("st", path=str(Path(sys.executable).parent))
    assert schemathesis, "schemathesis is a test dependency (pip install -e '.[test]')"
    command = [
        schemathesis,
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{fuzzed_server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "50",
        "--workers",
        "1",
        "--seed",
        "1",
    ]
    # run from a scratch folder: schemathesis keeps a cache of its runs in the working directory
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_overload_keeps_small_requests_flowing_on_a_live_server() -> None:
    env = {"SIMLINK_QUEUE_BUDGET_TOKENS": "2000"}
    with live_server(env) as server, ThreadPoolExecutor(8) as pool:
        big = {"pairs": [{"a": "word " * 100, "b": "other words " * 50}] * 8}  # about 1,600 tokens
        answers = list(pool.map(lambda _: httpx.post(f"{server.url}/similarity", json=big, timeout=300), range(6)))
        small = httpx.post(f"{server.url}/similarity", json=SMALL, timeout=60)
    statuses = [answer.status_code for answer in answers]
    assert 429 in statuses and set(statuses) <= {200, 429} and small.status_code == 200
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code == 429)
