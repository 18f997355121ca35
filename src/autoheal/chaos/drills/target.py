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

The pure checks (:func:`fault_problem`, :func:`daemon_problem`,
:func:`exchange_criteria`) take data and return a reason or ``None``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoheal import runtime_files
from autoheal.chaos.blast import ProtectedSet
from autoheal.chaos.drills.daemon_stack import DrillUnavailableError, queue_chaos
from autoheal.chaos.drills.model import Scenario
from autoheal.store.atomic import read_json
from autoheal.store.lock import lock_holder

if TYPE_CHECKING:
    from autoheal.chaos.drills.context import DrillContext
    from autoheal.config import Config

__all__ = [
    "EXCHANGE_ONLY",
    "TARGET_KINDS",
    "DrillTarget",
    "TargetStack",
    "daemon_problem",
    "exchange_criteria",
    "fault_problem",
]

#: Scenario kinds that run against a target; every other kind keeps its own temp dirs.
TARGET_KINDS = frozenset({"daemon"})
#: Why a criterion is skipped against a target.
EXCHANGE_ONLY = "counts orders at the drill's own exchange: not available against a target"
NOT_RUNNING = "target daemon not running with --chaos"
_SERVICE_FAULTS = frozenset({"kill", "stall"})
_DEPENDENCY_FAULTS = frozenset({"netcut", "latency"})
_CONFIG_FAULTS = frozenset({"fail_on_start"})


@dataclass(frozen=True, slots=True)
class DrillTarget:
    """What a drill needs to know about a target config (``--target CONFIG``)."""

    config: Path
    environment: str
    runtime_dir: Path
    stop_file: Path
    services: tuple[str, ...]
    dependencies: tuple[str, ...]
    proxies: tuple[str, ...]
    protected_files: tuple[Path, ...]
    max_age_s: float

    @classmethod
    def from_config(cls, cfg: Config) -> DrillTarget:
        """From a loaded config; health older than 5 heartbeats (at least 5 s) is stale."""
        return cls(
            config=cfg.path, environment=cfg.environment, runtime_dir=cfg.paths.runtime_dir,
            stop_file=cfg.paths.stop_file, services=tuple(cfg.services),
            dependencies=tuple(cfg.dependencies), proxies=tuple(cfg.chaos.proxies),
            protected_files=tuple(cfg.chaos.protected_files),
            max_age_s=max(5.0, 5 * cfg.daemon.heartbeat_interval))

    def protect(self) -> ProtectedSet:
        """The blast radius of a daemon drill on this target: its config and its own
        ``chaos.protected_files``, not the runtime files the drill is meant to move
        (``global_flags.json`` goes DEGRADED, ``health_v2.json`` changes every beat)."""
        return ProtectedSet(files=[self.config, *self.protected_files])


def fault_problem(params: Mapping[str, Any], target: DrillTarget) -> str | None:
    """Why this scenario's fault cannot be injected into ``target``, or ``None`` (pure)."""
    fault, name = str(params.get("fault", "kill")), str(params.get("target", "feeder"))
    if fault in _CONFIG_FAULTS:
        return (f"fault {fault!r} is not applicable against a target: it rewrites the "
                "config, and a drill never touches the target's config")
    if fault in _SERVICE_FAULTS and name not in target.services:
        return (f"the target config has no service {name!r} "
                f"(services: {', '.join(target.services) or 'none'})")
    if fault in _DEPENDENCY_FAULTS:
        if name not in target.dependencies:
            return (f"the target config has no dependency {name!r} "
                    f"(dependencies: {', '.join(target.dependencies) or 'none'})")
        if name not in target.proxies:
            return (f"the target config has no fault proxy for {name!r} "
                    "([chaos] proxies), so it cannot be slowed or cut")
    if fault not in _SERVICE_FAULTS | _DEPENDENCY_FAULTS:
        return f"fault {fault!r} is not supported against a target"
    return None


