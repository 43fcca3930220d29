"""`${VAR}` and `${VAR:-default}` in a parsed configuration, read from the environment.

A missing variable is an error that names it and the key path that used it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from routatic_asgi.errors import ConfigError

__all__ = ["expand", "missing_error"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(
    node: Any, env: Mapping[str, str], path: str, found: dict[str, str], missing: dict[str, str]
) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of the tree.

    `found` records which variables each path used; `missing` every unset one, by name.
    """
    if isinstance(node, dict):
        return {
            key: expand(value, env, _join(path, key), found, missing) for key, value in node.items()
        }
    if isinstance(node, list):
        return [
            expand(value, env, _join(path, index), found, missing)
            for index, value in enumerate(node)
        ]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name) or default
        if value is None:
            missing.setdefault(name, path)
            return ""
        return value

    names = [match.group(1) for match in _VAR.finditer(node)]
    if names:
        found[path] = ", ".join(names)
    return _VAR.sub(substitute, node)


def missing_error(source: str, missing: dict[str, str]) -> ConfigError:
    names = list(missing)
    if len(names) == 1:
        problem = f"environment variable {names[0]} is not set"
    else:
        where = ", ".join(f"{name} ({path})" for name, path in missing.items())
        problem = f"environment variables are not set: {where}"
    exports = " ".join(f"{name}=..." for name in names)
    return ConfigError(
        source, missing[names[0]], problem, f"export {exports} or write ${{{names[0]}:-default}}"
    )


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)
