"""Reading and checking a request before any attempt: method, content type, size, JSON,
the endpoint's rules. A request that fails a check is answered here, in its protocol's
envelope, and never reaches a target. It never speaks to an upstream.
"""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope

from routatic_asgi.answer import Answer, proxy_error
from routatic_asgi.attempt import Endpoint, InboundRequest, Protocol
from routatic_asgi.memory_budget import COUNTED, Hold
from routatic_asgi.payload import estimate_tokens
from routatic_asgi.session import session_of
from routatic_asgi.shapes import check_request

__all__ = [
    "PARSE_BUDGET",
    "ClientGone",
    "Rejected",
    "parse_cost",
    "read_request",
    "token_estimate",
]


# What parsing one body may build. A body's parsed size is not its length: dense JSON
# ([{},{},...]) makes a Python object of some 64 bytes for every 3 bytes of input, so
# 32 MiB of it would take over a gigabyte. Counting separators first (a C scan) bounds it.
PARSE_BUDGET = 256 * 1024 * 1024
_VALUE_COST = 64  # bytes a parsed value costs, about: an object, its slot in its container


def parse_cost(body: bytes) -> int:
    """About how much memory parsing `body` takes: its text plus a cost per value."""
    values = body.count(b",") + body.count(b"{") + body.count(b"[")
    return len(body) + values * _VALUE_COST


def _exceeds(digits: bytes, limit: int) -> bool:
    """A declared length above `limit`; one of thousands of digits is, without reading it."""
    return len(digits) > 20 or int(digits) > limit


def token_estimate(request: InboundRequest) -> Answer:
    body = orjson.dumps({"input_tokens": estimate_tokens(request.payload)})
    headers = [(b"content-type", b"application/json"), (b"x-routatic-target", b"estimate")]
    return Answer(200, headers, body)


class Rejected(Exception):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer


class ClientGone(Exception):
    pass


async def read_request(
    scope: Scope,
    receive: Receive,
    protocol: Protocol,
    endpoint: Endpoint,
    max_body: int,
    hold: Hold | None = None,
) -> InboundRequest:
    """The request, read whole and checked; `Rejected` carries the answer when it fails.
    A large body is parsed only once `hold` has its share of the memory budget (the caller
    releases it when the request ends)."""
    if scope["method"] != "POST":
        raise Rejected(proxy_error(protocol, 405, f"{scope['method']} is not allowed here"))
    headers = dict(scope["headers"])
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if not (content_type == b"application/json" or content_type.endswith(b"+json")):
        raise Rejected(
            proxy_error(protocol, 415, "send the body as JSON with content-type: application/json")
        )
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and _exceeds(declared, max_body):
        raise Rejected(_too_large(protocol, max_body))
    body = await _read_body(receive, protocol, max_body)
    # A body under COUNTED bytes is not counted (three scans of a 200 KB body cost 0.2 ms):
    # parsed, it takes 65 MiB at most.
    cost = parse_cost(body) if len(body) >= COUNTED else 0
    if cost > PARSE_BUDGET:
        raise Rejected(
            proxy_error(
                protocol,
                413,
                f"the body holds too many JSON values: parsed, it would take about "
                f"{cost >> 20} MiB (at most {PARSE_BUDGET >> 20} MiB)",
                "request_too_large",
            )
        )
    if cost and hold is not None:
        await _admit(hold, len(body) + cost, protocol)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(
            proxy_error(protocol, 400, f"the body is not valid JSON: {exc.msg}")
        ) from None
    if not isinstance(payload, dict):
        raise Rejected(proxy_error(protocol, 400, "the body must be a JSON object"))
    problem = check_request(endpoint, payload, body)
    if problem is not None:
        raise Rejected(proxy_error(protocol, 400, problem.message, param=problem.field))
    model: str = payload["model"]
    if endpoint == "responses" and payload.get("previous_response_id"):
        # Stateless by design: any target may serve the next turn, so none holds the last.
        raise Rejected(
            proxy_error(
                protocol,
                400,
                "previous_response_id is not supported by this gateway: send the whole "
                "conversation in input (with store: false), as Codex does",
            )
        )
    stream = payload.get("stream") is True and endpoint != "count_tokens"
    request = InboundRequest(
        protocol, endpoint, body, payload, model, stream, scope["query_string"]
    )
    request.session = session_of(scope["headers"], payload)
    return request


async def _read_body(receive: Receive, protocol: Protocol, max_body: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            raise Rejected(_too_large(protocol, max_body))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _admit(hold: Hold, cost: int, protocol: Protocol) -> None:
    """Wait for the body's share of the memory budget: a 413 if it could never have it, a
    503 the client may retry if it did not come in time."""
    if not hold.fits(cost):
        message = (
            f"the body would take about {cost >> 20} MiB once parsed, more than this server "
            f"gives all large bodies together ({hold.budget.limit >> 20} MiB)"
        )
        raise Rejected(proxy_error(protocol, 413, message, "request_too_large"))
    if not await hold.take(cost):
        message = "the server is busy with other large requests: retry in a moment"
        answer = proxy_error(protocol, 503, message, "overloaded_error", retry_after=1)
        answer.headers.append((b"x-should-retry", b"true"))
        raise Rejected(answer)


def _too_large(protocol: Protocol, max_body: int) -> Answer:
    return proxy_error(
        protocol, 413, f"the body is larger than {max_body} bytes", "request_too_large"
    )
