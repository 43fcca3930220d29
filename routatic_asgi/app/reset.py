"""`POST /status/reset`: clear a breaker or a credential by hand."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.types import Receive, Send

from routatic_asgi.answer import send_answer
from routatic_asgi.app.discovery import json_answer

__all__ = ["reset"]


async def reset(clear: Callable[[str], Awaitable[list[str]]], receive: Receive, send: Send) -> None:
    """Clear a breaker (`provider/model`, `…#N` for one key) or a credential (`provider#N`,
    `provider` for all its keys, `provider#client` for clients' own) by hand: `clear` asks
    the layer that owns it, which answers with what it cleared."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    try:
        name = orjson.loads(body).get("reset") if body else None
    except (orjson.JSONDecodeError, AttributeError):
        name = None
    if not isinstance(name, str) or not name:
        error = {"type": "invalid_request_error", "message": 'send {"reset": "NAME"}'}
        await send_answer(send, json_answer(400, {"error": error}))
        return
    names = await clear(name)
    if not names:
        why = f"nothing named {name!r} is open or cooling (see GET /status)"
        error = {"type": "not_found_error", "message": why}
        await send_answer(send, json_answer(404, {"error": error}))
        return
    await send_answer(send, json_answer(200, {"reset": names}))
