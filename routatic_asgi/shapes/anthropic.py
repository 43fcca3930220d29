"""The shape of an Anthropic Messages (and count_tokens) request, as far as the gateway reads it.

Every field that routing, trait matching, the token estimate, the thinking repair or a
translation reads is named here with the types they can handle; fields nobody reads (tool
schemas, citations, cache_control's contents, server tools' results) are left to the
upstream. Content blocks are told apart by `type`: the documented types are checked, types
of the server-tool families (`*_tool_use`, `*_tool_result`) pass as they are, and any other
type is refused, since no target could be relied on to understand it. Pure data.
"""

from __future__ import annotations

from routatic_asgi.shapes.containers import either, list_of, obj, tagged
from routatic_asgi.shapes.rules import BOOL, INT, LIST, NUMBER, OBJECT, STRING, Rule, one_of

__all__ = ["MESSAGES"]

_OPEN_FAMILIES = ("_tool_use", "_tool_result")

_TEXT = obj({"text": STRING, "cache_control": OBJECT, "citations": LIST}, required=("text",))
_IMAGE_SOURCE = tagged(
    {
        "base64": obj({"media_type": STRING, "data": STRING}, required=("data",)),
        "url": obj({"url": STRING}, required=("url",)),
        "file": obj({"file_id": STRING}),
    }
)
_IMAGE = obj({"source": _IMAGE_SOURCE, "cache_control": OBJECT}, required=("source",))
_DOCUMENT_SOURCE = tagged(
    {
        "text": obj({"data": STRING, "media_type": STRING}),
        "base64": obj({"data": STRING, "media_type": STRING}),
        "url": obj({"url": STRING}),
        "file": obj({"file_id": STRING}),
        "content": obj({"content": either(STRING, LIST)}),
    }
)
_DOCUMENT = obj({"source": _DOCUMENT_SOURCE, "title": STRING}, required=("source",))
_SEARCH_RESULT = obj({"source": STRING, "title": STRING, "content": LIST})
_TOOL_REFERENCE = OBJECT

_RESULT_PART = tagged(
    {
        "text": _TEXT,
        "image": _IMAGE,
        "document": _DOCUMENT,
        "search_result": _SEARCH_RESULT,
        "tool_reference": _TOOL_REFERENCE,
    }
)
_TOOL_RESULT = obj(
    {"tool_use_id": STRING, "content": either(STRING, list_of(_RESULT_PART)), "is_error": BOOL}
)
_TOOL_USE = obj({"id": STRING, "name": STRING, "input": OBJECT})

BLOCK: Rule = tagged(
    {
        "text": _TEXT,
        "image": _IMAGE,
        "document": _DOCUMENT,
        "search_result": _SEARCH_RESULT,
        "thinking": obj({"thinking": STRING, "signature": STRING}, required=("thinking",)),
        "redacted_thinking": obj({"data": STRING}),
        "tool_use": _TOOL_USE,
        "tool_result": _TOOL_RESULT,
        "tool_reference": _TOOL_REFERENCE,
        "container_upload": OBJECT,
        "compaction": OBJECT,
    },
    open_suffixes=_OPEN_FAMILIES,
)

_MESSAGE = obj(
    {"role": one_of("user", "assistant", "system"), "content": either(STRING, list_of(BLOCK))},
    required=("role", "content"),
)
_TOOL = obj(
    {
        "name": STRING,
        "description": STRING,
        "input_schema": OBJECT,
        "type": STRING,
        "cache_control": OBJECT,
    }
)
_PARALLEL = {"disable_parallel_tool_use": BOOL}
_TOOL_CHOICE = tagged(
    {
        "auto": obj(_PARALLEL),
        "any": obj(_PARALLEL),
        "tool": obj({"name": STRING, **_PARALLEL}, required=("name",)),
        "none": OBJECT,
    }
)
_THINKING = tagged(
    {
        "enabled": obj({"budget_tokens": INT, "display": STRING}),
        "disabled": OBJECT,
        "adaptive": obj({"display": STRING}),
    }
)

MESSAGES: Rule = obj(
    {
        "messages": list_of(_MESSAGE),
        "system": either(STRING, list_of(tagged({"text": _TEXT}))),
        "max_tokens": INT,
        "stream": BOOL,
        "stop_sequences": list_of(STRING),
        "temperature": NUMBER,
        "top_p": NUMBER,
        "top_k": INT,
        "metadata": obj({"user_id": STRING}),
        "tools": list_of(_TOOL),
        "tool_choice": _TOOL_CHOICE,
        "thinking": _THINKING,
        "output_config": obj({"effort": STRING, "format": OBJECT}),
        "context_management": obj({"edits": list_of(obj({"type": STRING}))}),
        "cache_control": OBJECT,
        "service_tier": STRING,
    },
)
