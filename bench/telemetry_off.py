"""`routatic-asgi serve` with parts of its telemetry switched off, to measure what each costs.

    python bench/telemetry_off.py --off metrics,log --spans none|sdk|otlp -- serve ARGS...

A bench tool, never a way to run the gateway: it swaps pieces before handing over to the
real `serve`, which otherwise runs exactly as the product does (uvloop, httptools, the
collector tuning, one worker).

- `--off metrics`: every Prometheus instrument records nothing (a stand-in for each).
- `--off log`: the request log's logger is above INFO, so no line is built or written.
- `--spans none`: no tracer provider (what `serve` does with no OTEL_* endpoint set);
  `sdk`: an OpenTelemetry SDK provider with no exporter, so every span is recorded and
  dropped; `otlp`: the SDK with the OTLP/HTTP exporter `serve` builds from
  OTEL_EXPORTER_OTLP_ENDPOINT (the bench points it at its upstream, which answers 200).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from routatic_asgi import cli
from routatic_asgi.telemetry import metrics, otel, record
from routatic_asgi.telemetry.record import REQUEST_LOG


class Silent:
    """Stands for any instrument or child: every call does nothing and returns itself."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Silent:
        return self


class SilentMetrics(metrics.Metrics):
    """The gateway's metrics with every instrument replaced by `Silent`."""

    def __init__(self, registry: Any = None) -> None:
        super().__init__(None)  # a throwaway registry: the real one stays empty
        for name, value in list(vars(self).items()):
            if hasattr(value, "labels") or hasattr(value, "inc") or hasattr(value, "observe"):
                setattr(self, name, Silent())

    def _child(self, metric: Any, *values: str) -> Any:
        return metric


def switch_off(off: set[str], spans: str) -> None:
    if "metrics" in off:
        record.Metrics = SilentMetrics  # type: ignore[attr-defined]
    if "log" in off:
        log = logging.getLogger(REQUEST_LOG)
        log.addHandler(logging.NullHandler())  # serve leaves a logger with handlers alone
        log.setLevel(logging.WARNING)
        log.propagate = False
    if spans == "sdk":
        from opentelemetry.sdk.trace import TracerProvider

        otel.tracer_provider_from_environment = lambda env=None: TracerProvider()
    elif spans == "none":
        otel.tracer_provider_from_environment = lambda env=None: None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--off", default="", help="comma-separated: metrics, log")
    parser.add_argument("--spans", choices=["none", "sdk", "otlp"], default="none")
    parser.add_argument("serve", nargs=argparse.REMAINDER, help="-- serve ARGS...")
    args = parser.parse_args()
    switch_off(set(filter(None, args.off.split(","))), args.spans)
    return cli.main([a for a in args.serve if a != "--"])


if __name__ == "__main__":
    sys.exit(main())
