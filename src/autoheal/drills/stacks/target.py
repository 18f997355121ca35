"""Target mode: a ``daemon`` drill played against a running target's own runtime.

``autoheal drill run --target CONFIG`` (a ``testnet`` or ``paper`` config; ``live``
is refused before anything runs) does not bring up a demo stack for the
``daemon`` drills. It requires the target's daemon to be running with
``--chaos``, injects the scenario's fault through the target's durable command
queue, watches the target's ``health_v2.json`` with the scenario's watches and
deadlines, and always sends ``chaos heal`` through the same queue afterwards.

What cannot be done against a target is said, never faked:

* faults that rewrite the config (``fail_on_start``) are not applicable: the
  drill is ``ERROR`` and the target's config is never touched;
* a fault naming a service or dependency the target does not have is ``ERROR``;
* criteria that count orders at the drill's own fake exchange (``/admin/stats``)
  cannot be checked against a real exchange: they are skipped and listed in the
  result's ``skipped_criteria``.

By whose clock (:func:`~autoheal.drills.plan.target_plan`): by default every fault's
length and every deadline is computed from the target's own settings
(:class:`~autoheal.drills.plan.TargetTiming`: probe intervals, timeouts and ``max_age``,
``failures_before_restart``, the degraded threshold, ``stop_timeout``,
``verify_min_uptime``); ``--time-scale X`` plays the scenario's runbook timings times
``X`` instead (``1``: the runbook's real timings). The report names the basis (``from
target policy``, ``runbook``, ``--time-scale X``). A scenario says which of its events
is which phase in ``params.on_target`` (``detect``, ``restart``, ``stale``, ``fault``,
``recover``).

Before any fault (:meth:`TargetStack.start`) the drill takes the target's drill lock
(``<runtime_dir>/drills/.lock``, an ``flock``: two drills never overlap) and waits for
its preconditions (:func:`~autoheal.drills.preconditions.precondition_problem`: DOR
true, no failsafe, every component in OBSERVE with no restart or verification pending,
the component a kill or stall hits outside any restart episode); after ``wait_s`` it
is refused (``DrillRefusedError``) with the reason, and nothing was injected.

The decisions are pure and live elsewhere: the timing in :mod:`autoheal.drills.plan`
(:func:`~autoheal.drills.plan.phase_times`, :func:`~autoheal.drills.plan.target_plan`),
the checks in :mod:`autoheal.drills.preconditions`. This module only reads the target's
files, takes the lock, waits and sends commands.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from autoheal.drills.context import DrillContext
from autoheal.drills.errors import DrillRefusedError, DrillUnavailableError
from autoheal.drills.plan import EXCHANGE_ONLY, DrillTarget, exchange_criteria
from autoheal.drills.preconditions import daemon_problem, fault_problem, precondition_problem
from autoheal.drills.stacks.commands import queue_chaos
from autoheal.store import layout
from autoheal.store.atomic import read_json
from autoheal.store.flags import stop_file_present
from autoheal.store.lock import PidLock, lock_holder

__all__ = ["DrillLock", "TargetStack"]

#: Seconds between precondition checks while a drill waits for them.
PRECONDITION_POLL_S = 0.25


class DrillLock(PidLock):
    """``<runtime_dir>/drills/.lock``: an exclusive ``flock`` held while a drill runs
    against the target, so two drill runs never overlap. The kernel drops it with the
    process; the file holds the holder's PID for the message only."""

    def __init__(self, runtime_dir: Path) -> None:
        super().__init__(Path(runtime_dir) / "drills" / ".lock")

    def try_acquire(self) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return super().try_acquire()


