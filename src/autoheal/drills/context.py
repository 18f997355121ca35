"""What a drill step works with and records into: one :class:`DrillContext` per drill.

A step (``steps/*.py``) sets up, injects its fault, and records what it sees:

* ``ctx.mark_fault()`` when the fault goes in (time zero of every measurement),
  and ``ctx.fault_lasts(seconds)`` once it is in, for a fault that ends by itself;
* ``ctx.track(health_doc)`` each health document it polls (the timeline picture);
* ``ctx.event(name)`` the first time an observation holds (``breaker_open``);
* ``ctx.observe(key, value)`` a measured value that criteria compare;
* ``ctx.gate(name)`` a gate or limit that fired;
* ``ctx.add_rollback(label, fn)`` the undo of everything it changed, run by the
  runner in reverse order after the drill, also when it was aborted;
* ``ctx.processes`` (a :class:`~autoheal.drills.stacks.harness.ProcessRoster`) every
  process it started or learned of; after the rollbacks the runner kills whatever of
  them still runs, whatever happened (a drill leaves nothing behind);
* ``ctx.skip_criterion(name, why)`` a criterion that cannot be checked here (a
  drill against a target has no fake exchange to count orders at).

The step never decides PASSED or FAILED: the scenario's expectations and
criteria, evaluated by :mod:`autoheal.drills.evaluate`, do.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoheal.drills.model import Scenario
from autoheal.drills.stacks.exchange import Credentials, ExchangeHarness
from autoheal.drills.stacks.harness import ProcessRoster
from autoheal.drills.trace import HealthTrace
from autoheal.store.flags import FLAGS_FILENAME, Flags, write_flags

if TYPE_CHECKING:
    from autoheal.drills.plan import DrillTarget

__all__ = ["DrillContext", "LogCapture", "OffsetClock"]

Rollback = Callable[[], Awaitable[Any]]


def as_the_daemon_leaves_it(runtime_dir: Path) -> Path:
    """Make ``runtime_dir`` a runtime directory as a daemon keeps it, for drills that run
    guard code without one: the daemon always writes ``global_flags.json`` (NORMAL at
    start), and the guard reads a missing one as ``kill_switch_unknown``. A flags file
    already there is left as it is."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    if not (runtime_dir / FLAGS_FILENAME).exists():
        write_flags(runtime_dir, Flags(reason="drill runtime directory", set_by="drill"))
    return runtime_dir


class OffsetClock:
    """Monotonic time that a drill can jump forward (``advance``), like the reference's fake clock.

    Real time keeps flowing underneath, so files stamped with it stay comparable by
    every object that shares this clock (breaker, gate, ledger).
    """

    def __init__(self, base: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self.offset = 0.0

    def __call__(self) -> float:
        return self._base() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class LogCapture(logging.Handler):
    """Collects formatted ``autoheal.*`` log lines while a drill runs."""

    def __init__(self, logger_name: str = "autoheal") -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._logger = logging.getLogger(logger_name)
        self._old_level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage())
        except Exception:  # a bad log call must not break the drill
            self.lines.append(str(record.msg))

    def __enter__(self) -> LogCapture:
        self._logger.addHandler(self)
        if self._logger.getEffectiveLevel() > logging.INFO:
            self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._old_level)

    def mark(self) -> int:
        """A position to search from with :meth:`since`."""
        return len(self.lines)

    def since(self, mark: int) -> list[str]:
        return self.lines[mark:]

    def count(self, needle: str, start: int = 0) -> int:
        return sum(needle in line for line in self.lines[start:])


@dataclass
class DrillContext:
    """One drill's working state and record.

    Attributes:
        scenario: the scenario being run.
        runtime_dir: the drill's own runtime directory (empty at start).
        time_fn: the monotonic clock measurements use.
        target: the running target to play a ``daemon`` drill against
            (``--target CONFIG``); ``None`` for the drill's own stack.
        skipped: criteria not checked, each with the reason.
        processes: every process the drill owns, by identity (reaped by the runner).
    """

    scenario: Scenario
    runtime_dir: Path
    time_fn: Callable[[], float] = time.monotonic
    observations: dict[str, Any] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)
    gates_fired: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    rollbacks: list[tuple[str, Rollback]] = field(default_factory=list)
    fault_at: float | None = None
    exchange: ExchangeHarness | None = None
    logs: LogCapture = field(default_factory=LogCapture)
    target: DrillTarget | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    trace: HealthTrace = field(default_factory=HealthTrace)
    fault_ends_at: float | None = None
    processes: ProcessRoster = field(default_factory=ProcessRoster)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.scenario.seed)
        self.params: dict[str, Any] = dict(self.scenario.params)

    # -- time ------------------------------------------------------------------------
    def scaled(self, runbook_seconds: float) -> float:
        """Runbook seconds in drill seconds (``time_scale`` of the scenario)."""
        return runbook_seconds * self.scenario.time_scale

    def mark_fault(self) -> None:
        """The fault is in: time zero for every event (only the first call counts)."""
        if self.fault_at is None:
            self.fault_at = self.time_fn()

    def fault_lasts(self, seconds: float) -> None:
        """The fault just went in and ends by itself ``seconds`` from now (timeline only)."""
        self.fault_ends_at = self.time_fn() + seconds

    def track(self, health: dict[str, Any]) -> None:
        """Fold one polled health document into the drill's timeline."""
        self.trace.sample(self.time_fn(), health)

    # -- records ---------------------------------------------------------------------
    def event(self, name: str) -> None:
        """Record the first time ``name`` was observed."""
        self.events.setdefault(name, self.time_fn())

    def event_after_fault(self, name: str) -> float | None:
        """Seconds from the fault to ``name``, or ``None`` if it never happened."""
        at = self.events.get(name)
        if at is None:
            return None
        return at - (self.fault_at if self.fault_at is not None else at)

    def observe(self, key: str, value: Any) -> None:
        self.observations[key] = value

    def gate(self, name: str) -> None:
        if name not in self.gates_fired:
            self.gates_fired.append(name)

    def skip_criterion(self, name: str, why: str) -> None:
        """Leave criterion ``name`` out of the verdict; the result lists it as skipped."""
        self.skipped[name] = why

    def add_rollback(self, label: str, fn: Rollback) -> None:
        """Register an undo; the runner runs them last-in first-out."""
        self.rollbacks.append((label, fn))

    # -- shared setup ------------------------------------------------------------------
    async def start_exchange(
        self, *, credentials: Credentials | None = None
    ) -> ExchangeHarness:
        """Start a fake exchange for this drill; its fault is cleared and it is stopped
        by the rollback. ``credentials``: its venue dialects' API key and secret (and
        OKX's passphrase)."""
        harness = ExchangeHarness(
            self.runtime_dir / "exchange",
            seed=self.scenario.seed or 1,
            roster=self.processes,
            credentials=credentials,
        )
        self.exchange = harness

        async def stop() -> Any:
            return await harness.stop()

        self.add_rollback("stop_exchange", stop)
        await harness.start()

        async def clear() -> str:
            return await harness.clear_fault()

        self.add_rollback("clear_exchange_fault", clear)
        self.details["exchange_pid"] = harness.pid
        return harness
