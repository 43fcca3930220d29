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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from run import (
    PYTHON,
    REPO,
    Bench,
    _free_port,
    _stop,
    _tree,
    cpu_seconds,
    message,
    translated_share,
)

LITELLM_VERSION = "1.106.12"
CCR_PACKAGE = "@musistudio/claude-code-router"
CCR_VERSION = "2.0.0"
KEY = "sk-bench-00000000000000000000000000000000"  # LiteLLM's master key; others ignore it
INSTALL_SECONDS = 1200
READY_SECONDS = 120

# The targets of the comparison: routatic-asgi against the fastest peer in the same run.
PEER_MULTIPLE = 2.5
TTFB_ADDED_MS = 0.5
TRANSLATED_SHARE = 0.7


@dataclass
class Gateway:
    name: str
    version: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass
class Result:
    name: str
    version: str
    rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_ms: float = 0.0
    streams: float = 0.0
    ttfb_ms: float = 0.0
    errors: int = 0
    note: str = ""


# installing the peers, once


def install_litellm(cache: Path) -> Path:
    """LiteLLM's `litellm` command in its own virtualenv under `cache`."""
    venv = cache / f"litellm-{LITELLM_VERSION}"
    command = venv / "bin" / "litellm"
    if (venv / ".installed").exists() and command.exists():
        return command
    base = getattr(sys, "_base_executable", PYTHON)
    _run([base, "-m", "venv", str(venv)], "making LiteLLM's virtualenv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run([*pip, f"litellm[proxy]=={LITELLM_VERSION}"], "pip install litellm[proxy]")
    (venv / ".installed").touch()
    return command


def install_ccr(cache: Path) -> Path:
    """claude-code-router's `cli.js` installed from npm under `cache`."""
    folder = cache / f"ccr-{CCR_VERSION}"
    cli = folder / "node_modules" / CCR_PACKAGE / "dist" / "cli.js"
    if (folder / ".installed").exists() and cli.exists():
        return cli
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise RuntimeError("needs node and npm")
    folder.mkdir(parents=True, exist_ok=True)
    npm = ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund"]
    _run([*npm, f"{CCR_PACKAGE}@{CCR_VERSION}"], "npm install claude-code-router")
    (folder / ".installed").touch()
    return cli


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_SECONDS)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeError(f"{what} failed: {last}")


# each gateway's configuration, in the run's work directory


def routatic(workdir: Path, upstream: str, port: int) -> Gateway:
    config = workdir / "routatic.yaml"
    config.write_text(
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
        f'providers:\n  fast: {{protocol: anthropic, base_url: "{upstream}", auth: passthrough}}\n'
        f'  oai: {{protocol: openai, base_url: "{upstream}/v1", auth: none}}\n'
        'routes:\n  - {match: bench-oai, chain: ["oai/claude-bench-1"]}\n'
        '  - {match: "*", chain: ["fast/{model}"]}\n'
    )
    serve = [PYTHON, "-m", "routatic_asgi.cli", "serve", "--config", str(config)]
    version = _git_version()
    return Gateway(
        "routatic-asgi",
        version,
        [*serve, "--log-level", "warning"],
        {"PYTHONPATH": str(REPO)},
        REPO,
    )


