"""Scale-out figures for bench/run.py: two replicas sharing one Redis.

Starts a Redis of its own (`redis-server` on a free loopback port, nothing saved to disk),
two proxies with `state: redis://...` and the same bench config, and puts wrk on both at
once (half the connections each). Redis counts the commands it processed, so the round trips
a request costs are Redis's own count over the requests wrk completed. It is measured with
the state's `staleness` at 0 (every read goes to Redis) and at the default, where a key
found absent (a closed breaker, an unmarked credential) is trusted for that long.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from bodies import message
from harness import Figure
from processes import free_port

if TYPE_CHECKING:
    from harness import Bench

STALENESS = (0.0, 0.5)


def redis_server(bench: Bench) -> int | None:
    """A Redis of the bench's own on a free port (None: redis-server is not installed)."""
    if shutil.which("redis-server") is None:
        return None
    port = free_port()
    command = [*bench.cpus("load"), "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench.processes.append(process)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            commands(port)
            return port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not start in 10 s")


def commands(port: int) -> int:
    """The commands Redis has processed since it started."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = Redis(port=port, socket_timeout=2)
    try:
        return int(client.info("stats")["total_commands_processed"])
    except RedisConnectionError as exc:
        raise OSError(str(exc)) from exc
    finally:
        client.close()


def replicas(bench: Bench, upstream: str, one_replica: float | None) -> None:
    port = redis_server(bench)
    if port is None:
        bench.add(Figure("2 replicas sharing Redis", "req/s", None, note="no redis-server"))
        return
    body = message("claude-bench-1", stream=False)
    for staleness in STALENESS:
        state = f"redis://127.0.0.1:{port}/0?staleness={staleness:g}"
        with (
            bench.proxy(upstream, state=state, pin=False) as (first, _),
            bench.proxy(upstream, state=state, pin=False) as (second, _),
        ):
            for url in (first, second):
                bench.wrk(url, body, connections=16, seconds=1)
            before = commands(port)
            with ThreadPoolExecutor(2) as pool:
                runs = list(pool.map(lambda url: bench.wrk(url, body, 16), (first, second)))
            spent = commands(port) - before - 1  # the INFO that read `before`
        requests = sum(run["requests"] for run in runs)
        rate = sum(run["rate"] for run in runs)
        errors = sum(int(run["errors"]) for run in runs)
        label = f"2 replicas, Redis staleness {staleness:g} s"
        note = "direct: 1 worker" + (f"; {errors} errors" if errors else "")
        bench.add(Figure(f"{label}: req/s", "req/s", rate, one_replica, note=note))
        bench.add(Figure("  Redis round trips per request", "trips", spent / max(requests, 1)))
