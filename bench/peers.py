"""The gateway beside its peers: LiteLLM's proxy and claude-code-router, in one run.

    bench/peers [--duration 4] [--rounds 2] [--only routatic,ccr,litellm] [--cache DIR]

Installs the peers once, at pinned versions, into a cache directory outside the repository
(`~/.cache/routatic-bench` unless `--cache` or ROUTATIC_BENCH_CACHE says otherwise): LiteLLM
from PyPI into its own virtualenv there, claude-code-router from npm into a folder there, run
with HOME pointed at the cache so the user's own `~/.claude-code-router` is never read or
written. A peer that cannot be installed is reported as such and the others are measured.

Then it starts the bench upstream (bench/upstream.py) and every gateway in front of it, all
pinned to one core like bench/run.py's proxy, and measures direct and every gateway with the
same load generators, taking turns round by round so that load from elsewhere on the machine
lands on all of them alike: wrk (concurrency 32) for unstreamed requests/s with p50/p99 and
for streams/s (20 deltas), bench/loadgen.py for time to first byte at concurrency 1. Every
figure is printed as a ratio to direct and to routatic-asgi, and routatic-asgi's against the
fastest peer with the targets. Loopback only; every wait is bounded; every process it starts
is stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bodies import message
from harness import Bench, translated_share
from peer_gateways import KEY, Gateway, gateway_for
from peer_report import Result, table, verdicts
from processes import cpu_seconds, free_port, stop_tree

READY_SECONDS = 120


# measuring


def start(bench: Bench, gateway: Gateway, url: str) -> subprocess.Popen[bytes]:
    log = (bench.workdir / f"{gateway.name}.log").open("ab")
    process = subprocess.Popen(
        [*bench.cpus("proxy"), *gateway.command],
        cwd=gateway.cwd or bench.workdir,
        env={**os.environ, **gateway.env},
        start_new_session=True,
        stdout=log,
        stderr=log,
    )
    log.close()
    bench.processes.append(process)
    _wait_serving(url, process, bench.workdir / f"{gateway.name}.log")
    return process


def _wait_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until one real request through the gateway answers 200 (LiteLLM takes a while)."""
    body = message("claude-bench-1", stream=False)
    headers = {"content-type": "application/json", "x-api-key": KEY}
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError("exited at start: " + " | ".join(tail))
        request = urllib.request.Request(url + "/v1/messages", body, headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"not serving after {READY_SECONDS} s")


@dataclass
class Contender:
    """Direct or a running gateway, and what was measured of it."""

    result: Result
    url: str
    pid: int | None


def measure(bench: Bench, contenders: list[Contender]) -> None:
    """Every figure of every contender, the contenders taking turns round by round (best of
    each kept): a burst of load on the machine then lands on one round of each, not on one
    gateway's whole figure."""
    plain, streamed = (
        message("claude-bench-1", stream=False),
        message("claude-bench-1", stream=True),
    )
    for contender in contenders:
        for body in (plain, streamed):
            bench.wrk(contender.url, body, seconds=1)  # warm-up
    for _ in range(bench.args.rounds):
        for contender in contenders:
            _round(bench, contender, plain, streamed)
    for contender in contenders:
        result = contender.result
        result.note = f"{result.errors} errors" if result.errors else ""
        ttfb = bench.loadgen(
            "ttfb", contender.url, streamed, "--requests", str(bench.args.requests)
        )
        result.ttfb_ms = ttfb["first_byte_p50_ms"]


def _round(bench: Bench, contender: Contender, plain: bytes, streamed: bytes) -> None:
    result, pid = contender.result, contender.pid
    before = cpu_seconds(pid) if pid else 0.0
    unstreamed = bench.wrk(contender.url, plain)
    cpu_ms = (cpu_seconds(pid) - before) * 1000 / max(unstreamed["requests"], 1) if pid else 0.0
    if unstreamed["rate"] > result.rate:
        result.rate, result.p50_ms, result.p99_ms = (
            unstreamed["rate"],
            unstreamed["p50_ms"],
            unstreamed["p99_ms"],
        )
        result.cpu_ms = cpu_ms
    streams = bench.wrk(contender.url, streamed)
    result.streams = max(result.streams, streams["rate"])
    result.errors += int(unstreamed["errors"] + streams["errors"])


def run(bench: Bench, only: set[str], cache: Path) -> None:
    upstream = bench.start_upstream()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load}; gateways pinned to one core: {bench.pin}")
    contenders = [Contender(Result("direct", "-"), upstream, None)]
    processes = []
    try:
        for name in ("routatic", "ccr", "litellm"):
            if name in only:
                started = _started(bench, name, upstream, cache)
                if started is not None:
                    contenders.append(started[0])
                    processes.append(started[1])
        print("measuring " + ", ".join(c.result.name for c in contenders), flush=True)
        measure(bench, contenders)
        ours = next((c for c in contenders if c.result.name == "routatic-asgi"), None)
        shares = translated_share(bench, ours.url) if ours else {}
    finally:
        for process in processes:
            stop_tree(process)
    results = [c.result for c in contenders]
    print()
    print("\n".join(table(results)))
    print()
    print("\n".join(verdicts(results, shares)))
    if bench.args.json:
        bench.args.json.write_text(json.dumps([vars(r) for r in results], indent=2))


def _started(
    bench: Bench, name: str, upstream: str, cache: Path
) -> tuple[Contender, subprocess.Popen[bytes]] | None:
    """The gateway `name` installed, configured and serving; None (said why) if it cannot."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        gateway = gateway_for(name, bench.workdir, upstream, port, cache)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"{name}: not installed here ({exc}); measuring the others", flush=True)
        return None
    try:
        process = start(bench, gateway, url)
    except RuntimeError as exc:
        print(f"{gateway.name} {gateway.version}: did not start ({exc})", flush=True)
        return None
    return Contender(Result(gateway.name, gateway.version), url, process.pid), process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="wrk runs per figure; best kept")
    parser.add_argument("--requests", type=int, default=1000, help="sequential TTFB requests")
    parser.add_argument("--only", default="routatic,ccr,litellm", help="gateways to measure")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--json", type=Path, help="also write the results here")
    default_cache = Path.home() / ".cache" / "routatic-bench"
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("ROUTATIC_BENCH_CACHE", default_cache)),
        help="where the peers are installed (default ~/.cache/routatic-bench)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench needs wrk: apt-get install -y wrk")
    args.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="routatic-peers-") as workdir:
        bench = Bench(args, Path(workdir))
        try:
            run(bench, set(args.only.split(",")), args.cache)
        finally:
            bench.stop_all()


if __name__ == "__main__":
    main()
