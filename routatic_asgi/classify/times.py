"""What an upstream's headers and bodies say about time: how long to wait, when a used-up
credential resets, and whether a successful answer says nothing is left.

Pure functions of headers, a body and `now`. Every stated moment is bounded: one header
must never park a target for years, nor put a number no store or header can hold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

__all__ = [
    "MAX_RESET",
    "MAX_WAIT",
    "bounded_wait",
    "depleted_until",
    "parse_go_duration",
    "parse_retry_after",
    "unified_rejected",
    "usage_reset_at",
]

_TRY_AGAIN_IN = re.compile(r"try again in\s+((?:\d+(?:\.\d+)?\s*[hms]\s*)+)", re.IGNORECASE)
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|h|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


# The longest wait an upstream's `Retry-After` is taken at (`resilience.max_wait`), and the
# furthest a usage limit's stated reset is believed: one header must never park a target
# for years, nor put a number no store or header can hold on the way.
MAX_WAIT = 3600.0
MAX_RESET = 31 * 86400.0


def parse_retry_after(
    headers: Mapping[str, str], now: float, limit: float = MAX_WAIT
) -> float | None:
    """Seconds to wait, from `retry-after-ms`, or `retry-after` as seconds or an HTTP date.

    `0`, a negative number or a date in the past means "now" (0.0); a wait beyond `limit` is
    `limit`; an unreadable value ("nan", "soon") means nothing (None).
    """
    seconds = _retry_after(headers, now)
    return None if seconds is None else min(seconds, limit)


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return _finite(max(float(millis) / 1000.0, 0.0))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return _finite(max(float(value), 0.0))
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def bounded_wait(name: bytes, value: bytes, limit: float) -> bytes | None:
    """A relayed `retry-after` (seconds) or `retry-after-ms` value a client can act on: a
    number is clamped to 0..`limit`, an HTTP date is kept, anything else (`nan`) is dropped."""
    text = value.decode("latin-1").strip()
    try:
        number = float(text)
    except ValueError:
        return value if _is_http_date(text) else None
    if math.isnan(number):
        return None
    scale = 1000.0 if name == b"retry-after-ms" else 1.0
    bounded = min(max(number, 0.0), limit * scale)
    return str(math.ceil(bounded)).encode()


def _is_http_date(text: str) -> bool:
    try:
        parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return True


def _finite(seconds: float) -> float | None:
    """An unbounded or undefined wait ("inf", "nan", 400 digits) is no wait we can honour."""
    return seconds if math.isfinite(seconds) else None


def parse_go_duration(text: str) -> float | None:
    """`6m0s`, `1h2m3.5s`, `250ms` (OpenAI's x-ratelimit-reset-* form) in seconds."""
    parts = _GO_DURATION.findall(text)
    if not parts or _GO_DURATION.sub("", text).strip():
        return None
    return _finite(sum(float(number) * _GO_UNITS[unit] for number, unit in parts))


_UNIFIED_WINDOWS = ("", "-5h", "-7d")


def unified_rejected(headers: Mapping[str, str]) -> bool:
    return any(
        headers.get(f"anthropic-ratelimit-unified{window}-status", "").strip().lower() == "rejected"
        for window in _UNIFIED_WINDOWS
    )


def _reset_header(name: str, value: str, now: float) -> float | None:
    """A `*-reset` header as epoch seconds: a Go duration (`6m0s`), epoch or date."""
    seconds = parse_go_duration(value.strip()) if name.startswith("x-ratelimit-reset") else None
    if seconds is not None:
        return now + seconds
    return _parse_moment(value.strip(), now)


def _unified_reset(headers: Mapping[str, str], now: float) -> float | None:
    """When a rejected Claude subscription resets: the overall reset, else a rejected window's."""
    overall = _parse_moment(headers.get("anthropic-ratelimit-unified-reset", ""), now)
    if overall is not None:
        return overall
    moments = [
        _parse_moment(headers.get(f"anthropic-ratelimit-unified{window}-reset", ""), now)
        for window in _UNIFIED_WINDOWS[1:]
        if headers.get(f"anthropic-ratelimit-unified{window}-status", "").lower() == "rejected"
    ]
    found = [moment for moment in moments if moment is not None]
    return max(found) if found else None


def depleted_until(headers: Mapping[str, str], now: float) -> float | None:
    """When a *successful* answer's rate-limit headers say nothing is left: the stated reset.

    `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-remaining: 0`, OpenAI's
    `x-ratelimit-remaining-{requests,tokens}: 0`, or a rejected unified status. None when
    something is left or no reset is stated.
    """
    moments: list[float | None] = []
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        if headers.get(f"anthropic-ratelimit-{kind}-remaining", "").strip() == "0":
            reset = headers.get(f"anthropic-ratelimit-{kind}-reset", "")
            moments.append(_parse_moment(reset.strip(), now))
    for kind in ("requests", "tokens"):
        if headers.get(f"x-ratelimit-remaining-{kind}", "").strip() == "0":
            name = f"x-ratelimit-reset-{kind}"
            moments.append(_reset_header(name, headers.get(name, ""), now))
    if unified_rejected(headers):
        moments.append(_unified_reset(headers, now))
    future = [m for m in moments if m is not None and m > now and math.isfinite(m)]
    return min(max(future), now + MAX_RESET) if future else None


def usage_reset_at(headers: Mapping[str, str], body: bytes, now: float) -> float | None:
    """When an exhausted credential resets (epoch seconds), from headers or body, if stated."""
    candidates: list[float] = []
    if unified_rejected(headers):
        unified = _unified_reset(headers, now)
        if unified is not None and unified > now:
            return min(unified, now + MAX_RESET)
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith("anthropic-ratelimit-unified"):
            continue  # a window that is not rejected says nothing about this limit
        if (
            lowered.startswith("anthropic-ratelimit-") and lowered.endswith("-reset")
        ) or lowered.startswith("x-ratelimit-reset"):
            moment = _reset_header(lowered, value, now)
            if moment is not None:
                candidates.append(moment)
    retry_after = parse_retry_after(headers, now, MAX_RESET)
    if retry_after is not None:
        candidates.append(now + retry_after)
    candidates.extend(_body_resets(body, now))
    future = [moment for moment in candidates if moment > now and math.isfinite(moment)]
    return min(max(future), now + MAX_RESET) if future else None


def _body_resets(body: bytes, now: float) -> list[float]:
    found: list[float] = []
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    stack = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "resets_at" and isinstance(value, (int, float, str)):
                    moment = _parse_moment(str(value), now)
                    if moment is not None:
                        found.append(moment)
                elif key == "resets_in_seconds" and isinstance(value, (int, float)):
                    found.append(now + float(value))
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    text_match = _TRY_AGAIN_IN.search(body[:65536].decode("utf-8", "replace"))
    if text_match:
        seconds = parse_go_duration(text_match.group(1).replace(" ", ""))
        if seconds is not None:
            found.append(now + seconds)
    return found


def _parse_moment(value: str, now: float) -> float | None:
    """An epoch-seconds number or an RFC 3339 / HTTP date, as epoch seconds."""
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            return None
        # Epoch milliseconds are far in the future as seconds; small numbers are deltas.
        if number > 1e12:
            return number / 1000.0
        return number if number > 1e9 else now + number
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        pass
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
