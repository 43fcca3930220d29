"""The exceptions routatic-asgi raises, in one tree, and the error envelopes it answers with.

Third-party exceptions are mapped to these at one boundary (`raise ... from exc`). An
envelope never carries a credential, a traceback or an upstream's raw exception text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import orjson

__all__ = [
    "ConfigError",
    "RoutaticError",
    "UnanswerableEndpoint",
    "anthropic_error_body",
    "error_body",
    "openai_error_body",
]

Protocol = Literal["anthropic", "openai", "responses"]


class RoutaticError(Exception):
    """Base of every exception routatic-asgi raises on purpose."""


class ConfigError(RoutaticError):
    """A configuration that cannot run: names the file, the key path and the fix.

    One error may carry others found in the same file (`more`), so a user fixes them all in
    one pass; `problems` lists every one, this first, and `str()` is one line each.
    """

    def __init__(
        self, source: str, path: str, problem: str, fix: str, *, more: Sequence[ConfigError] = ()
    ) -> None:
        self.source, self.path, self.problem, self.fix = source, path, problem, fix
        where = f"{source}: {path}" if path else source
        self.line = f"{where}: {problem} (fix: {fix})"
        self.problems: list[ConfigError] = [self, *more]
        super().__init__("\n".join(error.line for error in self.problems))


class UnanswerableEndpoint(RoutaticError, ValueError):
    """A target was asked to answer an endpoint its protocol cannot speak (Anthropic's
    count_tokens on a target of another protocol). The router never asks: it skips such a
    target before the attempt (`no_translation`); a relay mounted alone raises this, before
    any call."""


# Anthropic's error types by status; anything else in 4xx is invalid_request_error.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_exceeded",
    529: "server_error",
}


def anthropic_error_type(status: int) -> str:
    return _ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def anthropic_error_body(status: int, message: str, error_type: str | None = None) -> bytes:
    error = {"type": error_type or anthropic_error_type(status), "message": message}
    return orjson.dumps({"type": "error", "error": error})


def openai_error_body(
    status: int, message: str, error_type: str | None = None, param: str | None = None
) -> bytes:
    kind = error_type or _OPENAI_TYPES.get(
        status, "invalid_request_error" if status < 500 else "server_error"
    )
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": kind}})


def error_body(
    protocol: Protocol,
    status: int,
    message: str,
    error_type: str | None = None,
    param: str | None = None,
) -> bytes:
    """An error body in the caller's protocol (the Responses API uses OpenAI's envelope);
    `param` names the request field at fault."""
    if protocol != "anthropic":
        return openai_error_body(status, message, error_type, param or None)
    return anthropic_error_body(status, message, error_type)
