"""The daemon's one clock: every reading of time, sleep, timeout and deadline of the shell.

The core never reads a clock (``now`` is an argument). The shell reads one, this
one, and sleeps on the same one, so the two can never disagree: a deadline the
core computes from :meth:`Clock.now` is the deadline the shell sleeps until.

:class:`LoopClock` is the event loop's clock (``anyio.current_time``, which is
``time.monotonic`` on asyncio). On trio it is the run's clock, so under
``trio.testing.MockClock(autojump_threshold=0)`` the real daemon runs on virtual
time: an hour of backoff takes milliseconds (STYLE.md §4; with real processes in
flight, do not autojump: run the fakes of :mod:`autoheal.testing`). The wall clock
(unix seconds) is a label only (state file, flags ``since``, heartbeats, outbox
stamps); a test on virtual time makes it follow the virtual clock too
(:meth:`LoopClock.virtual`).

Nothing else in :mod:`autoheal.daemon` calls ``anyio.sleep``, ``move_on_after``,
``fail_after``, ``current_time`` or ``time.monotonic``
(``tests/daemon/test_clock.py`` enforces it). Not routed here: the real
process control's stop grace (:mod:`autoheal.procs`), the probes' and the status
server's own timeouts, all on the same event-loop clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

import anyio

__all__ = ["Clock", "LoopClock"]


class Clock(Protocol):
    """What the daemon's parts know of time.

    ``now`` is monotonic seconds, and every deadline (``*_at``) is on it; ``wall`` is
    unix seconds, for labels only.
    """

    def now(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, delay: float) -> None: ...

    async def sleep_until(self, deadline: float) -> None: ...

    def move_on_at(self, deadline: float, *, shield: bool = False) -> anyio.CancelScope: ...

    def fail_after(self, delay: float) -> AbstractContextManager[anyio.CancelScope]: ...


class LoopClock:
    """The event loop's clock (see the module docstring).

    Args:
        wall: unix seconds; ``time.time`` by default.
    """

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall

    @classmethod
    def virtual(cls, epoch: float) -> LoopClock:
        """A clock whose wall time is ``epoch`` plus the loop's time: on a virtual loop,
        labels move with the virtual time (a heartbeat's age, a deadline in the state file)."""
        return cls(wall=lambda: epoch + anyio.current_time())

    def now(self) -> float:
        return anyio.current_time()

    def wall(self) -> float:
        return self._wall()

    async def sleep(self, delay: float) -> None:
        await anyio.sleep(max(0.0, delay))

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)

    def move_on_at(self, deadline: float, *, shield: bool = False) -> anyio.CancelScope:
        """A scope cancelled at ``deadline`` (``math.inf``: never); check ``cancelled_caught``."""
        return anyio.CancelScope(deadline=deadline, shield=shield)

    def fail_after(self, delay: float) -> AbstractContextManager[anyio.CancelScope]:
        """Like :func:`anyio.fail_after`: ``TimeoutError`` when ``delay`` runs out."""
        return anyio.fail_after(delay)
