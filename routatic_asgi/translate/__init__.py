"""Protocol translation between Anthropic Messages and OpenAI Chat Completions.

Pure code, one module per concern. For Anthropic clients on OpenAI-protocol targets:
`requests` (the body sent) and `streams` (chunks to events); for OpenAI clients on Anthropic
targets: `chat_requests` and `chat_streams`. Both ways: `responses` (non-streamed answers,
usage, stop reasons), `errors` (envelopes and error events), `continuity` (history one
provider wrote, made acceptable to the next), `tokens` (a local estimate), `fit` (model
capabilities) and `translation` (the `Exchange` the relay uses). Nothing here performs I/O.
"""

from routatic_asgi.translate.chat_requests import to_anthropic
from routatic_asgi.translate.chat_streams import AnthropicToOpenAI
from routatic_asgi.translate.continuity import anthropic_history, has_foreign_thinking
from routatic_asgi.translate.fit import unfit_reason
from routatic_asgi.translate.requests import to_openai
from routatic_asgi.translate.responses import (
    TranslationError,
    to_anthropic_message,
    to_openai_completion,
)
from routatic_asgi.translate.streams import OpenAIToAnthropic
from routatic_asgi.translate.tokens import estimate_tokens
from routatic_asgi.translate.translation import Repaired, Translation

__all__ = [
    "AnthropicToOpenAI",
    "OpenAIToAnthropic",
    "Repaired",
    "Translation",
    "TranslationError",
    "anthropic_history",
    "estimate_tokens",
    "has_foreign_thinking",
    "to_anthropic",
    "to_anthropic_message",
    "to_openai",
    "to_openai_completion",
    "unfit_reason",
]
