"""What the telemetry costs, for bench/run.py: the proxy's CPU per request with each part of
it switched off in turn (through bench/telemetry_off.py).

Every variant is a fresh one-worker proxy, pinned like run.py's, measured under the same wrk
load; the variants run in turn, `--rounds` times over, and each keeps its lowest CPU per
request, so a burst of load on the machine lands on one round of one variant, not on a
figure. The telemetry's share is what switching all of it off saves, over the CPU with all
of it on (metrics, spans exported over OTLP to the bench upstream, the request log), and
over the CPU of what `serve` runs with no OTEL_* set (metrics and the request log).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bodies import message
from harness import Figure
from processes import HERE

if TYPE_CHECKING:
    from harness import Bench

# (name, parts switched off, spans)
VARIANTS = [
    ("all on, spans over OTLP", "", "otlp"),
    ("all on, spans over OTLP, 1 in 10 sampled", "", "otlp-sampled"),
    ("all on, spans recorded, no exporter", "", "sdk"),
    ("spans off (serve without OTEL_*)", "", "none"),
    ("metrics off", "metrics", "otlp"),
    ("request log off", "log", "otlp"),
    ("spans off, metrics off", "metrics", "none"),
    ("spans off, request log off", "log", "none"),
    ("all off", "metrics,log", "none"),
]
TELEMETRY_SHARE = 0.10
# What `serve` runs with no OTEL_* set: metrics and the request log, no spans.
SERVE_DEFAULT = "spans off (serve without OTEL_*)"


def cpu_per_request(bench: Bench, upstream: str, off: str, spans: str) -> tuple[float, float]:
    """(requests/s, proxy CPU ms per request) of one wrk run on a proxy of that variant."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": upstream} if spans.startswith("otlp") else {}
    if spans == "otlp-sampled":  # the SDK's standard sampler variables
        env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
        spans = "otlp"
    launcher = [str(HERE / "telemetry_off.py"), "--off", off, "--spans", spans, "--"]
    body = message("claude-bench-1", stream=False)
    with bench.proxy(upstream, launcher=(launcher, env)) as (proxy, pid):
        result, cpu_ms = bench.throughput(proxy, body, pid, rounds=1)
    return result["rate"], cpu_ms


def telemetry(bench: Bench, upstream: str) -> None:
    best: dict[str, tuple[float, float]] = {}
    for _ in range(bench.args.rounds):
        for name, off, spans in VARIANTS:
            rate, cpu = cpu_per_request(bench, upstream, off, spans)
            if name not in best or cpu < best[name][1]:
                best[name] = (rate, cpu)
    on = best[VARIANTS[0][0]][1]
    for name, _, _ in VARIANTS:
        rate, cpu = best[name]
        saved = (
            f"saves {(on - cpu) / on:.0%} of all-on CPU" if on and name != VARIANTS[0][0] else ""
        )
        bench.add(Figure(f"telemetry: {name}", "ms CPU", cpu, note=f"{rate:,.0f} req/s {saved}"))
    bare = best["all off"][1]
    default = best[SERVE_DEFAULT][1]
    for name, total in (("all of it", on), ("serve's default, no spans", default)):
        share = (total - bare) / total if total else None
        figure = Figure(f"telemetry share, {name}", "share", share, None, TELEMETRY_SHARE)
        figure.higher_is_better = False
        bench.add(figure)
