"""The bench's own arithmetic, without running a benchmark: a figure's verdict judges its
ratio from one run, and the profile reader charges each sample to the right owner."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench_module(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:  # as when run as a script: its siblings import by name
        sys.path.append(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run = bench_module("run")
profile_share = bench_module("profile_share")


def test_a_rate_is_judged_by_its_share_of_direct_not_its_size() -> None:
    Figure = run.Figure
    assert Figure("req/s", "req/s", 600, 10_000, 0.05).verdict() == "ok"  # a slow machine
    assert Figure("req/s", "req/s", 4_000, 100_000, 0.05).verdict() == "MISS"  # a fast one
    cpu = Figure("cpu", "ms", 0.3, 0.02, 20.0, higher_is_better=False)
    assert cpu.verdict() == "ok" and cpu.judged() == 15.0


def test_a_figure_without_direct_is_judged_as_it_is() -> None:
    added = run.Figure("TTFB added", "ms", 0.6, None, 0.5, higher_is_better=False)
    assert added.verdict() == "MISS"
    assert run.Figure("share", "share", None, None, 0.7).verdict() == ""


def test_a_sample_belongs_to_its_innermost_known_owner() -> None:
    owner = profile_share.owner
    recording = "__call__ (routatic_asgi/telemetry/record.py:2)"
    routed = f"run (uvicorn/server.py:1);{recording};__call__ (routatic_asgi/router.py:3)"
    assert owner(routed + ";loads (json/decoder.py:4)") == "routatic_asgi/"
    logged = f"{routed};_finish (routatic_asgi/telemetry/record.py:9);info (logging/__init__.py:5)"
    assert owner(logged) == "logging/__init__"
    assert owner("run (threading.py:1);BatchProcessor.worker (x.py:2)").endswith("thread")


def test_the_cache_bench_prints_round_robin_against_affinity_turn_by_turn() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "cache.py"), "--sessions", "6", "--turns", "4",
         "--revoke-at", "3"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = {line.split(" | ")[0]: line.split(" | ")[1:] for line in done.stdout.splitlines()}
    assert [f"| {n}" in rows for n in range(1, 5)] == [True] * 4
    # hit ratio, input cost: round robin, affinity, affinity with a key revoked
    whole = rows["| turns 2+ reading the whole previous turn"]
    assert whole[2] == "100%" and whole[0] != "100%"
    costs = [float(cell.strip("* |").replace(",", "")) for cell in rows["| all"][1::2]]
    assert costs[1] < costs[2] < costs[0]
