"""serve's request log handler: every line reaches the stream, in order, and the lines of one
event-loop turn leave in one write."""

from __future__ import annotations

import asyncio
import io
import logging

from routatic_asgi.telemetry.log_handler import RequestLogHandler


class Recording(io.StringIO):
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)


def logger_to(stream: Recording) -> logging.Logger:
    log = logging.getLogger(f"test-request-log-{id(stream)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = RequestLogHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    return log


def test_the_lines_of_one_turn_leave_in_one_write_and_in_order() -> None:
    stream = Recording()
    log = logger_to(stream)

    async def requests_ending() -> list[str]:
        for n in range(3):
            log.info("line %d", n)
        written_during_the_turn = list(stream.writes)
        await asyncio.sleep(0)  # the turn ends
        log.info("line 3")
        await asyncio.sleep(0)
        return written_during_the_turn

    assert asyncio.run(requests_ending()) == []
    assert stream.writes == ["line 0\nline 1\nline 2\n", "line 3\n"]


def test_a_line_logged_with_no_event_loop_is_written_at_once() -> None:
    stream = Recording()
    logger_to(stream).info("from a thread of its own")
    assert stream.writes == ["from a thread of its own\n"]


def test_flushing_writes_what_is_gathered() -> None:
    """logging.shutdown() flushes every handler at exit: no line is left behind."""
    stream = Recording()
    log = logger_to(stream)

    async def last_request() -> None:
        log.info("the last line")
        log.handlers[0].flush()  # as at exit, before the loop's turn has ended

    asyncio.run(last_request())
    assert stream.writes == ["the last line\n"]
