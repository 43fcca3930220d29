"""The configuration: its schema, the YAML loader and the embedded default.

A configuration is validated once, at start, into frozen pydantic models. Every error names
the file, the key path and the fix. Nothing here opens a connection or logs a secret: a key
is held as a `SecretStr` and only its last four characters ever leave it.

The value types are in units.py, the models in providers.py, routes.py and model.py,
`${VAR}` interpolation in env.py, reading in loading.py, the embedded default in default.py.
"""

from __future__ import annotations

from routatic_asgi.config.default import default_config, default_left_out
from routatic_asgi.config.loading import load_config, parse_config
from routatic_asgi.config.model import (
    AffinityConfig,
    BreakerConfig,
    Config,
    CooldownConfig,
    InboundKey,
    ResilienceConfig,
    RetryConfig,
    ServerConfig,
    config_schema,
)
from routatic_asgi.config.providers import ModelCaps, ProviderConfig
from routatic_asgi.config.routes import (
    ChainStep,
    GroupMember,
    GroupStep,
    RouteConfig,
    RouteWhen,
    iter_chain,
    route_targets,
)

__all__ = [
    "AffinityConfig",
    "BreakerConfig",
    "ChainStep",
    "Config",
    "CooldownConfig",
    "GroupMember",
    "GroupStep",
    "InboundKey",
    "ModelCaps",
    "ProviderConfig",
    "ResilienceConfig",
    "RetryConfig",
    "RouteConfig",
    "RouteWhen",
    "ServerConfig",
    "config_schema",
    "default_config",
    "default_left_out",
    "iter_chain",
    "load_config",
    "parse_config",
    "route_targets",
]
