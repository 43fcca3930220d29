"""The overhead benchmark: the same load direct to a fast upstream and through the proxy.

    .venv/bin/python bench/run.py [--duration 5] [--only unstreamed,streams,...] [--json FILE]

Runs three kinds of processes: the upstream (bench/upstream.py), the proxy (`routatic-asgi
serve` with a bench config) and the load generators (wrk for throughput, bench/loadgen.py for
time to first byte and held streams). With two or more cores the proxy is pinned to core 0
and everything else to core 1, so "one worker" means one core. Each figure is printed with
its ratio to going direct and to the target it must meet. Loopback only; every process it
starts is stopped by pid; every load runs for a bounded time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bodies import claude_code_request, message
from harness import Bench, Figure, translated_share
from processes import HERE, PYTHON, rss_mb

# the figures of the performance issue


# The targets, as ratios to going direct in the same run. Direct, one core of Python answers
# some 60,000 requests/s; 3,000 requests/s and 1,500 streams/s through the proxy were the
# targets on the project's machine. CPU per request is compared with the upstream's own CPU
# per request: the same Python on the same core, doing the least an HTTP server can.
UNSTREAMED_SHARE = 0.05
STREAMS_SHARE = 0.025
CPU_TIMES_UPSTREAM = 20.0
# Translated streams/s at least this share of passthrough streams/s.
TRANSLATED_SHARE = 0.7
# Skipping an open target costs at most this share of serving a whole request in-process.
SKIP_SHARE = 0.15


def unstreamed(bench: Bench, upstream: str, proxy: str, pid: int, label: str = "") -> float:
    body = message("claude-bench-1", stream=False)
    direct, upstream_cpu = bench.throughput(upstream, body, bench.upstream_pid)
    through, cpu_ms = bench.throughput(proxy, body, pid)
    errors = f"{int(through['errors'])} errors" if through["errors"] else ""
    rate = Figure(
        f"unstreamed req/s{label}", "req/s", through["rate"], direct["rate"], UNSTREAMED_SHARE
    )
    rate.note = errors
    bench.add(rate)
    bench.add(Figure(f"unstreamed p50 latency{label}", "ms", through["p50_ms"], direct["p50_ms"]))
    bench.add(Figure(f"unstreamed p99 latency{label}", "ms", through["p99_ms"], direct["p99_ms"]))
    cpu = Figure(f"proxy CPU per request{label}", "ms", cpu_ms, upstream_cpu)
    cpu.target, cpu.higher_is_better = CPU_TIMES_UPSTREAM, False
    cpu.note = "direct: the upstream's CPU per request"
    bench.add(cpu)
    return float(through["rate"])


def streams(bench: Bench, upstream: str, proxy: str, pid: int, label: str = "") -> float:
    body = message("claude-bench-1", stream=True)
    direct, upstream_cpu = bench.throughput(upstream, body, bench.upstream_pid)
    through, cpu_ms = bench.throughput(proxy, body, pid)
    errors = f"{int(through['errors'])} errors" if through["errors"] else ""
    rate = Figure(
        f"streams/s, 20 deltas{label}", "streams/s", through["rate"], direct["rate"], STREAMS_SHARE
    )
    rate.note = errors
    bench.add(rate)
    bench.add(Figure(f"proxy CPU per stream{label}", "ms", cpu_ms, upstream_cpu))
    return float(through["rate"])


def ttfb(bench: Bench, upstream: str, proxy: str) -> None:
    body = message("claude-bench-1", stream=True)
    requests = str(bench.args.requests)
    direct = bench.loadgen("ttfb", upstream, body, "--requests", requests)
    through = bench.loadgen("ttfb", proxy, body, "--requests", requests)
    added = through["first_byte_p50_ms"] - direct["first_byte_p50_ms"]
    bench.add(
        Figure(
            "TTFB p50, concurrency 1",
            "ms",
            through["first_byte_p50_ms"],
            direct["first_byte_p50_ms"],
        )
    )
    bench.add(Figure("TTFB p50 added over direct", "ms", added, None, 0.5, False))
    bench.add(
        Figure(
            "first content p50 added",
            "ms",
            through["first_content_p50_ms"] - direct["first_content_p50_ms"],
        )
    )


def large_request(bench: Bench, upstream: str, proxy: str) -> None:
    body = claude_code_request()
    requests = str(max(200, bench.args.requests // 4))
    direct = bench.loadgen("ttfb", upstream, body, "--requests", requests)
    through = bench.loadgen("ttfb", proxy, body, "--requests", requests)
    added = through["total_p50_ms"] - direct["total_p50_ms"]
    bench.add(Figure("200 KB request p50", "ms", through["total_p50_ms"], direct["total_p50_ms"]))
    bench.add(Figure("200 KB request p50 added over direct", "ms", added, None, 1.0, False))


def translated(bench: Bench, proxy: str) -> None:
    for name, share in translated_share(bench, proxy).items():
        note = "" if share is not None else "not served"
        bench.add(Figure(f"{name}, share", "share", share, None, TRANSLATED_SHARE, note=note))


def held_streams(bench: Bench, proxy: str, pid: int) -> None:
    body = message("bench-hold", stream=True)
    before = rss_mb(pid)
    result = bench.loadgen(
        "hold", proxy, body, "--streams", str(bench.args.streams), "--pids", str(pid)
    )
    note = f"{before:.0f} MB before; {result['open_at_sample']} open at sample"
    note += f" after {result['open_seconds']:.1f} s, {result['errors']} errors"
    note += f" {result['first_error']}" if result["errors"] else ""
    bench.add(
        Figure(
            f"{bench.args.streams} open streams: proxy RSS",
            "MB",
            result["rss_mb"],
            None,
            250,
            False,
            note,
        )
    )


def breaker_skip(bench: Bench) -> None:
    command = [*bench.cpus("proxy"), PYTHON, str(HERE / "skip.py")]
    output = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if output.returncode != 0:
        last = (output.stderr.strip().splitlines() or ["failed"])[-1]
        bench.add(Figure("breaker-open skip", "µs", None, note=last))
        return
    result = json.loads(output.stdout.splitlines()[-1])
    skip = Figure("breaker-open skip, whole chain", "µs", result["skip_us"], result["request_us"])
    skip.target, skip.higher_is_better = SKIP_SHARE, False
    skip.note = "direct: one whole request in the same process"
    bench.add(skip)
    bench.add(Figure("  the breaker layer alone", "µs", result["breaker_layer_us"]))


SECTIONS = [
    "unstreamed",
    "streams",
    "ttfb",
    "large",
    "translated",
    "hold",
    "skip",
    "workers",
    "replicas",
    "telemetry",
]


def run(bench: Bench) -> None:
    only = set(bench.args.only.split(",")) if bench.args.only else set(SECTIONS)
    upstream = bench.start_upstream()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load}; proxy pinned to its own core: {bench.pin}")
    print(f"{'figure':<44} {'proxy':>10} {'unit':<9} {'direct':>10} {'/direct':>8}", end="")
    print(f" {'target':>10}")
    one_worker = None
    with bench.proxy(upstream) as (proxy, pid):
        if "unstreamed" in only:
            one_worker = unstreamed(bench, upstream, proxy, pid)
        if "streams" in only:
            streams(bench, upstream, proxy, pid)
        if "ttfb" in only:
            ttfb(bench, upstream, proxy)
        if "large" in only:
            large_request(bench, upstream, proxy)
        if "translated" in only:
            translated(bench, proxy)
        if "hold" in only:
            held_streams(bench, proxy, pid)
    if "skip" in only:
        breaker_skip(bench)
    if "workers" in only and (os.cpu_count() or 1) >= 2:
        with bench.proxy(upstream, workers=2) as (proxy, pid):
            two = unstreamed(bench, upstream, proxy, pid, " (2 workers)")
            streams(bench, upstream, proxy, pid, " (2 workers)")
        if one_worker:
            bench.add(Figure("  2 workers over 1 worker, req/s", "x", two / one_worker))
    if "telemetry" in only:
        from telemetry_cost import telemetry

        telemetry(bench, upstream)
    if "replicas" in only and (os.cpu_count() or 1) >= 2:
        from scale import replicas

        replicas(bench, upstream, one_worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per figure; best kept")
    parser.add_argument("--requests", type=int, default=2000, help="sequential TTFB requests")
    parser.add_argument("--streams", type=int, default=1000, help="streams held open at once")
    parser.add_argument("--only", help=f"comma-separated sections of: {','.join(SECTIONS)}")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench needs wrk: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="routatic-bench-") as workdir:
        bench = Bench(args, Path(workdir))
        try:
            run(bench)
        finally:
            bench.stop_all()
    if args.json:
        args.json.write_text(json.dumps([vars(f) for f in bench.figures], indent=2))


if __name__ == "__main__":
    main()
