"""Observability: Prometheus metrics, OpenTelemetry spans, the request log, debug capture.

The layers record through a `Telemetry` built once per app from an injected registry and
tracer provider; nothing here uses the global Prometheus registry or tracer provider.
"""

from routatic_asgi.telemetry.metrics import Metrics
from routatic_asgi.telemetry.record import (
    RECORD,
    RequestRecord,
    RequestRecording,
    Telemetry,
    UpstreamWatch,
)
from routatic_asgi.telemetry.request_log import route_label
from routatic_asgi.telemetry.usage import UsageReader, usage_from_body

__all__ = [
    "RECORD",
    "Metrics",
    "RequestRecord",
    "RequestRecording",
    "Telemetry",
    "UpstreamWatch",
    "UsageReader",
    "route_label",
    "usage_from_body",
]
