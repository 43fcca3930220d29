"""Routes: a glob on the requested model, optional traits, and the chain of targets.

It names targets as written (`provider/model`, `{model}` for the requested one); resolving
them to credentials and an order is the business of routing.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, Tag

from routatic_asgi.config.units import Model

__all__ = [
    "ChainStep",
    "GroupMember",
    "GroupStep",
    "RouteConfig",
    "RouteWhen",
    "iter_chain",
    "route_targets",
]


class RouteWhen(Model):
    """Request traits a route requires, beside its model glob."""

    thinking: bool | None = None
    images: bool | None = None
    tokens_over: int | None = Field(None, ge=0)
    background: bool | None = None

    def admits(self, traits: Mapping[str, Any]) -> bool:
        """Whether a request with these traits (routing.request_traits) meets every one."""
        if self.thinking is not None and bool(traits.get("thinking")) != self.thinking:
            return False
        if self.images is not None and bool(traits.get("images")) != self.images:
            return False
        if self.background is not None and bool(traits.get("background")) != self.background:
            return False
        return self.tokens_over is None or int(traits.get("tokens", 0)) > self.tokens_over


def _provider_slash_model(entry: str) -> str:
    provider, _, model = entry.partition("/")
    if not provider or not model:
        raise ValueError(f"{entry!r} is not provider/model, e.g. anthropic/{{model}}")
    return entry


TargetName = Annotated[str, AfterValidator(_provider_slash_model)]


def _member(value: Any) -> Any:
    return {"target": value} if isinstance(value, str) else value


class GroupMember(Model):
    """One target of a group and its share of the group's new sessions."""

    target: TargetName = Field(description="provider/model; {model} = requested.")
    weight: float = Field(1.0, gt=0, description="Relative share of new sessions.")


class GroupStep(Model):
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


class RouteConfig(Model):
    match: str = Field(description="A glob on the model the client asked for.")
    when: RouteWhen | None = None
    chain: list[ChainStep] = Field(
        min_length=1, description="provider/model ({model} = requested), or {group: [...]}."
    )

    def matches(self, model: str, traits: Mapping[str, Any] | None = None) -> bool:
        """Its glob matches `model` and, unless `traits` is None, its `when` admits them."""
        if not fnmatchcase(model, self.match):
            return False
        return traits is None or self.when is None or self.when.admits(traits)


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
