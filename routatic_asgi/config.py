"""The configuration: its schema, the YAML loader and the embedded default.

A configuration is validated once, at start, into frozen pydantic models. Every error names
the file, the key path and the fix. This module never opens a connection and never logs a
secret: a key is held as a `SecretStr` and only its last four characters ever leave it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    Tag,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from routatic_asgi.config_errors import unknown_providers, validation_errors
from routatic_asgi.errors import ConfigError
from routatic_asgi.state import parse_state_url

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
    "load_config",
    "parse_config",
    "route_targets",
]

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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InboundKey(_Model):
    """A proxy key a client may present; `name` is the actor in logs."""

    name: str
    key: Secret


# A proxy key is a bare string (named key0, key1, ...) or {name, key}.
_INBOUND_KEYS_SCHEMA = {
    "type": "array",
    "items": {
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                "required": ["name", "key"],
                "additionalProperties": False,
            },
        ]
    },
}


def _inbound_keys(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    return [
        {"name": f"key{index}", "key": item} if isinstance(item, str) else item
        for index, item in enumerate(value)
    ]


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    keys: Annotated[
        list[InboundKey], BeforeValidator(_inbound_keys), WithJsonSchema(_INBOUND_KEYS_SCHEMA)
    ] = Field(
        default_factory=list,
        description="Inbound proxy keys, sent as x-routatic-key (or Authorization: Bearer).",
    )
    max_body: Bytes = Field(32 * 1024**2, description="Largest request body accepted.")
    max_connections: int = Field(
        4096,
        gt=0,
        description="Open client connections at most (per worker); past it an idle one is "
        "closed to make room, else the new one is refused.",
    )
    idle_timeout: Seconds = Field(5.0, description="A kept-alive connection may wait this long.")
    header_timeout: Seconds = Field(
        10.0, description="A request's line and headers must arrive within this of its start."
    )
    body_timeout: Seconds = Field(60.0, description="A request's body must arrive within this.")


class ModelCaps(_Model):
    """What a model can serve; a target that cannot serve a request is skipped as unfit."""

    context: int | None = Field(None, gt=0, description="Context window in tokens.")
    vision: bool = True
    tools: bool = True
    thinking: bool = True
    max_output: int | None = Field(
        None, gt=0, description="Largest max_tokens it accepts; translated requests are capped."
    )


class ProviderConfig(_Model):
    protocol: Literal["anthropic", "openai", "responses"] = Field(
        description="anthropic (Messages), openai (Chat Completions) or responses (Responses API)."
    )
    base_url: str = Field(description="Anthropic: without /v1. OpenAI and Responses: with /v1.")
    auth: Literal["passthrough", "none"] | None = None
    keys: list[Secret] = Field(default_factory=list)
    key_command: str | None = Field(
        None, description="A command that prints a fresh key; run once on a 401."
    )
    strategy: Literal["affinity", "round_robin", "ordered"] = Field(
        "affinity",
        description="How a pool picks a key: affinity (each session keeps its key), "
        "round_robin (per request) or ordered (the first healthy key).",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    models: dict[str, ModelCaps] = Field(default_factory=dict)
    connect_timeout: Seconds = 10.0
    cache_control: bool = Field(
        False,
        description="protocol openai: the provider honours Anthropic cache_control "
        "breakpoints on content parts (OpenRouter), so translated requests keep them.",
    )
    auto_cache: bool = Field(
        True,
        description="protocol anthropic: requests translated from OpenAI and Responses "
        "clients get prompt-cache breakpoints (tools, system, the last turns).",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # The value is not echoed: a URL may carry a password.
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("not an http(s) URL; write it like https://api.anthropic.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _api_root(self) -> ProviderConfig:
        """A base_url that names an endpoint, or repeats what the gateway appends, fails
        every request with a 404 that looks like an unknown model: refuse it here."""
        path = urlsplit(self.base_url).path.rstrip("/")
        if self.protocol == "anthropic" and re.search(r"/v1(/messages)?$", path):
            raise ValueError(
                "base_url: an anthropic base_url ends before /v1: the gateway appends "
                "/v1/messages, so this would call .../v1/v1/messages; remove the trailing /v1"
            )
        endpoint = re.search(r"/(chat/completions|responses|completions|messages)$", path)
        if self.protocol != "anthropic" and endpoint:
            raise ValueError(
                f"base_url: names the endpoint /{endpoint.group(1)}; give the API root "
                "(e.g. https://api.openai.com/v1): the gateway appends /chat/completions "
                "or /responses itself"
            )
        return self

    @model_validator(mode="after")
    def _cache_options_fit_the_protocol(self) -> ProviderConfig:
        if self.cache_control and self.protocol != "openai":
            raise ValueError(
                "cache_control: true is for protocol: openai providers; Anthropic targets "
                "always get the client's breakpoints and Responses has none"
            )
        if not self.auto_cache and self.protocol != "anthropic":
            raise ValueError("auto_cache is for protocol: anthropic providers")
        return self

    @model_validator(mode="after")
    def _one_credential_source(self) -> ProviderConfig:
        has_keys = bool(self.keys) or self.key_command is not None
        if self.auth is None and not has_keys:
            raise ValueError(
                "set auth: passthrough (forward the client's credential), auth: none, "
                "or keys: [...]"
            )
        if self.auth is not None and has_keys:
            raise ValueError(f"auth: {self.auth} and keys/key_command exclude each other")
        return self

    @property
    def passthrough(self) -> bool:
        return self.auth == "passthrough"


class RouteWhen(_Model):
    """Request traits a route requires, beside its model glob."""

    thinking: bool | None = None
    images: bool | None = None
    tokens_over: int | None = Field(None, ge=0)
    background: bool | None = None


def _provider_slash_model(entry: str) -> str:
    provider, _, model = entry.partition("/")
    if not provider or not model:
        raise ValueError(f"{entry!r} is not provider/model, e.g. anthropic/{{model}}")
    return entry


TargetName = Annotated[str, AfterValidator(_provider_slash_model)]


def _member(value: Any) -> Any:
    return {"target": value} if isinstance(value, str) else value


class GroupMember(_Model):
    """One target of a group and its share of the group's new sessions."""

    target: TargetName = Field(description="provider/model; {model} = requested.")
    weight: float = Field(1.0, gt=0, description="Relative share of new sessions.")


