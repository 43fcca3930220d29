"""The bench's processes: free ports, waiting for a proxy, stopping by pid, and what /proc
says of a process and its children (CPU, resident memory). Loopback only; it never stops a
process it was not handed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process and its children (uvicorn workers), in seconds."""
    total = 0
    for member in tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for member in tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
    return total / 1024


def tree(pid: int) -> list[int]:
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], workers: int) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the proxy exited at start")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                # with workers, the master and every worker must be up
                if response.status == 200 and (workers == 1 or len(tree(process.pid)) > workers):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the proxy did not become ready in 30 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def stop_tree(process: subprocess.Popen[bytes]) -> None:
    """Stop a gateway and any workers it forked, each by pid."""
    children = [pid for pid in tree(process.pid) if pid != process.pid]
    stop(process)
    for pid in children:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            continue
