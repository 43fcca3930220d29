"""Model discovery: `GET /v1/models` and `GET /v1/models/{id}`, in the caller's shape.

The models are what the configuration lets a client name; nothing here calls an upstream.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from starlette.types import Scope, Send

from routatic_asgi.answer import Answer, proxy_error, send_answer
from routatic_asgi.config import Config
from routatic_asgi.shapes import models_query

__all__ = ["json_answer", "list_models", "model_ids", "one_model", "query_of", "speaks_openai"]

JSON = [(b"content-type", b"application/json")]


def json_answer(status: int, payload: Any) -> Answer:
    return Answer(status, list(JSON), orjson.dumps(payload))


async def list_models(config: Config, scope: Scope, send: Send) -> None:
    """`GET /v1/models`: the models a client can name, in the caller's shape and paging."""
    problem = models_query(query_of(scope))
    if problem is not None:
        answer = proxy_error(
            "openai" if speaks_openai(scope) else "anthropic",
            400,
            problem.message,
            param=problem.field,
        )
        await send_answer(send, answer)
        return
    ids = model_ids(config)
    if speaks_openai(scope):
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "routatic"} for i in ids]
        await send_answer(send, json_answer(200, {"object": "list", "data": data}))
        return
    query = query_of(scope)
    after = query.get("after_id")
    if after in ids:
        ids = ids[ids.index(after) + 1 :]
    page = ids[: int(query.get("limit", 20))]
    models = [
        {"type": "model", "id": i, "display_name": i, "created_at": "1970-01-01T00:00:00Z"}
        for i in page
    ]
    payload = {
        "data": models,
        "has_more": len(ids) > len(page),
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }
    await send_answer(send, json_answer(200, payload))


async def one_model(config: Config, scope: Scope, send: Send) -> None:
    """`GET /v1/models/{id}`: one model a client can name, in the caller's shape."""
    path = scope["path"].removeprefix(scope.get("root_path", ""))
    model = unquote(path.removeprefix("/v1/models/"))
    openai = speaks_openai(scope)
    if model not in model_ids(config):
        message = f"no model {model!r} here: GET /v1/models lists the ones you can ask for"
        answer = proxy_error("openai" if openai else "anthropic", 404, message, "not_found_error")
        await send_answer(send, answer)
        return
    if openai:
        payload = {"id": model, "object": "model", "created": 0, "owned_by": "routatic"}
    else:
        created = "1970-01-01T00:00:00Z"
        payload = {"type": "model", "id": model, "display_name": model, "created_at": created}
    await send_answer(send, json_answer(200, payload))


def model_ids(config: Config) -> list[str]:
    """Every model a client can ask for: literal route names, and the models of `models:`
    catalogs and the fixed chain models that some route serves (a `*` route serves all)."""
    return sorted(m for m in config.named_models() if config.route_for(m) is not None)


def speaks_openai(scope: Scope) -> bool:
    """An OpenAI client: no anthropic-version, no x-api-key, none of Anthropic's paging."""
    headers = dict(scope["headers"])
    if b"anthropic-version" in headers or b"x-api-key" in headers:
        return False
    return not query_of(scope).keys() & {"limit", "after_id", "before_id"}


def query_of(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
