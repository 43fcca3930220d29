"""Request shapes: whether a client's request is one the gateway can read, before routing.

Run on every proxied request, in this order: nesting no deeper than `MAX_DEPTH` (refused
before anything walks the body), a model name that is a string of at most `MAX_MODEL`
printable characters, then the endpoint's shape (`SHAPES`, one rule per endpoint; a new
front door adds its own). Each answers the first bad field's path and what is wrong with it,
so the client gets a 400 naming the field, and no translator, estimator or trait reader ever
sees a wrong type. `models_query` does the same for `GET /v1/models`' parameters.

Pure: no I/O, no state; nothing here changes the body, and a problem never quotes a value
back beyond a short, escaped excerpt of a type name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from routatic_asgi.shapes.anthropic import MESSAGES
from routatic_asgi.shapes.chat import CHAT_COMPLETIONS
from routatic_asgi.shapes.responses import RESPONSES
from routatic_asgi.shapes.rules import Rule, described

__all__ = [
    "MAX_DEPTH",
    "MAX_MODEL",
    "SHAPES",
    "Problem",
    "check_request",
    "may_nest_too_deep",
    "models_query",
    "too_deep",
]

MAX_DEPTH = 128  # objects and lists inside each other; real requests stay under 20
MAX_MODEL = 256  # characters of a model name

# The rule for each endpoint's body, keyed as `endpoint_for` names the endpoint.
SHAPES: dict[str, Rule] = {
    "messages": MESSAGES,
    "count_tokens": MESSAGES,
    "chat_completions": CHAT_COMPLETIONS,
    "responses": RESPONSES,
}


@dataclass(frozen=True, slots=True)
class Problem:
    """A request the gateway refuses: the field at fault (a dotted path) and why."""

    field: str
    problem: str

    @property
    def message(self) -> str:
        return f"{self.field}: {self.problem}" if self.field else self.problem


def _orjson_depth_limit() -> int:
    """The deepest nesting `orjson.dumps` writes (254 in orjson 3), found once by trying."""
    low, high = 1, 4096
    while low < high:
        middle = (low + high + 1) // 2
        value: Any = 0
        for _ in range(middle):
            value = [value]
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            high = middle - 1
        else:
            low = middle
    return low


# `too_deep` lets orjson's encoder count the depth in C: a walk in Python costs three times
# as much on a 200 KB request, a scan of the raw bytes seven times.
_WRAPPERS = _orjson_depth_limit() - MAX_DEPTH


def too_deep(payload: Any) -> bool:
    """Whether objects and lists nest deeper than MAX_DEPTH anywhere in a parsed body."""
    wrapped = payload
    for _ in range(_WRAPPERS):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return True
    return False


def _model_problem(model: Any) -> str | None:
    if model is None:
        return "field required (a model name string)"
    if not isinstance(model, str):
        return f"expected a model name string, got {described(model)}"
    if not model:
        return "a model name cannot be empty"
    if len(model) > MAX_MODEL:
        return f"a model name is at most {MAX_MODEL} characters"
    if not model.isprintable():
        return "a model name cannot hold control characters"
    return None


def may_nest_too_deep(body: bytes) -> bool:
    """Whether a JSON text can nest deeper than MAX_DEPTH at all: that takes more than
    MAX_DEPTH opening brackets and as many closing ones. A short body is cleared by its
    length, one of a few KB by a count of its brackets; a longer one is checked whole."""
    if len(body) < 2 * (MAX_DEPTH + 1):
        return False
    if len(body) > _COUNTED:
        return True
    return body.count(b"{") + body.count(b"[") > MAX_DEPTH


# Up to this size, counting brackets costs less than `too_deep`'s fixed 126 wrappings.
_COUNTED = 8 * 1024


def check_request(
    endpoint: str, payload: Mapping[str, Any], body: bytes | None = None
) -> Problem | None:
    """The first problem with a parsed body for `endpoint`, or None when it can be served.

    `body`, the text `payload` was parsed from, spares the depth check when it is too short
    or has too few brackets to nest that deep."""
    if (body is None or may_nest_too_deep(body)) and too_deep(payload):
        return Problem("", f"the body nests objects and lists deeper than {MAX_DEPTH} levels")
    problem = _model_problem(payload.get("model"))
    if problem is not None:
        return Problem("model", problem)
    rule = SHAPES.get(endpoint)
    bad = rule(payload) if rule is not None else None
    return None if bad is None else Problem(bad.field(), bad.problem)


def models_query(query: Mapping[str, str]) -> Problem | None:
    """`GET /v1/models`: `limit` is a whole number from 1 to 1000 when given."""
    limit = query.get("limit")
    if limit is None:
        return None
    if not (limit.isascii() and limit.isdigit() and len(limit) <= 4 and 1 <= int(limit) <= 1000):
        return Problem("limit", "expected a whole number from 1 to 1000")
    return None
