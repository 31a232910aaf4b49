"""Requests per second through nginx in front of 1 vs N simlink replicas (docker-compose.yml's "scale" profile).

Needs Docker with Compose v2 and the image built; run from the repository root, with the same
variables as ``docker compose`` (e.g. ``NGINX_IMAGE=local/nginx``). For each replica count, in
alternating rounds (this machine's speed drifts), the script scales ``simlink-replica`` with
``docker compose --profile scale up``, waits until every replica is healthy and nginx's DNS cache
(10 s) has caught up, checks that a warm-up reaches every replica, then sends a fixed number of
``POST /similarity`` requests (STS-B dev pairs, ``--pairs`` per request) from ``--clients``
concurrent keep-alive clients to nginx, and reads each replica's request counter from its
``/metrics`` (inside the container, with ``docker exec``) before and after. Every answer must be 200.

Other work on the machine skews the figures, so before each measurement the script waits until
the CPU used by others (the host's busy CPU minus this process's, the compose project's
containers' and Docker's own, over 3 s) is below ``--max-others`` cores, and prints it with the 1-minute load average.

    python -m bench.replicas --replicas 1 2 [--rounds 5] [--requests 300] [--clients 8] [--pairs 8]

It stops the scale profile's containers (``nginx``, ``simlink-replica``) when done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import print_table, stsb_pairs
from bench.load_client import post_all, prepare_post

REPO = Path(__file__).resolve().parents[1]
SERVICE = "simlink-replica"
PROFILE = ["--profile", "scale"]
COUNTER = re.compile(r'^simlink_http_requests_total\{route="/similarity",status="200"\} (\S+)$', re.MULTILINE)
METRICS_IN_CONTAINER = (
    "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics', timeout=10).read().decode())"
)
DNS_CACHE_S = 12
"""docker/nginx.conf re-resolves the replicas' name every 10 s; wait that long after a change."""


def compose(*args: str) -> str:
    """Runs ``docker compose --profile scale ARGS`` in the repository and returns its output; raises
    with compose's own message on failure."""
    done = subprocess.run(["docker", "compose", *PROFILE, *args], cwd=REPO, text=True, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"docker compose {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def replica_ids() -> list[str]:
    """The running replicas' container ids, in a stable order."""
    return sorted(compose("ps", "-q", SERVICE).split())


def docker_inspect(ids: list[str]) -> list[dict]:
    out = subprocess.run(["docker", "inspect", *ids], check=True, text=True, capture_output=True).stdout
    return json.loads(out)


def scale_to(replicas: int, timeout_s: float = 300) -> float:
    """Scales the replicas to ``replicas`` behind nginx; returns the seconds until all were healthy."""
    started = time.perf_counter()
    compose("up", "-d", "--no-recreate", "--scale", f"{SERVICE}={replicas}", "nginx")
    while True:
        ids = replica_ids()
        states = [c["State"].get("Health", {}).get("Status") for c in docker_inspect(ids)] if ids else []
        if len(ids) == replicas and all(state == "healthy" for state in states):
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"replicas not healthy after {timeout_s:.0f} s: {states}")
        time.sleep(1)


def request_counts(ids: list[str]) -> dict[str, float]:
    """Each replica's count of /similarity requests answered 200, from its /metrics."""
    counts = {}
    for container in ids:
        text = subprocess.run(
            ["docker", "exec", container, "python3", "-c", METRICS_IN_CONTAINER],
            check=True,
            text=True,
            capture_output=True,
        ).stdout
        found = COUNTER.search(text)
        counts[container] = float(found.group(1)) if found else 0.0
    return counts


def own_cgroup_ns(ids: list[str]) -> int | None:
    """CPU nanoseconds used so far by the containers ``ids`` (cgroup v1 or v2), None if unreadable."""
    total = 0
    for container in ids:
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container}/cpuacct.usage")
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{container}.scope/cpu.stat")
        if v1.exists():
            total += int(v1.read_text())
        elif v2.exists():
            usage = next(line for line in v2.read_text().splitlines() if line.startswith("usage_usec"))
            total += int(usage.split()[1]) * 1000
        else:
            return None
    return total


def docker_engine_s() -> float:
    """CPU seconds used so far by Docker's own processes (dockerd, containerd and its shims), which
    work for the containers (health checks, exec, logs)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().rsplit(")", 1)
        except OSError:  # the process ended
            continue
        if name.split("(", 1)[1].startswith(("dockerd", "containerd")):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def host_busy_s() -> float:
    """CPU seconds the host has been busy (not idle, not waiting for I/O), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def others_cores(window_s: float = 3.0) -> float | None:
    """Cores busy over ``window_s`` with work other than this process, the project's containers and
    Docker's own processes."""
    containers = [c.strip() for c in compose("ps", "-aq").split()]
    full_ids = [c["Id"] for c in docker_inspect(containers)] if containers else []
    busy, own, engine, mine = host_busy_s(), own_cgroup_ns(full_ids), docker_engine_s(), time.process_time()
    time.sleep(window_s)
    busy_after, own_after = host_busy_s(), own_cgroup_ns(full_ids)
    engine_after, mine_after = docker_engine_s(), time.process_time()
    if own is None or own_after is None:
        return None
    ours = (own_after - own) / 1e9 + (engine_after - engine) + (mine_after - mine)
    return max(0.0, (busy_after - busy) - ours) / window_s


