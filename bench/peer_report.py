"""bench/peers.py's report: what was measured of each gateway, the table of every figure
against direct and routatic-asgi, and routatic-asgi's verdicts against the fastest peer.
"""

from __future__ import annotations

from dataclasses import dataclass

# The targets of the comparison: routatic-asgi against the fastest peer in the same run.
PEER_MULTIPLE = 2.5
TTFB_ADDED_MS = 0.5
TRANSLATED_SHARE = 0.7


@dataclass
class Result:
    """What was measured of one gateway, or of going direct."""

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
