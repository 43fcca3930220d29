"""Warnings about a configuration that loads but probably does not do what its author meant.

`check` prints them and `serve` says them at start: an OpenAI base_url that is not an API
root, a route no request can reach, models that no route serves. Pure: it reads a `Config`
and returns sentences, never performs I/O, and never quotes a key or a URL's password.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from routatic_asgi.config import Config, RouteConfig

__all__ = ["config_warnings"]

_VERSIONED = re.compile(r"/v\d+[a-z0-9]*(/|$)")


def config_warnings(config: Config) -> list[str]:
    """Every warning about `config`, each naming its key path."""
    return [*_base_urls(config), *_shadowed_routes(config), *_catch_all(config)]


def _base_urls(config: Config) -> list[str]:
    found = []
    for name, provider in config.providers.items():
        if provider.protocol == "anthropic":
            continue
        path = urlsplit(provider.base_url).path.rstrip("/")
        if not _VERSIONED.search(path + "/"):
            found.append(
                f"providers.{name}.base_url: its path ({path or '/'}) has no version such as "
                f"/v1; the gateway appends /chat/completions, so requests go to "
                f"{path}/chat/completions. Most OpenAI-compatible APIs are rooted at /v1: "
                f"check the provider's documentation (`check --probe` tries it)."
            )
    return found


def _shadowed_routes(config: Config) -> list[str]:
    found = []
    for later_index, later in enumerate(config.routes):
        for index, earlier in enumerate(config.routes[:later_index]):
            if _covers(earlier, later):
                found.append(
                    f"routes.{later_index}: match {later.match!r} is never reached: "
                    f"routes.{index} (match {earlier.match!r}) comes first and takes every "
                    "model it could; move it above, or narrow the earlier glob"
                )
                break
    return found


def _covers(earlier: RouteConfig, later: RouteConfig) -> bool:
    """Every request `later` could take, `earlier` takes first."""
    if earlier.when is not None and earlier.when != later.when:
        return False
    # A glob read as a name: `claude-*` matches the name `claude-opus-*`, and every model
    # `claude-opus-*` matches starts with `claude-`. Close enough for a warning.
    return earlier.match == later.match or fnmatchcase(later.match, earlier.match)


def _catch_all(config: Config) -> list[str]:
    if any(route.match == "*" and route.when is None for route in config.routes):
        return []
    return [
        "routes: no route has match: '*', so a model no glob matches gets 404 (Claude Code "
        'asks for Haiku for titles and summaries); add `- match: "*"` last'
    ]
