"""Starts the real ``simlink serve`` command on 127.0.0.1 and a free port, and stops it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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


@contextmanager
def running_server(
    env: Mapping[str, str] | None = None, args: list[str] | None = None, timeout: float = 120
) -> Iterator[str]:
    """Yields the base URL of a live server; its output is shown if it fails to start."""
    port = free_port()
    environment = {**os.environ, **(env or {})}
    command = [*simlink_command(), "serve", "--host", "127.0.0.1", "--port", str(port), *(args or [])]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in time")
            time.sleep(0.25)
        yield base_url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()


def run_to_exit(
    args: list[str], env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Runs ``simlink ARGS`` to completion (for start-up failures)."""
    return subprocess.run(
        [*simlink_command(), *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
