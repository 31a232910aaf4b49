"""Starts the real ``simlink serve`` command on 127.0.0.1 and a free port, and stops it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def simlink_command() -> list[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).with_name("simlink")
    return [str(script)] if script.exists() else [shutil.which("simlink") or "simlink"]


@dataclass
class LiveServer:
    """A started ``simlink serve``: its base URL, its process and the file its output goes to."""

    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def live_server(
    env: Mapping[str, str] | None = None, args: list[str] | None = None, timeout: float = 120
) -> Iterator[LiveServer]:
    """Starts a server and waits until ``/health`` answers; stops it (SIGINT) afterwards if it still
    runs. Its output goes to a file, not a pipe, so a server that logs much never blocks on it."""
    port = free_port()
    environment = {**os.environ, **(env or {})}
    command = [*simlink_command(), "serve", "--host", "127.0.0.1", "--port", str(port), *(args or [])]
    with tempfile.TemporaryDirectory(prefix="simlink-server-") as folder:
        log = Path(folder) / "server.log"
        with log.open("w") as stream:
            process = subprocess.Popen(command, env=environment, stdout=stream, stderr=subprocess.STDOUT, text=True)
        server = LiveServer(f"http://127.0.0.1:{port}", process, log)
        try:
            _wait_until_healthy(server, timeout)
            yield server
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_until_healthy(server: LiveServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not become healthy in time:\n{server.output()}")
        time.sleep(0.25)


@contextmanager
def running_server(
    env: Mapping[str, str] | None = None, args: list[str] | None = None, timeout: float = 120
) -> Iterator[str]:
    """Yields the base URL of a live server (see :func:`live_server`)."""
    with live_server(env, args, timeout) as server:
        yield server.url


def run_to_exit(
    args: list[str], env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Runs ``simlink ARGS`` to completion (for start-up failures)."""
    return subprocess.run(
        [*simlink_command(), *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
