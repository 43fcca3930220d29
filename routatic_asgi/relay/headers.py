"""Which headers an upstream call carries, and which of the upstream's a client gets back.

Pure functions of header lists: hop-by-hop headers (RFC 9110 7.6.1) and those a
`Connection` header names never cross; a client's credential goes to a passthrough provider
only, a configured key to its own provider only; a wait the upstream asks for reaches the
client bounded. No I/O, no configuration: the target carries what its provider adds.
"""

from __future__ import annotations

import httpx

from routatic_asgi.attempt import Target
from routatic_asgi.classify import bounded_wait
from routatic_asgi.exchange import Exchange

__all__ = ["Headers", "request_headers", "response_headers", "translated_headers"]

Headers = list[tuple[bytes, bytes]]

# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are never forwarded.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Beside those, what the relay or the server sets itself.
_REQUEST_DROP = _HOP_BY_HOP | {b"host", b"content-length", b"accept-encoding", b"x-routatic-key"}
_CREDENTIALS = frozenset({b"authorization", b"x-api-key"})
_RESPONSE_DROP = _HOP_BY_HOP | {b"content-length", b"date", b"server"}
_WAITS = frozenset({b"retry-after", b"retry-after-ms"})
# A translated body is ours: its encoding, type and length too.
_TRANSLATED_DROP = frozenset({b"content-encoding", b"content-type"})


def request_headers(
    client: Headers, target: Target, exchange: Exchange, *, proxy_key_in_authorization: bool
) -> Headers:
    """The headers of the upstream call: the client's that may go on, then the exchange's,
    the provider's and the target's credential."""
    drop = _REQUEST_DROP if target.passthrough else _REQUEST_DROP | _CREDENTIALS
    if proxy_key_in_authorization:
        drop = drop | {b"authorization"}
    drop = drop | _connection_named(client)
    headers = [(k, v) for k, v in client if k not in drop and exchange.forwards(k)]
    if target.passthrough and not exchange.passthrough and target.protocol == "anthropic":
        headers = _bearer_as_api_key(headers)
    headers.append((b"accept-encoding", b"identity"))
    headers.extend(exchange.extra_headers)
    headers.extend(target.headers)
    credential = target.credential
    if credential is not None:
        if target.protocol == "anthropic":
            headers.append((b"x-api-key", credential.secret.encode()))
        else:
            headers.append((b"authorization", b"Bearer " + credential.secret.encode()))
    return headers


def _bearer_as_api_key(headers: Headers) -> Headers:
    """An OpenAI client's `Authorization: Bearer <Anthropic API key>`, as Anthropic wants it.

    OpenAI clients can only send their key as a bearer token; Anthropic takes API keys in
    `x-api-key` and bearer tokens only for OAuth (`sk-ant-oat…`), which stay as they are.
    """
    moved: Headers = []
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            token = value[7:].strip()
            if token.startswith(b"sk-ant-") and not token.startswith(b"sk-ant-oat"):
                moved.append((b"x-api-key", token))
                continue
        moved.append((name, value))
    return moved


def _connection_named(headers: Headers) -> frozenset[bytes]:
    """Headers a `Connection` header names: hop-by-hop for this one connection (RFC 9110
    7.6.1), whatever they are called, so never forwarded."""
    named = [v for k, v in headers if k == b"connection"]
    if not named:
        return frozenset()
    return frozenset(
        name.strip().lower() for value in named for name in value.split(b",") if name.strip()
    )


def response_headers(response: httpx.Response, max_wait: float) -> Headers:
    """The upstream's headers a client gets: no hop-by-hop ones, and a wait it asks for
    bounded by `max_wait` (never `1e300`, a negative number or `nan`)."""
    headers = [(k.lower(), v) for k, v in response.headers.raw]
    drop = _RESPONSE_DROP | _connection_named(headers)
    kept: Headers = []
    for name, value in headers:
        if name in drop:
            continue
        if name in _WAITS:
            bounded = bounded_wait(name, value, max_wait)
            if bounded is None:
                continue
            value = bounded
        kept.append((name, value))
    return kept


def translated_headers(response: httpx.Response, body: bytes, max_wait: float) -> Headers:
    """The upstream's headers for a body re-encoded as JSON: its type and length are ours."""
    headers = [(k, v) for k, v in response_headers(response, max_wait) if k not in _TRANSLATED_DROP]
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    return headers
