"""The status page's prompt-cache hit ratio, from request log lines: cache read over every input
token (uncached, read, written), per provider and served model, as the Overview dashboard."""

from __future__ import annotations

from typing import Any

from routatic_asgi.status_page import cache_hits


def _line(
    provider: str | None, model: str, read: int, written: int, uncached: int
) -> dict[str, Any]:
    tokens = {"input": uncached, "output": 5, "cache_read": read, "cache_write": written}
    return {"provider": provider, "served_model": model, "tokens": tokens}


def test_each_provider_and_model_gets_its_share_of_cached_input() -> None:
    lines = [
        _line("zen", "glm-5", 0, 900, 100),  # the first turn writes the cache
        _line("zen", "glm-5", 900, 50, 50),  # the next reads it
        _line("openrouter", "glm-5", 0, 0, 400),
    ]
    hits = {(h["provider"], h["model"]): h for h in cache_hits(lines)}
    assert hits["zen", "glm-5"]["hit_ratio"] == 900 / 2000
    assert hits["zen", "glm-5"]["requests"] == 2
    assert (hits["zen", "glm-5"]["cache_read"], hits["zen", "glm-5"]["cache_write"]) == (900, 950)
    assert hits["openrouter", "glm-5"]["hit_ratio"] == 0


def test_requests_no_target_served_or_without_usage_do_not_count() -> None:
    failed = {"provider": None, "served_model": None, "tokens": {"input": 0, "output": 0}}
    silent = _line("local", "qwen3-coder", 0, 0, 0)  # an upstream that reports no usage
    assert cache_hits([failed, silent]) == []
