"""Protocol translation: every wire protocol as codecs around one pivot.

The pivot is the Anthropic Messages shape (`pivot`). Each protocol is one package of codecs
to and from it — request, answer, stream, error — described by a `Codec` (`codec`):
`anthropic` (the pivot's own shape: history repair only), `chat` (OpenAI Chat Completions)
and `responses` (the OpenAI Responses API).
`translation` composes a client's codec with a target's, so any client protocol reaches any
target protocol; a same-protocol passthrough never comes here. Adding a protocol is one new
package and one line in `translation.CODECS`. Reading what a request asks for (its token
estimate, traits, fitness for a model) is no codec's job: `routatic_asgi.payload` does it.
Nothing here performs I/O.
"""

from routatic_asgi.translate.anthropic import anthropic_history, has_foreign_thinking
from routatic_asgi.translate.chat import (
    AnthropicToOpenAI,
    OpenAIToAnthropic,
    to_anthropic,
    to_openai,
)
from routatic_asgi.translate.chat.answers import to_anthropic_message, to_openai_completion
from routatic_asgi.translate.codec import Codec, EventKind, StreamCodec, stream_error_event
from routatic_asgi.translate.pivot import TranslationError
from routatic_asgi.translate.translation import CODECS, Translation, cap_output

__all__ = [
    "CODECS",
    "AnthropicToOpenAI",
    "Codec",
    "EventKind",
    "OpenAIToAnthropic",
    "StreamCodec",
    "Translation",
    "TranslationError",
    "anthropic_history",
    "cap_output",
    "has_foreign_thinking",
    "stream_error_event",
    "to_anthropic",
    "to_anthropic_message",
    "to_openai",
    "to_openai_completion",
]
