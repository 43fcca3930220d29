"""The shape of an OpenAI Chat Completions request, as far as the gateway reads it.

Every field that routing, trait matching, the token estimate or the translation to
Anthropic reads is named here with the types they can handle; fields nobody reads
(`response_format`, `logit_bias`, a function's `parameters` schema) are left to the upstream.
Content parts are told apart by `type`; an unknown part type is refused. Pure data.
"""

from __future__ import annotations

from routatic_asgi.shapes.containers import either, list_of, obj, tagged
from routatic_asgi.shapes.rules import BOOL, INT, NUMBER, OBJECT, STRING, Rule, one_of

__all__ = ["CHAT_COMPLETIONS"]

_IMAGE_URL = either(STRING, mapping=obj({"url": STRING, "detail": STRING}, required=("url",)))
_PART = tagged(
    {
        "text": obj({"text": STRING}, required=("text",)),
        "image_url": obj({"image_url": _IMAGE_URL}, required=("image_url",)),
        "refusal": obj({"refusal": STRING}),
        "input_audio": OBJECT,
        "file": OBJECT,
    }
)
_FUNCTION_CALL = obj({"name": STRING, "arguments": either(STRING, mapping=OBJECT)})
_TOOL_CALL = obj({"id": STRING, "type": STRING, "function": _FUNCTION_CALL})

_MESSAGE = obj(
    {
        "role": one_of("system", "developer", "user", "assistant", "tool", "function"),
        "content": either(STRING, list_of(_PART)),
        "tool_calls": list_of(_TOOL_CALL),
        "tool_call_id": STRING,
        "name": STRING,
        "reasoning_content": STRING,
        "reasoning": STRING,
    },
    required=("role",),
)
_FUNCTION = obj(
    {"name": STRING, "description": STRING, "parameters": OBJECT, "strict": BOOL},
    required=("name",),
)
_TOOL = obj({"type": STRING, "function": _FUNCTION})
_TOOL_CHOICE = either(
    one_of("none", "auto", "required"),
    mapping=obj({"type": STRING, "function": obj({"name": STRING})}),
)

CHAT_COMPLETIONS: Rule = obj(
    {
        "messages": list_of(_MESSAGE),
        "stream": BOOL,
        "stream_options": obj({"include_usage": BOOL}),
        "max_tokens": INT,
        "max_completion_tokens": INT,
        "stop": either(STRING, list_of(STRING)),
        "temperature": NUMBER,
        "top_p": NUMBER,
        "n": INT,
        "tools": list_of(_TOOL),
        "tool_choice": _TOOL_CHOICE,
        "parallel_tool_calls": BOOL,
        "reasoning_effort": STRING,
        "reasoning": obj({"effort": STRING, "max_tokens": INT}),
        "thinking": obj({"type": STRING}),
        "user": STRING,
    },
)
