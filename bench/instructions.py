"""The proxy's instructions per request, counted by valgrind's callgrind: a figure that does
not move with the load on the machine.

    python bench/instructions.py [--requests 2000] [--connections 8] [--stream] [--spans none|sdk]
                                 [--body short|claude-code]

Starts the bench upstream, then `routatic-asgi serve` on the bench config under
`valgrind --tool=callgrind` with instrumentation off; warms it up, switches it on
(`callgrind_control -i on`), sends exactly `--requests` requests over `--connections`
keep-alive connections (bench/loadgen.py `count`), switches it off and prints the
instructions the proxy process executed per request. `--body claude-code` sends the 200 KB
Claude Code-shaped request (bench/bodies.py) instead of the short message. `--off
metrics,log` and `--spans` go to bench/telemetry_off.py, as in the telemetry figures. The
hash seed is fixed, so two runs of the same build agree to within a fraction of a percent;
compare builds with this, not with requests/s on a shared machine. Everything runs on
loopback and is stopped by pid. Needs valgrind (`apt-get install -y valgrind`); under it the
proxy runs some 50 times slower, so 2,000 requests take about a minute.
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
from pathlib import Path

from bodies import claude_code_request, message
from harness import CONFIG
from processes import HERE, PYTHON, REPO, free_port, stop, wait_ready


def callgrind(pid: int, *command: str) -> None:
    subprocess.run(["callgrind_control", *command, str(pid)], check=True, capture_output=True)


def collected(out: Path) -> int:
    """The instructions in the dumps callgrind wrote for the collected stretch (its own
    summary line stays 0 when instrumentation starts off; callgrind_annotate adds them up)."""
    total = 0
    for dump in out.parent.glob(out.name + ".*"):
        report = subprocess.run(
            ["callgrind_annotate", str(dump)], check=True, capture_output=True, text=True
        ).stdout
        line = next(line for line in report.splitlines() if "PROGRAM TOTALS" in line)
        total += int(line.split()[0].replace(",", ""))
    return total


def loadgen(url: str, body: Path, requests: int, connections: int) -> None:
    command = [PYTHON, str(HERE / "loadgen.py"), "count", url + "/v1/messages", str(body)]
    command += ["--requests", str(requests), "--connections", str(connections)]
    command += ["--timeout", "1200"]
    subprocess.run(command, check=True, capture_output=True, timeout=1300)


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    upstream = subprocess.Popen([PYTHON, str(HERE / "upstream.py")], stdout=subprocess.PIPE)
    proxy = None
    try:
        assert upstream.stdout is not None
        upstream_url = f"http://127.0.0.1:{int(upstream.stdout.readline())}"
        port = free_port()
        config = workdir / "bench.yaml"
        config.write_text(CONFIG.format(port=port, upstream=upstream_url, state="memory"))
        out = workdir / "callgrind.out"
        launcher = [str(HERE / "telemetry_off.py"), "--off", args.off, "--spans", args.spans]
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            PYTHON,
            *launcher,
            "--",
            "serve",
            "--config",
            str(config),
            "--log-level",
            "warning",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"}
        if args.spans == "otlp":
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = upstream_url
        log = (workdir / "proxy.log").open("ab")
        proxy = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:  # wait_ready waits 30 s; valgrind takes longer to start
            try:
                wait_ready(url, proxy, 1)
                break
            except RuntimeError:
                if proxy.poll() is not None or time.monotonic() > deadline:
                    raise
        body = workdir / "body.json"
        if args.body == "claude-code":
            body.write_bytes(claude_code_request())
        else:
            body.write_bytes(message("claude-bench-1", stream=args.stream))
        loadgen(url, body, max(200, args.requests // 5), args.connections)  # warm up
        callgrind(proxy.pid, "-z")
        callgrind(proxy.pid, "-i", "on")
        loadgen(url, body, args.requests, args.connections)
        callgrind(proxy.pid, "-i", "off")
        callgrind(proxy.pid, "-d")
        total = collected(out)
        if args.keep:
            for dump in workdir.glob(out.name + ".*"):
                shutil.copy(dump, args.keep)
    finally:
        if proxy is not None:
            stop(proxy)
        stop(upstream)
    return {"requests": args.requests, "instructions_per_request": total / args.requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--stream", action="store_true", help="20-delta streams")
    parser.add_argument("--body", choices=["short", "claude-code"], default="short")
    parser.add_argument("--off", default="", help="comma-separated: metrics, log")
    parser.add_argument("--spans", choices=["none", "sdk", "otlp"], default="none")
    parser.add_argument("--keep", type=Path, help="copy the callgrind dump to this file")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("this needs valgrind: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory(prefix="routatic-callgrind-") as workdir:
        print(json.dumps(measure(args, Path(workdir))))


if __name__ == "__main__":
    main()
