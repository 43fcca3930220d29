"""`Bench`: one run's processes and loads (the upstream, proxies, wrk, bench/loadgen.py) and
the `Figure`s it prints. With two or more cores the proxy is pinned to core 0 and everything
else to core 1. Every process it starts is stopped by pid; every load runs for a bounded time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bodies import message, responses_request
from processes import HERE, PYTHON, REPO, cpu_seconds, free_port, stop, wait_ready

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

    def cpus(self, role: str) -> list[str]:
        if not self.pin:
            return []
        return ["taskset", "-c", "0" if role == "proxy" else "1"]

    def start_upstream(self) -> str:
        command = [*self.cpus("load"), PYTHON, str(HERE / "upstream.py"), "--hold", "4"]
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
        port = free_port()
        config = self.workdir / f"bench-{port}.yaml"
        config.write_text(CONFIG.format(port=port, upstream=upstream, state=state))
        pin_to = self.cpus("proxy") if workers == 1 and pin else []
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
            wait_ready(url, process, workers)
            yield url, process.pid
        finally:
            stop(process)

    def stop_all(self) -> None:
        for process in self.processes:
            stop(process)

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
            *self.cpus("load"),
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
            *self.cpus("load"),
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
