"""How a configuration's mistakes are told: every one at once, each with its key path and fix.

Pydantic's validation errors become `ConfigError`s with a "did you mean" for a misspelt key
or provider; YAML syntax errors say line, column and reason. This module never echoes a
value from the file: a key, a token or a URL with a password may be anywhere in it.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from routatic_asgi.errors import ConfigError

__all__ = ["unknown_providers", "validation_errors"]


def validation_errors(
    exc: ValidationError,
    model: type[BaseModel],
    source: str,
    skip: Sequence[str] = (),
    variables: Mapping[str, str] | None = None,
) -> list[ConfigError]:
    """One ConfigError per pydantic error, leaving out those under a path in `skip`.

    `variables` names the environment variable each path was read from, for the fix."""
    variables = variables or {}
    errors = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = _untagged(tuple(error["loc"]))
        path = ".".join(str(part) for part in loc)
        if any(path == gone or path.startswith(gone + ".") for gone in skip):
            continue
        message = error["msg"].removeprefix("Value error, ")
        fix = _fix_for(error, variables.get(path) or variables.get(path.rpartition(".")[0]))
        if error["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1])
            message = f"unknown key {loc[-1]!r}{_did_you_mean(str(loc[-1]), known)}"
        errors.append(ConfigError(source, path, message, fix))
    return errors


def unknown_providers(data: Any, source: str) -> list[ConfigError]:
    """Each chain entry whose provider is not under `providers`, with the nearest name."""
    if not isinstance(data, Mapping):
        return []
    providers = data.get("providers")
    known = sorted(providers) if isinstance(providers, Mapping) else []
    routes = data.get("routes")
    errors = []
    for index, route in enumerate(routes if isinstance(routes, list) else []):
        chain = route.get("chain") if isinstance(route, Mapping) else None
        for entry in _chain_targets(chain):
            provider = entry.partition("/")[0]
            if provider and provider not in known:
                errors.append(
                    ConfigError(
                        source,
                        f"routes.{index}.chain",
                        f"{entry!r} names provider {provider!r}, which is not under providers"
                        f"{_did_you_mean(provider, known)}",
                        f"use one of {', '.join(known) or '(none yet)'}, or add it to providers",
                    )
                )
    return errors


def _untagged(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A location without the tag pydantic adds for a chain step's kind (target or group)."""
    parts = list(loc)
    for index in range(len(parts) - 1, 1, -1):
        tagged = parts[index - 2] == "chain" and isinstance(parts[index - 1], int)
        if tagged and parts[index] in ("target", "group"):
            del parts[index]
    return tuple(parts)


def _chain_targets(chain: Any) -> list[str]:
    """Every provider/model a raw chain names: its entries and its groups' members."""
    found: list[str] = []
    for entry in chain if isinstance(chain, list) else []:
        group = entry.get("group") if isinstance(entry, Mapping) else None
        if not isinstance(entry, Mapping):
            found.append(str(entry))
        for member in group if isinstance(group, list) else []:
            target = member.get("target") if isinstance(member, Mapping) else member
            if isinstance(target, str):
                found.append(target)
    return found


def _did_you_mean(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fix_for(error: Mapping[str, Any], variable: str | None = None) -> str:
    kind = error["type"]
    if kind == "blank_secret":
        if variable:
            return f"export {variable} with the key, or remove the entry"
        return "write the key, or remove the entry"
    if kind == "missing":
        return "add this key"
    if kind == "extra_forbidden":
        return "remove or rename this key (see `routatic-asgi schema`)"
    if kind == "literal_error":
        return f"use one of {error.get('ctx', {}).get('expected', 'the listed values')}"
    return "see `routatic-asgi schema` for the expected shape"


def _fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The keys allowed at `loc` (a pydantic error location), found by walking the models."""
    current: Any = model
    for part in loc:
        current = _bare(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return []
    current = _bare(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _bare(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` as X."""
    while True:
        origin = get_origin(annotation)
        if origin in (Union, types.UnionType):
            rest = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        elif hasattr(annotation, "__metadata__"):
            annotation = annotation.__origin__
        else:
            return annotation
