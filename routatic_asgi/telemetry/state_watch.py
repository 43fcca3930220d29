"""`StateWatch`: breaker and credential metrics, heard from the layers' announcements.

The breaker and the credential layers announce their transitions on a `Board` each
(transitions.py); this listener turns them into the `routatic_breaker_state` and
`routatic_credential_state` gauges, counts the breaker transitions this process made in
`routatic_breaker_transitions_total` (so replicas' counts add up) and adds each to the current
span as a `routatic.breaker` event. Before every scrape it asks the boards to announce what
time alone changed (a cooldown run out, a reset come) and reads whether the state store is
degraded. It never reads the layers' records or keys, and never sees a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opentelemetry import trace

from routatic_asgi.telemetry.metrics import Metrics
from routatic_asgi.transitions import Board, Phase, Transition

__all__ = ["StateWatch"]

# How bad each breaker phase is, to show one state for the keys of a provider/model pair.
_SEVERITY = {Phase.CLOSED: 0, Phase.HALF_OPEN: 1, Phase.OPEN: 2}


class StateWatch:
    """Listens to `boards`; `degraded` says whether the state store serves from memory."""

    def __init__(
        self,
        metrics: Metrics,
        boards: Sequence[Board],
        *,
        clock: Callable[[], float],
        degraded: Callable[[], bool] = lambda: False,
    ) -> None:
        self.metrics, self.boards, self.clock, self.degraded = metrics, boards, clock, degraded
        # The phase of each target key not closed, by (provider, model): the gauge shows the
        # worst of a pair's keys.
        self.pairs: dict[tuple[str, str], dict[str, str]] = {}
        for board in boards:
            board.listeners.append(self)
        metrics.before_scrape.append(self.refresh)

    def __call__(self, transition: Transition) -> None:
        subject = transition.subject
        if transition.kind != "breaker":
            self.metrics.credential(subject.provider, subject.name, transition.state)
            return
        labels = (subject.provider, subject.name)
        if transition.here:
            self.metrics.breaker_transition(*labels, transition.state)
            trace.get_current_span().add_event(
                "routatic.breaker",
                {"target": subject.key, "to_state": transition.state, "reason": transition.reason},
            )
        keys = self.pairs.setdefault(labels, {})
        if transition.state == Phase.CLOSED:
            keys.pop(subject.key, None)
        else:
            keys[subject.key] = transition.state
        worst = max(keys.values(), key=_severity, default=Phase.CLOSED)
        if not keys:
            del self.pairs[labels]
        self.metrics.breaker(*labels, worst)

    def refresh(self) -> None:
        """Before a scrape: what time alone changed, and the store's reachability."""
        now = self.clock()
        for board in self.boards:
            board.tick(now)
        self.metrics.degraded(self.degraded())


def _severity(phase: str) -> int:
    return _SEVERITY.get(Phase(phase), 0)
