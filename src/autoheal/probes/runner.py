"""Run one probe forever: bounded checks, results emitted, sleeps that honour deadlines.

Each probe gets its own task (never one periodic job that serialises all of
them, circus #987). One round is:

1. ``check()`` under ``anyio.move_on_after(timeout)``. A timeout becomes a
   failed result (``probe_timeout``, or what a :class:`TimeoutAware` probe says,
   e.g. ``CONN_TIMEOUT``); an exception becomes ``probe_error``, logged once per
   streak with its traceback. Nothing escapes except cancellation.
2. ``emit(result)`` (sync or async; the daemon turns it into an observation).
3. Sleep until ``min(started + interval, result.recheck_at + slack)``, never
   less than ``min_gap`` (a probe whose deadline is already past must not spin),
   or until :meth:`ProbeRunner.poke` wakes it -- the daemon pokes a heartbeat
   probe right after a restart instead of waiting out the interval. A *passing*
   result with a deadline (a fresh heartbeat: fresh until ``recheck_at``) sleeps
   until that deadline even past the interval: event-driven, not a tick. Looking
   earlier could only find the file replaced by garbage or deleted sooner, which
   the deadline finds all the same, at most ``max_age`` later; a stale heartbeat is
   seen within ``recheck_slack`` of going stale, as before.

``clock`` is the monotonic clock the probe's ``recheck_at`` is expressed in; the
sleep itself is relative (``deadline - clock()``), so any clock that advances in
real time works (``time.monotonic``, ``anyio.current_time``).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio
from anyio.abc import TaskStatus

from autoheal.probes.result import (
    PROBE_ERROR,
    PROBE_TIMEOUT,
    Probe,
    ProbeResult,
    TimeoutAware,
)

__all__ = ["Emit", "ProbeRunner", "WakeCause", "run_probe"]

logger = logging.getLogger(__name__)

Emit = Callable[[ProbeResult], Awaitable[None] | None]
#: Why the runner started its latest check.
WakeCause = Literal["start", "interval", "recheck", "poke"]


class ProbeRunner:
    """Runs one probe in a loop; see the module docstring for a round.

    Args:
        probe: the probe to run.
        emit: receives every result, in order.
        interval: seconds from the start of one check to the start of the next.
        timeout: seconds a single check may take.
        clock: monotonic clock, the same one the probe uses for ``recheck_at``.
        recheck_slack: added to ``recheck_at`` so the check lands just *after* the
            answer changed (age strictly over ``max_age``), not just before.
        min_gap: the shortest sleep between checks.
    """

    def __init__(
        self,
        probe: Probe,
        emit: Emit,
        *,
        interval: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        recheck_slack: float = 0.005,
        min_gap: float = 0.005,
    ) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError(f"interval and timeout must be positive: {interval!r}, {timeout!r}")
        self.probe = probe
        self._emit = emit
        self.interval = float(interval)
        self.timeout = float(timeout)
        self._clock = clock
        self._slack = recheck_slack
        self._min_gap = min_gap
        self._poked = False
        self._wake: anyio.Event | None = None
        self._error_logged = False
        #: The latest result, or None before the first check completes.
        self.last: ProbeResult | None = None
        #: Why the latest check ran (tests and logs use it to tell timers from polls).
        self.last_wake: WakeCause = "start"
        #: Number of completed checks.
        self.checks = 0

    def poke(self) -> None:
        """Check again now; a poke during a check makes the next one follow at once."""
        self._poked = True
        if self._wake is not None:
            self._wake.set()

    async def check_once(self) -> ProbeResult:
        """Run one bounded check and return its result, without emitting it."""
        result: ProbeResult | None = None
        started = self._clock()
        inline = getattr(self.probe, "check_inline", None)
        try:
            if inline is not None:  # never blocks: no timeout scope to set up and tear down
                result = _checked(inline())
            else:
                with anyio.move_on_after(self.timeout):
                    result = _checked(await self.probe.check())
        except Exception as exc:
            result = self._error_result(exc)
        else:
            if result is not None:  # an answer ends an error streak; a timeout does not
                self._error_logged = False
        if result is None:
            result = self._timeout_result(self._clock() - started)
        self.last = result
        self.checks += 1
        return result

    async def run(
        self,
        *,
        stop: anyio.Event | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Loop until cancelled, or until ``stop`` is set (then return normally)."""
        self._wake = anyio.Event()
        async with anyio.create_task_group() as tg:
            if stop is not None:
                tg.start_soon(_cancel_when_set, stop, tg.cancel_scope)
            task_status.started()
            await self._loop()

    async def _loop(self) -> None:
        while True:
            started = self._clock()
            self._poked = False
            result = await self.check_once()
            outcome = self._emit(result)
            if inspect.isawaitable(outcome):
                await outcome
            await self._sleep_after(started, result)

    async def _sleep_after(self, started: float, result: ProbeResult) -> None:
        cause: WakeCause = "interval"
        deadline = started + self.interval
        if result.recheck_at is not None and (
            result.ok or result.recheck_at + self._slack < deadline
        ):
            deadline, cause = result.recheck_at + self._slack, "recheck"
        delay = max(deadline - self._clock(), self._min_gap)
        if self._wake is None:
            self._wake = anyio.Event()
        if not self._poked:
            with anyio.move_on_after(delay):
                await self._wake.wait()
        if self._poked:
            cause = "poke"
            self._wake = anyio.Event()
        self.last_wake = cause

    def _error_result(self, exc: Exception) -> ProbeResult:
        if not self._error_logged:
            logger.warning(
                "probe_error probe=%r error=%s", self.probe, type(exc).__name__, exc_info=exc
            )
            self._error_logged = True
        return ProbeResult(
            False, PROBE_ERROR, None, None, detail=f"{type(exc).__name__}: {exc}"[:200]
        )

    def _timeout_result(self, after: float) -> ProbeResult:
        if isinstance(self.probe, TimeoutAware):
            return self.probe.timed_out(after)
        return ProbeResult(
            False, PROBE_TIMEOUT, after, self.timeout, detail=f"no answer in {self.timeout} s"
        )


def _checked(answer: object) -> ProbeResult:
    if not isinstance(answer, ProbeResult):
        raise TypeError(f"check() returned {type(answer).__name__}, not ProbeResult")
    return answer


async def _cancel_when_set(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def run_probe(
    probe: Probe,
    emit: Emit,
    *,
    interval: float,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    stop: anyio.Event | None = None,
) -> None:
    """Run ``probe`` forever (until cancelled or ``stop`` is set), emitting every result.

    A convenience over :class:`ProbeRunner` for callers that never poke; see there
    for the arguments.
    """
    await ProbeRunner(probe, emit, interval=interval, timeout=timeout, clock=clock).run(stop=stop)