def load_1min() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_for_quiet(max_others: float, max_wait_s: float) -> str:
    """Waits until others use less than ``max_others`` cores (at most ``max_wait_s``); describes the load."""
    deadline = time.monotonic() + max_wait_s
    while True:
        others = others_cores()
        if others is None or others < max_others or time.monotonic() > deadline:
            break
        print(f"    others use {others:.2f} cores; waiting", flush=True)
        time.sleep(10)
    used = "unknown (container cgroups unreadable)" if others is None else f"{others:.2f} cores"
    return f"others {used}, load {load_1min():.2f}"


@dataclass
class Measurement:
    rate: float
    per_replica: list[float]
    load: str


@dataclass
class Results:
    rounds: dict[int, list[Measurement]] = field(default_factory=dict)
    healthy_s: dict[int, list[float]] = field(default_factory=dict)


def measure(url: str, requests: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Requests/s through nginx, and how many of them each replica answered."""
    ids = replica_ids()
    before = request_counts(ids)
    started = time.perf_counter()
    answers = asyncio.run(post_all(url, requests, clients))
    elapsed = time.perf_counter() - started
    after = request_counts(ids)
    assert all("results" in answer for answer in answers)
    return len(requests) / elapsed, [after[c] - before[c] for c in ids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    parser.add_argument(
        "--clients",
        type=int,
        default=8,
        help="concurrent clients; more than 8 of 8 pairs overrun one replica's default queue budget (429)",
    )
    parser.add_argument("--pairs", type=int, default=8, help="STS-B pairs per request")
    parser.add_argument("--max-others", type=float, default=0.5, help="most cores others may use when measuring")
    parser.add_argument("--max-wait", type=float, default=900, help="seconds to wait for that at most")
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('SIMLINK_LB_PUBLISH_PORT', '8080')}")
    args = parser.parse_args()

    pairs = stsb_pairs("dev")
    bodies = [
        {"pairs": [{"a": a, "b": b} for a, b in pairs[start : start + args.pairs]]}
        for start in range(0, len(pairs) - args.pairs + 1, args.pairs)
    ]
    requests = [prepare_post(args.url, "/similarity", bodies[i % len(bodies)]) for i in range(args.requests)]
    warm_up = requests[: 4 * args.clients]
    print(
        f"{args.requests} POST /similarity of {args.pairs} STS-B dev pairs per measurement, {args.clients} "
        f"clients, through nginx at {args.url}; {os.cpu_count()} cores; 1-minute load {load_1min():.2f}",
        flush=True,
    )

    results = Results()
    running = len(replica_ids())
    try:
        for round_number in range(1, args.rounds + 1):
            # Alternate the order, so that neither count always runs first after a quiet spell.
            order = args.replicas if round_number % 2 else list(reversed(args.replicas))
            for replicas in order:
                healthy = scale_to(replicas)
                if replicas > running:  # new replicas started: how long until they all answered /health
                    results.healthy_s.setdefault(replicas, []).append(healthy)
                running = replicas
                time.sleep(DNS_CACHE_S)
                _, reached = measure(args.url, warm_up, args.clients)
                if sum(count > 0 for count in reached) < replicas:
                    print(f"    warning: the warm-up reached only {reached} of {replicas} replicas", flush=True)
                load = wait_for_quiet(args.max_others, args.max_wait)
                rate, per_replica = measure(args.url, requests, args.clients)
                after = f"load after {load_1min():.2f}"
                results.rounds.setdefault(replicas, []).append(Measurement(rate, per_replica, f"{load}; {after}"))
                counts = "/".join(f"{count:.0f}" for count in per_replica)
                print(
                    f"  round {round_number}, {replicas} replica(s): {rate:6.1f} requests/s, per replica {counts} "
                    f"(all healthy {healthy:.0f} s after 'up'; {load}; {after})",
                    flush=True,
                )
    finally:
        compose("rm", "--stop", "--force", "nginx", SERVICE)

    base = statistics.median(m.rate for m in results.rounds[args.replicas[0]])
    rows = []
    for replicas, measurements in results.rounds.items():
        rates = [m.rate for m in measurements]
        shares = [sum(m.per_replica[k] for m in measurements) for k in range(replicas)]
        rows.append(
            (
                replicas,
                f"{statistics.median(rates):.1f}",
                f"{min(rates):.1f}–{max(rates):.1f}",
                f"{statistics.median(rates) / base:.2f}",
                " / ".join(f"{share:.0f}" for share in shares),
                " ".join(f"{seconds:.0f}" for seconds in results.healthy_s.get(replicas, [])),
            )
        )
    print()
    print_table(
        [
            f"replicas behind nginx ({args.rounds} rounds)",
            "requests/s, median",
            "range",
            f"vs {args.replicas[0]}",
            "requests answered by each replica, all rounds",
            "seconds from 'up' to all healthy, when replicas were added",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
