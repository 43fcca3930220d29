"""Reasoning that crosses providers: who issued it, and where it may go back.

Signed reasoning only goes back to the provider that issued it. In the pivot a `thinking`
block's `signature` says where it came from:

- an Anthropic signature, as Anthropic wrote it (only Anthropic targets get it back);
- `responses:<item id>:<encrypted_content>`, from a Responses target (the colon keeps it
  from ever looking like an Anthropic signature, so Anthropic targets drop it);
- empty: reasoning text with no signature (Chat Completions targets), sent to nobody signed.

A Responses client gets reasoning that another protocol wrote as a `reasoning` item whose
`encrypted_content` is tagged `routatic:<origin>:<payload>`; when that client sends it back,
it becomes the pivot block it was, and a Responses target never receives it
(`foreign_reasoning`). Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "RESPONSES_PREFIX",
    "TAG",
    "foreign_reasoning",
    "from_item",
    "has_foreign_reasoning",
    "responses_signature",
    "to_encrypted",
    "without_foreign_reasoning",
]

RESPONSES_PREFIX = "responses:"
TAG = "routatic:"


def responses_signature(item_id: str, encrypted: str) -> str:
    return f"{RESPONSES_PREFIX}{item_id}:{encrypted}"


def from_responses_signature(signature: str) -> tuple[str, str] | None:
    """(item id, encrypted_content) of a pivot signature a Responses target issued."""
    if not signature.startswith(RESPONSES_PREFIX):
        return None
    item_id, _, encrypted = signature[len(RESPONSES_PREFIX) :].partition(":")
    return (item_id, encrypted) if item_id and encrypted else None


def to_encrypted(block: Mapping[str, Any]) -> str:
    """The `encrypted_content` a Responses client gets for a pivot thinking block."""
    if block.get("type") == "redacted_thinking":
        return f"{TAG}anthropic-redacted:{block.get('data', '')}"
    signature = str(block.get("signature") or "")
    if signature.startswith(RESPONSES_PREFIX):
        return f"{TAG}responses:{signature[len(RESPONSES_PREFIX) :]}"
    return f"{TAG}anthropic:{signature}" if signature else f"{TAG}none:"


def from_item(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Responses client's `reasoning` input item as a pivot block (None: nothing to keep)."""
    summary = item.get("summary")
    text = "\n\n".join(
        str(part.get("text", ""))
        for part in (summary if isinstance(summary, list) else ())
        if isinstance(part, dict)
    )
    encrypted = item.get("encrypted_content")
    encrypted = encrypted if isinstance(encrypted, str) else ""
    if encrypted.startswith(TAG):
        origin, _, payload = encrypted[len(TAG) :].partition(":")
        if origin == "anthropic-redacted":
            return {"type": "redacted_thinking", "data": payload}
        if origin == "anthropic":
            return {"type": "thinking", "thinking": text, "signature": payload}
        if origin == "responses":
            return {"type": "thinking", "thinking": text, "signature": RESPONSES_PREFIX + payload}
        return {"type": "thinking", "thinking": text, "signature": ""} if text else None
    if encrypted:
        item_id = str(item.get("id") or "rs_unknown")
        return {
            "type": "thinking",
            "thinking": text,
            "signature": responses_signature(item_id, encrypted),
        }
    return {"type": "thinking", "thinking": text, "signature": ""} if text else None


def foreign_reasoning(item: Any) -> bool:
    """A reasoning input item another protocol wrote: a Responses target would refuse it."""
    if not (isinstance(item, dict) and item.get("type") == "reasoning"):
        return False
    encrypted = item.get("encrypted_content")
    if not isinstance(encrypted, str) or not encrypted.startswith(TAG):
        return False
    return not encrypted.startswith(f"{TAG}responses:")


def has_foreign_reasoning(payload: Mapping[str, Any]) -> bool:
    """Whether any reasoning input item was written through this gateway (and needs repair)."""
    items = payload.get("input")
    return isinstance(items, list) and any(_tagged(item) for item in items)


def _tagged(item: Any) -> bool:
    if not (isinstance(item, dict) and item.get("type") == "reasoning"):
        return False
    encrypted = item.get("encrypted_content")
    return isinstance(encrypted, str) and encrypted.startswith(TAG)


def without_foreign_reasoning(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The body with other protocols' reasoning taken out; reasoning a Responses target
    issued (and this gateway carried through another client protocol) restored as it was."""
    items = []
    for item in payload.get("input") or ():
        if foreign_reasoning(item):
            continue
        encrypted = item.get("encrypted_content") if isinstance(item, dict) else None
        if isinstance(encrypted, str) and encrypted.startswith(f"{TAG}responses:"):
            item_id, _, original = encrypted[len(f"{TAG}responses:") :].partition(":")
            item = {**item, "id": item_id, "encrypted_content": original}
        items.append(item)
    return {**payload, "input": items}
