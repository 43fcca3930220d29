"""Every upstream outcome is classified here, once, and every layer acts on the class.

- `outcome`: the `Kind`, the `Reason` and the `Outcome` of an attempt;
- `answers`: an error status, its headers and body, or an error event in a stream;
- `times`: what headers and bodies say about waiting, resets and depletion;
- `transport`: a transport exception (`classify_exception`).

Pure functions of a status, headers, a body (or a transport exception) and `now`: no I/O,
no clock of their own. Layers import from here, never from the modules.
"""

from routatic_asgi.classify.answers import classify_response, classify_stream_error, says_too_long
from routatic_asgi.classify.outcome import (
    SHORT_CIRCUITS,
    SUCCESS,
    TIMEOUTS,
    Kind,
    Outcome,
    Reason,
    status_reason,
)
from routatic_asgi.classify.times import (
    MAX_RESET,
    MAX_WAIT,
    bounded_wait,
    depleted_until,
    parse_go_duration,
    parse_retry_after,
    usage_reset_at,
)
from routatic_asgi.classify.transport import classify_exception

__all__ = [
    "MAX_RESET",
    "MAX_WAIT",
    "SHORT_CIRCUITS",
    "SUCCESS",
    "TIMEOUTS",
    "Kind",
    "Outcome",
    "Reason",
    "bounded_wait",
    "classify_exception",
    "classify_response",
    "classify_stream_error",
    "depleted_until",
    "parse_go_duration",
    "parse_retry_after",
    "says_too_long",
    "status_reason",
    "usage_reset_at",
]