class GroupStep(_Model):
    """A chain step of equivalent targets: sessions spread by weight, each keeps its own."""

    group: list[
        Annotated[GroupMember, BeforeValidator(_member, json_schema_input_type=str | GroupMember)]
    ] = Field(min_length=1, description="Members: provider/model, or {target, weight}.")


def _step_kind(value: Any) -> str:
    return "group" if isinstance(value, dict | GroupStep) else "target"


ChainStep = Annotated[
    Annotated[TargetName, Tag("target")] | Annotated[GroupStep, Tag("group")],
    Discriminator(_step_kind),
]


class RouteConfig(_Model):
    match: str = Field(description="A glob on the model the client asked for.")
    when: RouteWhen | None = None
    chain: list[ChainStep] = Field(
        min_length=1, description="provider/model ({model} = requested), or {group: [...]}."
    )

    def matches(self, model: str) -> bool:
        return fnmatchcase(model, self.match)


class CooldownConfig(_Model):
    base: Seconds = 30.0
    max: Seconds = 900.0


class RetryConfig(_Model):
    """Trying the same target again before moving on."""

    attempts: int = Field(
        1, ge=0, le=5, description="Retries of a target after a blip; 0 turns retrying off."
    )
    max_wait: Seconds = Field(
        5.0, description="The longest Retry-After waited out on the same target."
    )


class BreakerConfig(_Model):
    """When a breaker opens, and how long it waits between probes."""

    failures: int = Field(2, ge=1, description="Consecutive failed calls that open a breaker.")
    probe_max: Seconds = Field(
        30.0, description="The longest wait between probes of a target failing on its own."
    )


class AffinityConfig(_Model):
    hold: Seconds = Field(
        0.0,
        description="How long a session that failed over stays on its fallback after the "
        "primary was last seen failing; 0: it goes back as soon as the primary is healthy.",
    )


