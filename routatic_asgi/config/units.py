"""The value types a configuration is written in: durations, sizes and secrets.

`30s` becomes seconds, `32MiB` bytes, a key a `SecretStr` that is never blank. The JSON
Schema says what a file may hold, not what it becomes. Nothing here knows the settings.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

__all__ = ["Bytes", "Model", "Seconds", "Secret"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def _duration(value: Any) -> Any:
    """Accept `30`, `30s`, `1.5m`, `250ms`, `1h`; return seconds as a float."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write it like 30s, 250ms, 15m or 1h")
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return value


def _size(value: Any) -> Any:
    """Accept `1048576`, `512KiB`, `32MiB`; return bytes as an int."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a size; write it like 32MiB or 1048576")
        return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    return value


def _not_blank(value: SecretStr) -> SecretStr:
    """An empty key (`${KEY:-}` with KEY unset) would match an empty header, or be sent as one."""
    if not value.get_secret_value().strip():
        raise PydanticCustomError("blank_secret", "the key is empty or blank")
    return value


Secret = Annotated[SecretStr, AfterValidator(_not_blank)]
# The schema says what a file may hold (`30s`, `32MiB`, `${VAR}`), not what it becomes.
_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "description": "e.g. 250ms, 30s, 15m, 1h, or ${VAR}"},
    ]
}
_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "exclusiveMinimum": 0},
        {"type": "string", "description": "e.g. 512KiB, 32MiB, or ${VAR}"},
    ]
}
Seconds = Annotated[
    float, BeforeValidator(_duration), Field(ge=0), WithJsonSchema(_DURATION_SCHEMA)
]
Bytes = Annotated[int, BeforeValidator(_size), Field(gt=0), WithJsonSchema(_SIZE_SCHEMA)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
