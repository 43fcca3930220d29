"""The shape of an OpenAI Responses API request, as far as the gateway reads it.

Every field the translation to the pivot, routing or the token estimate reads is named here
with the types they can handle. Input items are objects told apart by `type` (a message when
absent); item and tool types the gateway does not know (hosted tool calls, item
references...) are left to the upstream, as are schemas. Pure data.
"""

from __future__ import annotations

from routatic_asgi.shapes.containers import either, list_of, obj
from routatic_asgi.shapes.rules import BOOL, INT, LIST, NUMBER, OBJECT, STRING, Rule, one_of

__all__ = ["RESPONSES"]

_PART = obj({"type": STRING, "text": STRING, "image_url": STRING, "refusal": STRING})
_ITEM = obj(
    {
        "type": STRING,
        "role": one_of("user", "assistant", "system", "developer"),
        "content": either(STRING, list_of(_PART)),
        "call_id": STRING,
        "name": STRING,
        "namespace": STRING,
        "arguments": STRING,
        "output": either(STRING, list_of(_PART)),
        "summary": LIST,
        "encrypted_content": STRING,
    }
)
_TOOL = obj(
    {
        "type": STRING,
        "name": STRING,
        "description": STRING,
        "parameters": OBJECT,
        "strict": BOOL,
        "tools": LIST,
    },
    required=("type",),
)

RESPONSES: Rule = obj(
    {
        "input": either(STRING, list_of(_ITEM)),
        "instructions": STRING,
        "stream": BOOL,
        "store": BOOL,
        "max_output_tokens": INT,
        "temperature": NUMBER,
        "top_p": NUMBER,
        "tools": list_of(_TOOL),
        "tool_choice": either(
            one_of("none", "auto", "required"), mapping=obj({"type": STRING, "name": STRING})
        ),
        "parallel_tool_calls": BOOL,
        "reasoning": obj({"effort": STRING, "summary": STRING}),
        "text": obj({"format": obj({"type": STRING, "schema": OBJECT})}),
        "previous_response_id": STRING,
        "user": STRING,
    },
)