def ccr(cli: Path, workdir: Path, upstream: str, port: int) -> Gateway:
    home = workdir / "ccr-home"
    (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
    provider = {
        "name": "bench",
        "api_base_url": f"{upstream}/v1/messages",
        "api_key": KEY,
        "models": ["claude-bench-1"],
        "transformer": {"use": ["Anthropic"]},  # Anthropic in, Anthropic out: passthrough
    }
    config = {
        "LOG": False,
        "HOST": "127.0.0.1",
        "PORT": port,
        "NON_INTERACTIVE_MODE": True,
        "Providers": [provider],
        "Router": {"default": "bench,claude-bench-1"},
    }
    (home / ".claude-code-router" / "config.json").write_text(json.dumps(config))
    return Gateway(
        "claude-code-router", CCR_VERSION, ["node", str(cli), "start"], {"HOME": str(home)}
    )


def litellm(command: Path, workdir: Path, upstream: str, port: int) -> Gateway:
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: claude-bench-1\n"
        f'    litellm_params: {{model: anthropic/claude-bench-1, api_base: "{upstream}", '
        f"api_key: {KEY}}}\n"
        "litellm_settings: {telemetry: false}\n"
        f"general_settings: {{master_key: {KEY}}}\n"
    )
    serve = [str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    # The model price list ships with the package: no fetch at start.
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    return Gateway("litellm", LITELLM_VERSION, [*serve, "--num_workers", "1"], env, workdir)


def _git_version() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "?"


# measuring


def start(bench: Bench, gateway: Gateway, url: str) -> subprocess.Popen[bytes]:
    log = (bench.workdir / f"{gateway.name}.log").open("ab")
    process = subprocess.Popen(
        [*bench._cpus("proxy"), *gateway.command],
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


def stop_tree(process: subprocess.Popen[bytes]) -> None:
    """Stop a gateway and any workers it forked, each by pid."""
    children = [pid for pid in _tree(process.pid) if pid != process.pid]
    _stop(process)
    for pid in children:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            continue


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


# the report


def table(results: list[Result]) -> list[str]:
    direct, ours = results[0], next((r for r in results if r.name == "routatic-asgi"), None)

    def times(value: float, base: float) -> str:
        return f"{value / base:.3f}x" if base else "-"

    lines = [
        f"{'':<20} {'version':<9} {'req/s':>8} {'/direct':>8} {'/ours':>6} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'CPU ms':>7} {'streams/s':>9} {'/direct':>8} {'/ours':>6} "
        f"{'TTFB ms':>8} {'+direct':>8}"
    ]
    for r in results:
        rate_ours = times(r.rate, ours.rate)[:-3] + "x" if ours and ours.rate else "-"
        streams_ours = times(r.streams, ours.streams)[:-3] + "x" if ours and ours.streams else "-"
        added = "" if r is direct else f"{r.ttfb_ms - direct.ttfb_ms:+.3f}"
        cpu = f"{r.cpu_ms:.3f}" if r.cpu_ms else "-"
        lines.append(
            f"{r.name:<20} {r.version:<9} {r.rate:>8,.0f} {times(r.rate, direct.rate):>8} "
            f"{rate_ours:>6} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} {cpu:>7} {r.streams:>9,.0f} "
            f"{times(r.streams, direct.streams):>8} {streams_ours:>6} {r.ttfb_ms:>8.3f} "
            f"{added:>8} {r.note}"
        )
    return lines


def verdicts(results: list[Result], shares: dict[str, float | None]) -> list[str]:
    direct = results[0]
    ours = next((r for r in results if r.name == "routatic-asgi"), None)
    peers = [r for r in results[1:] if r is not ours and r.rate]
    if ours is None:
        return []
    lines = []

    def line(what: str, value: str, target: str, met: bool) -> None:
        lines.append(f"  {what:<52} {value:>12}   target {target:<10} {'ok' if met else 'MISS'}")

    for label, attr in (("unstreamed requests/s", "rate"), ("streams/s", "streams")):
        fastest = max(peers, key=lambda r: float(getattr(r, attr)), default=None)
        if fastest is not None:
            multiple = getattr(ours, attr) / max(getattr(fastest, attr), 1e-9)
            line(
                f"{label}, over the fastest peer ({fastest.name})",
                f"{multiple:.2f}x",
                f"≥ {PEER_MULTIPLE}x",
                multiple >= PEER_MULTIPLE,
            )
    added = ours.ttfb_ms - direct.ttfb_ms
    line(
        "time to first byte p50 at concurrency 1, over direct",
        f"{added:+.3f} ms",
        f"≤ +{TTFB_ADDED_MS} ms",
        added <= TTFB_ADDED_MS,
    )
    for name, share in shares.items():
        value = "not served" if share is None else f"{share:.0%}"
        met = share is not None and share >= TRANSLATED_SHARE
        line(f"{name}, share of passthrough", value, f"≥ {TRANSLATED_SHARE:.0%}", met)
    return ["routatic-asgi against the targets (ratios from this run):", *lines]


PEERS: dict[str, Callable[[Path], Path]] = {"ccr": install_ccr, "litellm": install_litellm}


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
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        if name == "routatic":
            gateway = routatic(bench.workdir, upstream, port)
        else:
            installed = PEERS[name](cache)
            make = ccr if name == "ccr" else litellm
            gateway = make(installed, bench.workdir, upstream, port)
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