class ResilienceConfig(_Model):
    fallback_on: list[int] = Field(default_factory=lambda: [408, 429, 500, 502, 503, 504, 529])
    cooldown: CooldownConfig = Field(default_factory=CooldownConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    rescue: bool = Field(
        True, description="Continue a stream that broke after its commit on the next target."
    )
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    quota_cooldown: Seconds = 3600.0
    quota_recheck: Seconds = Field(
        3600.0, description="How often one real request rechecks a used-up credential."
    )
    max_wait: Seconds = Field(
        3600.0, description="Longest Retry-After honoured; a longer one is taken as this."
    )
    max_attempts: int = Field(4, ge=1)
    deadline: Seconds = 600.0
    first_byte_timeout: Seconds = 60.0
    hedge_after: Seconds | None = Field(
        None,
        description="Start the next target beside a stream whose first content is this late.",
    )
    idle_timeout: Seconds = 300.0
    affinity: AffinityConfig = Field(default_factory=AffinityConfig)


class Config(_Model):
    server: ServerConfig = Field(default_factory=ServerConfig)
    providers: dict[str, ProviderConfig] = Field(min_length=1)
    routes: list[RouteConfig] = Field(min_length=1)
    resilience: ResilienceConfig = Field(default_factory=ResilienceConfig)
    state: str = Field("memory", description="memory, or a redis:// URL shared by replicas.")
    # Which environment variable each value came from, by key path: "providers.zen.keys.0".
    _variables: dict[str, str] = PrivateAttr(default_factory=dict)
    # Where it was read from, and a short hash of what it resolved to (keys included: a
    # rotated key is a new configuration), for /status and the reload log.
    _source: str = PrivateAttr("<config>")
    _digest: str = PrivateAttr("")

    def variable_for(self, path: str) -> str | None:
        return self._variables.get(path)

    @property
    def source(self) -> str:
        return self._source

    @property
    def digest(self) -> str:
        return self._digest

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, providers: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        for name in providers:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"provider name {name!r} may use only letters, digits, _ . -")
        return providers

    @field_validator("state")
    @classmethod
    def _state_url(cls, value: str) -> str:
        # The value is not echoed: a Redis URL may carry a password.
        if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use memory or a redis:// (rediss://, unix://) URL")
        if value != "memory":
            parse_state_url(value)  # a bad staleness is a configuration error
        return value

    @model_validator(mode="after")
    def _chains_name_known_providers(self) -> Config:
        unknown = unknown_providers(self.model_dump(include={"providers", "routes"}), "")
        if unknown:
            raise ValueError("; ".join(f"{e.path}: {e.problem}" for e in unknown))
        return self

    def route_for(self, model: str) -> RouteConfig | None:
        """The first route whose glob matches `model` (traits are checked by the router)."""
        return next((route for route in self.routes if route.matches(model)), None)


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a configuration file as written, for editors and
    validators: durations and sizes may be strings, `keys` may be bare strings."""
    schema = Config.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "routatic-asgi configuration",
    }


# --- loading -----------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(
    node: Any, env: Mapping[str, str], path: str, found: dict[str, str], missing: dict[str, str]
) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of the tree.

    `found` records which variables each path used; `missing` every unset one, by name.
    """
    if isinstance(node, dict):
        return {
            key: _expand(value, env, _join(path, key), found, missing)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [
            _expand(value, env, _join(path, index), found, missing)
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


def _missing_error(source: str, missing: dict[str, str]) -> ConfigError:
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


def parse_config(
    data: Any, *, source: str = "<config>", env: Mapping[str, str] | None = None
) -> Config:
    """Validate a parsed YAML tree, expanding `${VAR}` from `env` (default: os.environ)."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "the file is not a mapping", "see the README's example")
    variables: dict[str, str] = {}
    missing: dict[str, str] = {}
    expanded = _expand(data, os.environ if env is None else env, "", variables, missing)
    errors = [_missing_error(source, missing)] if missing else []
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


# --- the embedded default ------------------------------------------------------------------

# (name, environment variable, provider, fallback model): tried in this order after Anthropic.
_FALLBACKS: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    (
        "zen",
        "OPENCODE_API_KEY",
        {"protocol": "openai", "base_url": "https://opencode.ai/zen/v1"},
        "deepseek-v4-flash",
    ),
    (
        "openrouter",
        "OPENROUTER_API_KEY",
        {"protocol": "openai", "base_url": "https://openrouter.ai/api/v1"},
        "deepseek/deepseek-chat",
    ),
    (
        "deepseek",
        "DEEPSEEK_API_KEY",
        {"protocol": "openai", "base_url": "https://api.deepseek.com/v1"},
        "deepseek-chat",
    ),
)


def default_config(env: Mapping[str, str] | None = None) -> Config:
    """Anthropic passthrough first, then every fallback provider whose key is in `env`."""
    env = os.environ if env is None else env
    providers: dict[str, Any] = {
        "anthropic": {
            "protocol": "anthropic",
            "base_url": env.get("ROUTATIC_ANTHROPIC_BASE_URL") or "https://api.anthropic.com",
            "auth": "passthrough",
        }
    }
    chain = ["anthropic/{model}"]
    for name, variable, provider, model in _FALLBACKS:
        if env.get(variable):
            providers[name] = {**provider, "keys": [f"${{{variable}}}"]}
            chain.append(f"{name}/{model}")
    data = {"providers": providers, "routes": [{"match": "*", "chain": chain}]}
    return parse_config(data, source="<embedded default>", env=env)


def default_left_out(env: Mapping[str, str] | None = None) -> list[str]:
    """The embedded default's fallback providers left out, and why."""
    env = os.environ if env is None else env
    return [
        f"{name} left out: {variable} is not set"
        for name, variable, _, _ in _FALLBACKS
        if not env.get(variable)
    ]


def route_targets(route: RouteConfig) -> Iterator[str]:
    """Every provider/model a route names, a group's members in their written order."""
    for step in route.chain:
        if isinstance(step, GroupStep):
            yield from (member.target for member in step.group)
        else:
            yield step


def iter_chain(route: RouteConfig, model: str) -> Iterator[tuple[str, str]]:
    """Each (provider, upstream model) of a route's chain, with `{model}` filled in."""
    for entry in route_targets(route):
        provider, _, upstream_model = entry.partition("/")
        yield provider, upstream_model.replace("{model}", model)
