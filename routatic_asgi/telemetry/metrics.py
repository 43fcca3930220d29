"""The gateway's Prometheus instruments, created once on an injected `CollectorRegistry`.

Every label is bounded: providers, routes and reasons come from the configuration and the
classifier; a model is labelled by its name only when the configuration names it (the app
says which), any other name a client chose counts as "unconfigured". Without a configuration
(a layer used alone) the first 100 distinct names are kept, later ones count as "other". No
label ever carries a key, a request id or an upstream's raw error text. Under
`serve --workers N` prometheus_client writes values to PROMETHEUS_MULTIPROC_DIR and the
exposition sums every worker's files. This module never touches the default global registry.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from routatic_asgi.transitions import CredentialState, Phase

__all__ = ["BREAKER_STATES", "CREDENTIAL_STATES", "LabelBound", "Metrics"]

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
logger = logging.getLogger("routatic_asgi")

# The gauges' values for the layers' states, named as /status, the dashboards and the README
# name them: the states themselves are transitions.py's.
BREAKER_STATES: dict[str, int] = {Phase.CLOSED: 0, Phase.OPEN: 1, Phase.HALF_OPEN: 2}
CREDENTIAL_STATES: dict[str, int] = {
    CredentialState.OK: 0,
    CredentialState.COOLING: 1,
    CredentialState.BAD: 2,
}

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
_TTFB_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


def _legend(states: dict[str, int]) -> str:
    return ", ".join(f"{value} {state}" for state, value in states.items())


class LabelBound:
    """Keeps at most `limit` distinct values of one label; later newcomers become "other".
    Once `only` has named the values a label may take, every other one is "unconfigured"."""

    def __init__(self, limit: int = 100, length: int = 80) -> None:
        self.limit, self.length = limit, length
        self._seen: set[str] = set()
        self._known: frozenset[str] | None = None

    def only(self, values: Iterable[str]) -> None:
        """The configured values: from now on, the only ones that are their own label."""
        self._known = frozenset(values)

    def __call__(self, value: str) -> str:
        if self._known is not None:
            return value if value in self._known else "unconfigured"
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit or len(value) > self.length or not value.isprintable():
            return "other"
        self._seen.add(value)
        return value


class Metrics:
    """Every instrument the gateway records. Layers call the methods; nothing else writes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.model = LabelBound()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # Called before every scrape, to publish state that changes with time alone.
        self.before_scrape: list[Callable[[], None]] = []
        r = self.registry
        self.requests = Counter(
            "routatic_requests", "Requests by the caller's protocol, route and outcome.",
            ["protocol", "route", "outcome"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "routatic_request_duration_seconds", "Whole request, all attempts, to the last byte.",
            ["protocol", "route"], buckets=_DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.attempts = Counter(
            "routatic_upstream_attempts", "Upstream calls by target and classified outcome.",
            ["provider", "model", "outcome"], registry=r,
        )  # fmt: skip
        self.ttfb = Histogram(
            "routatic_upstream_ttfb_seconds",
            "From sending the upstream request to its commit (first content event, or a 2xx).",
            ["provider", "model"], buckets=_TTFB_BUCKETS, registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "routatic_fallbacks", "A request moved from one target to the next, and why.",
            ["from_provider", "to_provider", "reason"], registry=r,
        )  # fmt: skip
        self.breaker_state = Gauge(
            "routatic_breaker_state", f"Breaker per target: {_legend(BREAKER_STATES)}.",
            ["provider", "model"], registry=r, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.breaker_transitions = Counter(
            "routatic_breaker_transitions", "Breaker state changes, by the state entered.",
            ["provider", "model", "to_state"], registry=r,
        )  # fmt: skip
        self.short_circuits = Counter(
            "routatic_short_circuits", "Targets skipped without an upstream call, and why.",
            ["provider", "reason"], registry=r,
        )  # fmt: skip
        self.credential_state = Gauge(
            "routatic_credential_state",
            f"Credential: {_legend(CREDENTIAL_STATES)} (cooling: used up until its reset; "
            "bad: rejected).",
            ["provider", "credential"], registry=r, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.tokens = Counter(
            "routatic_tokens", "Tokens reported by upstreams for served attempts.",
            ["provider", "model", "kind"], registry=r,
        )  # fmt: skip
        self.active_streams = Gauge(
            "routatic_active_streams", "Streams being relayed to clients right now.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.proxy_overhead = Histogram(
            "routatic_proxy_overhead_seconds",
            "Time a request spent in the gateway, not waiting on an upstream.",
            buckets=_OVERHEAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.state_store_degraded = Gauge(
            "routatic_state_store_degraded", "1 while the shared state store is unreachable.",
            registry=r, multiprocess_mode="max",
        )  # fmt: skip

    def _child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, remembered: the hot path skips its validation and lock."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # --- recording, one method per fact -----------------------------------------------

    def request(self, protocol: str, route: str, outcome: str, seconds: float | None) -> None:
        route = route or "none"
        self._child(self.requests, protocol, route, outcome).inc()
        if seconds is not None:
            self._child(self.request_duration, protocol, route).observe(seconds)

    def attempt(self, provider: str, model: str, outcome: str) -> None:
        self._child(self.attempts, provider, self.model(model), outcome).inc()

    def first_byte(self, provider: str, model: str, seconds: float) -> None:
        self._child(self.ttfb, provider, self.model(model)).observe(seconds)

    def fallback(self, from_provider: str, to_provider: str, reason: str) -> None:
        self._child(self.fallbacks, from_provider, to_provider, reason).inc()

    def used(self, provider: str, model: str, kinds: Iterable[tuple[str, int]]) -> None:
        model = self.model(model)
        for kind, count in kinds:
            if count > 0:
                self._child(self.tokens, provider, model, kind).inc(count)

    def breaker(self, provider: str, model: str, state: str) -> None:
        value = BREAKER_STATES.get(state, 1)
        self._child(self.breaker_state, provider, self.model(model)).set(value)

    def breaker_transition(self, provider: str, model: str, to_state: str) -> None:
        self._child(self.breaker_transitions, provider, self.model(model), to_state).inc()

    def short_circuit(self, provider: str, reason: str) -> None:
        self._child(self.short_circuits, provider, reason).inc()

    def credential(self, provider: str, credential: str, state: str) -> None:
        self._child(self.credential_state, provider, credential).set(
            CREDENTIAL_STATES.get(state, 2)
        )

    def degraded(self, degraded: bool) -> None:
        self.state_store_degraded.set(1 if degraded else 0)

    # --- exposition ---------------------------------------------------------------------

    def names(self) -> set[str]:
        """Every sample name this registry can expose (a histogram's _bucket, _sum, ...)."""
        names: set[str] = set()
        for family in self.registry.collect():
            if family.type == "counter":
                names.update({family.name + "_total", family.name + "_created"})
            elif family.type == "histogram":
                names.update(family.name + s for s in ("_bucket", "_sum", "_count", "_created"))
            else:
                names.add(family.name)
        return names

    def close(self) -> None:
        """In multiprocess mode, drop this process's live gauges from every later scrape."""
        if os.environ.get(MULTIPROC_VARIABLE):
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets: this registry, or every worker's values in multiprocess mode."""
        for refresh in self.before_scrape:
            try:
                refresh()
            except Exception:
                logger.exception("refreshing metrics before a scrape failed")
        if os.environ.get(MULTIPROC_VARIABLE):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
