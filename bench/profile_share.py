"""Who spends the proxy's CPU, from a py-spy raw profile: each sample goes to its owner.

    py-spy record --pid PID -d 12 -r 250 -f raw -o proxy.txt
    python bench/profile_share.py proxy.txt [more.txt ...]

A sample belongs to the innermost frame of a known owner on its stack (the gateway's own
modules, uvicorn, httpx, anyio, logging, prometheus_client, OpenTelemetry), so a layer that
merely wraps the rest (the request recording around the whole chain) is not charged for
what it calls; the OTLP exporter's thread is its own owner. Prints each owner's share and
the telemetry's total: the gateway's telemetry package, logging, prometheus_client and
OpenTelemetry. py-spy names OpenTelemetry's files by their path inside the package
(`trace/__init__.py`, `attributes/__init__.py`, ...), hence the prefixes below.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

TELEMETRY = (
    "routatic_asgi/telemetry/",
    "opentelemetry",
    "trace/",
    "sdk/",
    "context/",
    "attributes/",
    "common/_internal",
    "_shared_internal",
    "prometheus_client/",
    "logging/__init__",
)
OWNERS = (*TELEMETRY, "routatic_asgi/", "uvicorn/", "httpx/", "anyio/", "starlette/", "uvloop")
EXPORT_THREAD = "BatchProcessor.worker"
FRAME_PATH = re.compile(r"\((.*?):\d+\)")


def owner(stack: str) -> str:
    if EXPORT_THREAD in stack:
        return "opentelemetry export thread"
    for frame in reversed(stack.split(";")):
        match = FRAME_PATH.search(frame)
        path = match.group(1) if match else frame
        found = next((known for known in OWNERS if known in path), None)
        if found == "routatic_asgi/telemetry/":
            return found + path.rsplit("/", 1)[-1]
        if found is not None:
            return found
    return "other (interpreter, event loop)"


def shares(path: str) -> tuple[int, Counter[str]]:
    total, owners = 0, Counter[str]()
    with open(path) as samples:
        for line in samples:
            stack, _, count = line.rstrip().rpartition(" ")
            if stack:
                total += int(count)
                owners[owner(stack)] += int(count)
    return total, owners


def main() -> None:
    for path in sys.argv[1:]:
        total, owners = shares(path)
        # "opentelemetry export thread" starts with a telemetry prefix too
        telemetry = sum(n for name, n in owners.items() if name.startswith(TELEMETRY))
        print(f"{path}: telemetry {telemetry / max(total, 1):.1%} of {total} samples")
        for name, count in owners.most_common(16):
            print(f"  {count / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
