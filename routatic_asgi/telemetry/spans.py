"""Span attributes after the OpenTelemetry GenAI semantic conventions.

Pure functions from the shared request objects to attribute mappings. They never put a
credential, a body or an upstream's raw error text in an attribute: a credential appears as
its id (provider#index), a session as its hash, an error as its bounded classification reason.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from opentelemetry.util.types import AttributeValue

from routatic_asgi.attempt import Attempt, InboundRequest, Usage

__all__ = ["attempt_attributes", "operation_name", "request_attributes", "usage_attributes"]

Attributes = dict[str, AttributeValue]


def operation_name(endpoint: str) -> str:
    return "count_tokens" if endpoint == "count_tokens" else "chat"


def request_attributes(request: InboundRequest) -> Attributes:
    attributes: Attributes = {
        "gen_ai.operation.name": operation_name(request.endpoint),
        "gen_ai.request.model": request.model,
        "gen_ai.request.stream": request.stream,
        "routatic.protocol": request.protocol,
        "routatic.route": request.route or "none",
    }
    if request.session is not None:
        attributes["routatic.session"] = request.session.hashed
    return attributes


def attempt_attributes(attempt: Attempt, endpoint: str) -> Attributes:
    target = attempt.target
    attributes: Attributes = {
        "gen_ai.operation.name": operation_name(endpoint),
        "gen_ai.provider.name": target.provider,
        "gen_ai.request.model": target.model,
        "server.address": urlsplit(target.base_url).hostname or "",
        "routatic.target": target.key,
        "routatic.attempt.number": attempt.number,
    }
    if target.credential is not None:
        attributes["routatic.credential"] = target.credential.id
    return attributes


def usage_attributes(usage: Usage | None) -> Attributes:
    if usage is None:
        return {}
    attributes: Attributes = {
        # The convention counts every input token, cached or not, and the cached ones apart.
        "gen_ai.usage.input_tokens": usage.input + usage.cache_read + usage.cache_write,
        "gen_ai.usage.output_tokens": usage.output,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write,
    }
    if usage.model:
        attributes["gen_ai.response.model"] = usage.model
    if usage.stop_reason:
        attributes["gen_ai.response.finish_reasons"] = [usage.stop_reason]
    return attributes
