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
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")

CONFIG = """\
server: {{host: 127.0.0.1, port: {port}}}
state: "{state}"
providers:
  fast: {{protocol: anthropic, base_url: "{upstream}", auth: passthrough}}
  hold: {{protocol: anthropic, base_url: "{upstream}/hold", auth: passthrough}}
  oai: {{protocol: openai, base_url: "{upstream}/v1", auth: none}}
routes:
  - {{match: bench-hold, chain: ["hold/claude-bench-1"]}}
  - {{match: bench-oai, chain: ["oai/claude-bench-1"]}}
  - {{match: "*", chain: ["fast/{{model}}"]}}
"""

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = io.open(os.getenv("BENCH_BODY"), "rb"):read("*a")
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = "sk-bench-00000000000000000000000000000000"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {\\"requests\\":%d,\\"seconds\\":%f,\\"errors\\":%d,\\"p50_ms\\":%f,\\"p99_ms\\":%f}\\n",
    summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def message(model: str, *, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def claude_code_request(size: int = 200_000) -> bytes:
    """A body shaped like Claude Code's late in a session: a long system prompt, 25 tools
    with schemas, and tool_use / tool_result turns until it is `size` bytes. Its structure,
    not just its size, is what costs a JSON parser."""
    schema = {
        "type": "object",
        "properties": {
            f"arg{n}": {"type": "string", "description": "an argument " * 3} for n in range(6)
        },
        "required": ["arg0"],
    }
    tools = [
        {"name": f"tool_{n}", "description": "Does a thing. " * 20, "input_schema": schema}
        for n in range(25)
    ]
    messages: list[dict[str, Any]] = []
    system = [{"type": "text", "text": "You are Claude Code. " * 200}]
    body = {"model": "claude-bench-1", "max_tokens": 64, "system": system, "tools": tools}
    body["messages"] = messages
    turn = 0
    while len(json.dumps(body, separators=(",", ":"))) < size:
        result = {
            "type": "tool_result",
            "tool_use_id": f"toolu_{turn}",
            "content": "output\n" * 120,
        }
        use = {
            "type": "tool_use",
            "id": f"toolu_{turn + 1}",
            "name": "tool_3",
            "input": {"arg0": "a.py"},
        }
        messages.append({"role": "user", "content": [result]})
        messages.append(
            {"role": "assistant", "content": [{"type": "text", "text": "Next. " * 20}, use]}
        )
        turn += 2
    messages.append({"role": "user", "content": "Say hello."})
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Figure:
    """One figure of the run. `target` bounds its ratio to `direct` from the same run when
    there is a direct figure, else the figure itself (an amount added over direct, a share of
    another figure of the run, a size): a busier or slower machine slows both sides alike, so
    the verdict does not turn on the machine."""

    name: str
    unit: str
    proxy: float | None
    direct: float | None = None
    target: float | None = None
    higher_is_better: bool = True
    note: str = ""

    def judged(self) -> float | None:
        """What the target bounds: the ratio to direct, or the figure itself."""
        if self.proxy is None:
            return None
        if self.direct is None:
            return self.proxy
        return self.proxy / self.direct if self.direct else None

    def verdict(self) -> str:
        value = self.judged()
        if self.target is None or value is None:
            return ""
        met = value >= self.target if self.higher_is_better else value <= self.target
        return "ok" if met else "MISS"

    def row(self) -> str:
        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:,.3f}" if value < 10 else f"{value:,.0f}"

        to_direct = f"{self.proxy / self.direct:.3f}x" if self.proxy and self.direct else "-"
        target = "-"
        if self.target is not None:
            limit = "≥ " if self.higher_is_better else "≤ "
            target = limit + (
                f"{self.target:.3g}x" if self.direct is not None else fmt(self.target)
            )
        return (
            f"{self.name:<44} {fmt(self.proxy):>10} {self.unit:<9} {fmt(self.direct):>10} "
            f"{to_direct:>8} {target:>10} {self.verdict():<4} {self.note}"
        )


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.pin = (os.cpu_count() or 1) >= 2 and not args.no_pin and bool(shutil.which("taskset"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.figures: list[Figure] = []
        self.wrk_script = workdir / "post.lua"
        self.wrk_script.write_text(WRK_SCRIPT)
        self.upstream_pid = 0

    # processes

    def _cpus(self, role: str) -> list[str]:
        if not self.pin:
            return []
        return ["taskset", "-c", "0" if role == "proxy" else "1"]

    def start_upstream(self) -> str:
        command = [*self._cpus("load"), PYTHON, str(HERE / "upstream.py"), "--hold", "4"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE)
        self.processes.append(process)
        self.upstream_pid = process.pid
        assert process.stdout is not None
        port = int(process.stdout.readline())
        return f"http://127.0.0.1:{port}"

    @contextmanager
    def proxy(
        self,
        upstream: str,
        workers: int = 1,
        state: str = "memory",
        pin: bool = True,
        launcher: tuple[list[str], dict[str, str]] = ([], {}),
    ) -> Iterator[tuple[str, int]]:
        """A proxy on the bench config; `launcher` is (what runs `serve` instead of the CLI
        module, extra environment)."""
        port = _free_port()
        config = self.workdir / f"bench-{port}.yaml"
        config.write_text(CONFIG.format(port=port, upstream=upstream, state=state))
        pin_to = self._cpus("proxy") if workers == 1 and pin else []
        command = [
            *pin_to,
            PYTHON,
            *(launcher[0] or ["-m", "routatic_asgi.cli"]),
            "serve",
            "--config",
            str(config),
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO), **launcher[1]}
        # The request log (a JSON line per request on stdout) goes to a file, as in production.
        log = (self.workdir / f"proxy-{port}.log").open("ab")
        process = subprocess.Popen(
            command, cwd=REPO, env=env, start_new_session=True, stdout=log, stderr=log
        )
        log.close()
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, workers)
            yield url, process.pid
        finally:
            _stop(process)

    def stop_all(self) -> None:
        for process in self.processes:
            _stop(process)

    # loads

    def wrk(
        self,
        url: str,
        body: bytes,
        connections: int = 32,
        seconds: int | None = None,
        path: str = "/v1/messages",
    ) -> dict[str, float]:
        body_file = self.workdir / f"body-{len(body)}-{hash(body) & 0xFFFF}.json"
        body_file.write_bytes(body)
        command = [
            *self._cpus("load"),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds or self.args.duration}s",
            "--timeout",
            "10s",  # a slow peer's answers are counted late, not dropped after wrk's 2 s
            "-s",
            str(self.wrk_script),
            url + path,
        ]
        env = {**os.environ, "BENCH_BODY": str(body_file)}
        output = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=self.args.duration + 30
        ).stdout
        line = next((line for line in output.splitlines() if line.startswith("BENCH ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no summary:\n{output}")
        result: dict[str, float] = json.loads(line[6:])
        result["rate"] = result["requests"] / result["seconds"]
        return result

    def loadgen(self, mode: str, url: str, body: bytes, *extra: str) -> dict[str, Any]:
        body_file = self.workdir / f"lg-{mode}-{len(body)}.json"
        body_file.write_bytes(body)
        command = [
            *self._cpus("load"),
            PYTHON,
            str(HERE / "loadgen.py"),
            mode,
            url + "/v1/messages",
            str(body_file),
            *extra,
        ]
        output = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if output.returncode != 0:
            raise RuntimeError(f"loadgen {mode} failed:\n{output.stderr}")
        result: dict[str, Any] = json.loads(output.stdout.splitlines()[-1])
        return result

    def throughput(
        self, url: str, body: bytes, pid: int | None, rounds: int | None = None
    ) -> tuple[dict[str, float], float]:
        """The best of `--rounds` wrk runs after a warm-up (the machine may be shared), and
        the CPU milliseconds per request process `pid` spent in that run (0 without one)."""
        self.wrk(url, body, seconds=1)
        best: dict[str, float] | None = None
        best_cpu = 0.0
        for _ in range(rounds or self.args.rounds):
            before = cpu_seconds(pid) if pid else 0.0
            result = self.wrk(url, body)
            spent = cpu_seconds(pid) - before if pid else 0.0
            if best is None or result["rate"] > best["rate"]:
                best, best_cpu = result, spent * 1000 / max(result["requests"], 1)
        assert best is not None
        return best, best_cpu

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        print(figure.row(), flush=True)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process and its children (uvicorn workers), in seconds."""
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for member in _tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
    return total / 1024


def _tree(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        member = queue.pop()
        found.append(member)
        for task in Path(f"/proc/{member}/task").glob("*/children"):
            try:
                queue.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], workers: int) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the proxy exited at start")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                # with workers, the master and every worker must be up
                if response.status == 200 and (workers == 1 or len(_tree(process.pid)) > workers):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the proxy did not become ready in 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


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


def responses_request() -> bytes:
    """A streamed OpenAI Responses API request for the Anthropic passthrough route."""
    body = {"model": "claude-bench-1", "input": "Say hello.", "max_output_tokens": 64}
    return json.dumps({**body, "stream": True}, separators=(",", ":")).encode()


# Translated streams, each as (path, body): a share of passthrough streams/s.
TRANSLATIONS = {
    "Anthropic client -> OpenAI target": ("/v1/messages", message("bench-oai", stream=True)),
    "Responses client -> Anthropic target": ("/v1/responses", responses_request()),
}


def translated_share(bench: Bench, url: str) -> dict[str, float | None]:
    """Each translation's streams/s over passthrough streams/s, all measured in alternation
    (best of each), so a burst of load on the machine does not land on one side only; None
    for one the proxy does not serve."""
    sides = {"passthrough": ("/v1/messages", message("claude-bench-1", stream=True))}
    for name, (path, body) in TRANSLATIONS.items():
        trial = bench.wrk(url, body, seconds=1, path=path)
        if trial["errors"] < trial["requests"] / 2:
            sides[name] = (path, body)
    best = dict.fromkeys(sides, 0.0)
    for _ in range(max(bench.args.rounds, 2)):
        for name, (path, body) in sides.items():
            best[name] = max(best[name], bench.wrk(url, body, path=path)["rate"])
    base = best["passthrough"]
    return {name: best[name] / base if name in best and base else None for name in TRANSLATIONS}


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
    command = [*bench._cpus("proxy"), PYTHON, str(HERE / "skip.py")]
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
