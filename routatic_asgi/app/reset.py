"""`POST /status/reset`: clear a breaker or a credential by hand."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Receive, Send

from routatic_asgi.answer import send_answer
from routatic_asgi.app.discovery import json_answer
from routatic_asgi.state import StateStore

__all__ = ["reset", "reset_keys"]


async def reset(store: StateStore, receive: Receive, send: Send) -> None:
    """Clear a breaker (`provider/model`, `…#N` for one key) or a credential (`provider#N`,
    `provider` for all its keys, `provider#client` for clients' own) by hand."""
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
    keys = reset_keys(name, await store.records())
    for key in keys:
        await store.delete(key)
    if not keys:
        why = f"nothing named {name!r} is open or cooling (see GET /status)"
        error = {"type": "not_found_error", "message": why}
        await send_answer(send, json_answer(404, {"error": error}))
        return
    # A credential by its id, never its fingerprint; a breaker by its target key.
    names = [k.split(":")[1] if k.startswith("credential:") else k[8:] for k in keys]
    await send_answer(send, json_answer(200, {"reset": list(dict.fromkeys(names))}))


def reset_keys(name: str, stored: dict[str, Any]) -> list[str]:
    """The stored state keys `name` (as `status --reset` takes it) clears."""
    if "/" in name:  # a target's breaker: every key of it, or one
        found = [k for k in stored if k == f"breaker:{name}" or k.startswith(f"breaker:{name}#")]
    else:  # credentials: provider#N, provider#client, or the provider's every one
        prefix = f"credential:{name}:" if "#" in name else f"credential:{name}#"
        found = [k for k in stored if k.startswith(prefix)]
    return sorted(found)
