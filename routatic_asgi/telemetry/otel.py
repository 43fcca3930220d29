"""The server's tracer provider, from the standard OTEL_* environment variables.

Only the server calls this: a library user injects a tracer provider of their own. Spans are
exported over OTLP/HTTP (protobuf) only when an OTLP endpoint is set; the exporter reads its
endpoint, headers and timeout from the environment itself. Nothing here sets the global
tracer provider.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["tracer_provider_from_environment"]

logger = logging.getLogger("routatic_asgi")

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_requested(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return any(env.get(name) for name in _ENDPOINTS)


def tracer_provider_from_environment(env: Mapping[str, str] | None = None) -> Any:
    """A TracerProvider exporting over OTLP/HTTP, or None when no OTLP endpoint is set."""
    env = os.environ if env is None else env
    if not tracing_requested(env):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol != "http/protobuf":
        logger.warning("OTLP protocol %r is not available; exporting with http/protobuf", protocol)
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = Resource.create({} if named else {"service.name": "routatic-asgi"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
