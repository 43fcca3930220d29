"""Reading a configuration: YAML text or a parsed tree, validated into a `Config`.

Every mistake is reported at once, each naming the file, the key path and the fix; a YAML
syntax error names the line and column, never the offending text (it may hold a key).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from routatic_asgi.config.env import expand, missing_error
from routatic_asgi.config.model import Config
from routatic_asgi.config_errors import unknown_providers, validation_errors
from routatic_asgi.errors import ConfigError

__all__ = ["load_config", "parse_config"]


def parse_config(
    data: Any, *, source: str = "<config>", env: Mapping[str, str] | None = None
) -> Config:
    """Validate a parsed YAML tree, expanding `${VAR}` from `env` (default: os.environ)."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "the file is not a mapping", "see the README's example")
    variables: dict[str, str] = {}
    missing: dict[str, str] = {}
    expanded = expand(data, os.environ if env is None else env, "", variables, missing)
    errors = [missing_error(source, missing)] if missing else []
    try:
        config = Config.model_validate(expanded)
    except ValidationError as exc:
        # Every mistake at once; the cross-check of chains runs on the raw tree, since
        # pydantic skips the model's own check when a field failed.
        found = validation_errors(
            exc, Config, source, skip=list(missing.values()), variables=variables
        )
        errors += [error for error in found if error.path]
        errors += unknown_providers(expanded, source)
    if errors:
        first, *more = errors
        raise ConfigError(first.source, first.path, first.problem, first.fix, more=more)
    config._variables.update(variables)
    config._source = source
    resolved = json.dumps(expanded, sort_keys=True, default=str).encode()
    config._digest = hashlib.sha256(resolved).hexdigest()[:12]
    return config


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            source, "", f"cannot read the file: {exc.strerror}", "check the path"
        ) from None
    return parse_config(_load_yaml(text, source), source=source, env=env)


# `${VAR}`, `${VAR:-default}` and `{model}`: YAML reads `{` in a flow list (`[zen/{model}]`,
# `[${KEY}]`) as the start of a mapping, so they are swapped for plain words while parsing.
_PLACEHOLDER = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}\n]*)?\}|\{model\}")


def _load_yaml(text: str, source: str) -> Any:
    token = "__routatic_placeholder_"
    while token in text:
        token += "_"
    found: list[str] = []

    def hide(match: re.Match[str]) -> str:
        found.append(match.group(0))
        return f"{token}{len(found) - 1}__"

    hidden = re.compile(re.escape(token) + r"(\d+)__")
    parsed = _PLACEHOLDER.sub(hide, text)
    try:
        data = yaml.safe_load(parsed)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source, parsed, hidden, found) from None
    if not found:
        return data
    return _restore(data, lambda value: hidden.sub(lambda m: found[int(m.group(1))], value))


def _yaml_error(
    exc: yaml.YAMLError, source: str, parsed: str, hidden: re.Pattern[str], found: list[str]
) -> ConfigError:
    """Line, column (of the file as written) and reason; never the offending text."""
    mark = getattr(exc, "problem_mark", None)
    reason = getattr(exc, "problem", None) or "not valid YAML"
    if mark is None:
        return ConfigError(source, "", f"invalid YAML: {reason}", "fix the YAML syntax")
    column = mark.column
    line = parsed.splitlines()[mark.line] if mark.line < len(parsed.splitlines()) else ""
    for match in hidden.finditer(line):  # placeholders were swapped for longer words
        if match.end() <= mark.column:
            column -= len(match.group(0)) - len(found[int(match.group(1))])
    context = getattr(exc, "context", None)
    detail = f"{reason} ({context})" if context else reason
    return ConfigError(
        source,
        "",
        f"invalid YAML at line {mark.line + 1}, column {column + 1}: {detail}",
        "fix the YAML syntax",
    )


def _restore(node: Any, restore: Callable[[str], str]) -> Any:
    if isinstance(node, dict):
        return {_restore(key, restore): _restore(value, restore) for key, value in node.items()}
    if isinstance(node, list):
        return [_restore(value, restore) for value in node]
    return restore(node) if isinstance(node, str) else node
