"""Can this target's model serve this request at all? Decided before any call is made.

`providers.P.models.M: {context, vision, tools, thinking}` states what a model can do. A
request with images for a model without vision, with tools for one without tools, or longer
(by the local estimate) than its context window gets a reason, and the relay skips the target
as unfit. A model without thinking is still fit: the translation just leaves reasoning off.
Pure; it never calls the upstream and never changes the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routatic_asgi.classify import Reason
from routatic_asgi.config import ModelCaps
from routatic_asgi.translate.tokens import estimate_tokens

__all__ = ["has_images", "unfit_reason"]


def _has_image(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") in ("image", "image_url", "input_image"):
            return True
        if block.get("type") == "tool_result" and _has_image(block.get("content")):
            return True
    return False


def has_images(payload: Mapping[str, Any]) -> bool:
    """Whether any message of an Anthropic, Chat or Responses body carries an image."""
    for messages in (payload.get("messages"), payload.get("input")):
        if isinstance(messages, list) and any(
            isinstance(m, dict) and _has_image(m.get("content")) for m in messages
        ):
            return True
    return False


def unfit_reason(payload: Mapping[str, Any], caps: ModelCaps | None) -> Reason | None:
    """Why a model with `caps` cannot serve this body (`unfit_vision`...), or None if it can."""
    if caps is None:
        return None
    if not caps.vision and has_images(payload):
        return Reason.UNFIT_VISION
    if not caps.tools and payload.get("tools"):
        return Reason.UNFIT_TOOLS
    if caps.context is not None and estimate_tokens(payload) > caps.context:
        return Reason.UNFIT_CONTEXT
    return None