def daemon_problem(health: Any, holder: str | None, *, now_wall: float,
                   max_age_s: float) -> str | None:
    """Why the target's daemon cannot take a drill, or ``None`` (pure).

    Args:
        health: the decoded ``health_v2.json`` (anything: it may be unreadable).
        holder: the PID holding the runtime directory's lock, ``None`` when free.
        now_wall: unix seconds now.
        max_age_s: how old the health document may be.
    """
    if holder is None:
        return f"{NOT_RUNNING}: no daemon holds the lock on its runtime directory"
    if not isinstance(health, Mapping) or not isinstance(health.get("daemon"), Mapping):
        return f"{NOT_RUNNING}: its health_v2.json is missing or unreadable"
    info = health["daemon"]
    if info.get("chaos") is not True:
        return f"{NOT_RUNNING}: the daemon (pid {holder}) runs without --chaos"
    if info.get("stopped"):
        return f"{NOT_RUNNING}: the daemon (pid {holder}) is stopping"
    if holder.isdigit() and str(info.get("pid")) != holder:
        return (f"{NOT_RUNNING}: health_v2.json was written by pid {info.get('pid')}, "
                f"the lock is held by pid {holder}")
    ts = health.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return f"{NOT_RUNNING}: health_v2.json has no timestamp"
    if now_wall - ts > max_age_s:
        return (f"{NOT_RUNNING}: its health_v2.json is {now_wall - ts:.1f}s old "
                f"(fresh means within {max_age_s:g}s)")
    return None


def exchange_criteria(scenario: Scenario) -> list[str]:
    """The criteria that read the drill's own fake exchange (pure)."""
    return [c.name for c in scenario.criteria
            if c.observed == "orders_before_fault" or c.observed.startswith("new_orders_after_")]


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
        doc = read_json(self.shared / runtime_files.HEALTH).doc
        return doc if isinstance(doc, dict) else {}

    def alive(self) -> bool:
        """The daemon that took the drill still holds the lock (not a restarted one)."""
        return self.holder is not None and lock_holder(self.shared) == self.holder

    def gone_message(self) -> str:
        return f"the target daemon (pid {self.holder}) stopped; see {self.shared}"

    async def chaos(self, fault: str, target: str = "", *, timeout_s: float = 20.0,
                    **payload: Any) -> dict[str, Any]:
        return await queue_chaos(self.shared, fault, target, timeout_s=timeout_s,
                                 calls=self.chaos_calls, **payload)

    def _notification_lines(self) -> int:
        notes = self.shared / runtime_files.NOTIFICATIONS
        return len(notes.read_bytes().splitlines()) if notes.exists() else 0

    async def start(self) -> None:
        """Check the fault and the daemon, then arm the ``chaos heal`` rollback.

        Raises:
            DrillUnavailableError: the fault does not apply to this target, or its
                daemon is not running with ``--chaos``.
        """
        ctx, t = self.ctx, self.target
        ctx.details["target"] = {"config": str(t.config), "environment": t.environment,
                                 "runtime_dir": str(t.runtime_dir)}
        for name in exchange_criteria(ctx.scenario):
            ctx.skip_criterion(name, EXCHANGE_ONLY)
        problem = fault_problem(ctx.params, t)
        holder = lock_holder(t.runtime_dir)
        if problem is None:
            problem = daemon_problem(self.health(), holder, now_wall=time.time(),
                                     max_age_s=t.max_age_s)
        if problem is not None:
            raise DrillUnavailableError(problem)
        self.holder = holder
        ctx.details["daemon_pid"] = holder
        # Only lines the drill caused count: the target's log has its own history.
        self.notes_offset = self._notification_lines()

        async def heal() -> Any:
            # Always through the target's queue; a daemon that is gone has nothing to heal.
            if lock_holder(t.runtime_dir) is None:
                return "target daemon not running"
            return (await self.chaos("heal", timeout_s=5.0)).get("healed")

        ctx.add_rollback("chaos_heal", heal)