class TargetStack:
    """The target's running daemon, seen as a drill stack: health, liveness, chaos queue.

    Nothing is started or stopped here; the only writes are chaos commands in the
    target's journal (the fault, then ``chaos heal``).
    """

    has_exchange = False

    def __init__(self, ctx: DrillContext, target: DrillTarget) -> None:
        self.ctx = ctx
        self.target = target
        self.shared = target.runtime_dir
        self.stop_file = target.stop_file
        self.holder: str | None = None
        self.notes_offset = 0
        self.chaos_calls: list[dict[str, Any]] = []

    def health(self) -> dict[str, Any]:
        doc = read_json(self.shared / layout.HEALTH).doc
        return doc if isinstance(doc, dict) else {}

    def alive(self) -> bool:
        """The daemon that took the drill still holds the lock (not a restarted one)."""
        return self.holder is not None and lock_holder(self.shared) == self.holder

    def gone_message(self) -> str:
        return f"the target daemon (pid {self.holder}) stopped; see {self.shared}"

    async def chaos(
        self, fault: str, target: str = "", *, timeout_s: float = 20.0, **payload: Any
    ) -> dict[str, Any]:
        return await queue_chaos(
            self.shared, fault, target, timeout_s=timeout_s, calls=self.chaos_calls, **payload
        )

    def _notification_lines(self) -> int:
        notes = self.shared / layout.NOTIFICATIONS
        return len(notes.read_bytes().splitlines()) if notes.exists() else 0

    async def start(self) -> None:
        """Check the fault and the daemon, take the drill lock, wait for the
        preconditions, then arm the ``chaos heal`` rollback.

        Raises:
            DrillUnavailableError: the fault does not apply to this target, or its
                daemon is not running with ``--chaos``.
            DrillRefusedError: the lock or the preconditions did not come within
                ``target.wait`` seconds (``details.refused`` says why).
        """
        ctx, t = self.ctx, self.target
        ctx.details["target"] = {
            "config": str(t.config),
            "environment": t.environment,
            "runtime_dir": str(t.runtime_dir),
        }
        plan = ctx.params.get("target_timing")
        if isinstance(plan, Mapping):
            ctx.details["time_basis"] = plan.get("basis")
            ctx.details["target_timing"] = dict(plan)
        for name in exchange_criteria(ctx.scenario):
            ctx.skip_criterion(name, EXCHANGE_ONLY)
        problem = fault_problem(ctx.params, t)
        if problem is None and isinstance(plan, Mapping) and plan.get("problem"):
            problem = str(plan["problem"])
        holder = lock_holder(t.runtime_dir)
        if problem is None:
            beat = read_json(self.shared / layout.DAEMON_HEARTBEAT).doc
            problem = daemon_problem(
                self.health(), holder, now_wall=time.time(), max_age_s=t.max_age_s, beat=beat
            )
        if problem is not None:
            raise DrillUnavailableError(problem)
        self.holder = holder
        await self._wait_ready(holder)
        ctx.details["daemon_pid"] = holder
        # Only lines the drill caused count: the target's log has its own history.
        self.notes_offset = self._notification_lines()

        async def heal() -> Any:
            # Always through the target's queue; a daemon that is gone has nothing to heal.
            if lock_holder(t.runtime_dir) is None:
                return "target daemon not running"
            return (await self.chaos("heal", timeout_s=5.0)).get("healed")

        ctx.add_rollback("chaos_heal", heal)

    def _refuse(self, reason: str) -> DrillRefusedError:
        self.ctx.details["refused"] = reason
        return DrillRefusedError(f"refused: {reason}")

    async def _wait_ready(self, holder: str | None) -> None:
        """Take the drill lock, then wait until :func:`precondition_problem` is ``None``;
        both within ``target.wait`` seconds."""
        ctx, t = self.ctx, self.target
        wait = t.wait
        fault, name = str(ctx.params.get("fault", "kill")), str(ctx.params.get("target", ""))
        t0 = time.monotonic()
        end = t0 + wait
        lock = DrillLock(t.runtime_dir)
        while (other := lock.try_acquire()) is not None:
            if time.monotonic() >= end:
                raise self._refuse(
                    f"another drill (pid {other}) is running against the target "
                    f"({lock.path}); waited {wait:g}s"
                )
            await anyio.sleep(PRECONDITION_POLL_S)

        async def unlock() -> None:
            lock.release()

        # Registered first, so it runs last: after ``chaos heal``.
        ctx.add_rollback("drill_lock", unlock)
        seen: list[str] = []
        while True:
            if lock_holder(t.runtime_dir) != holder:
                raise DrillUnavailableError(self.gone_message())
            pre = precondition_problem(
                self.health(),
                fault=fault,
                name=name,
                stop_file_there=stop_file_present(t.stop_file),
            )
            if pre is None:
                break
            if not seen or seen[-1] != pre:
                seen.append(pre)
            if time.monotonic() >= end:
                raise self._refuse(f"preconditions not met after {wait:g}s: {pre}")
            await anyio.sleep(PRECONDITION_POLL_S)
        ctx.details["preconditions"] = {
            "waited_s": round(time.monotonic() - t0, 2),
            "waited_for": seen[:5],
        }
