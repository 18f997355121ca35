"""Whether a target can take a drill, decided from data alone (pure).

Before any fault a drill against a target (:class:`~autoheal.drills.stacks.target.TargetStack`)
asks three questions, in this order, and stops at the first answer that is not ``None``:

1. :func:`fault_problem`: can this scenario's fault be injected into that target at all
   (a service or dependency it has, a fault proxy, not a fault that rewrites the config)?
2. :func:`daemon_problem`: is the target's daemon running with ``--chaos``, alive (a fresh
   heartbeat) and the one that holds its runtime directory's lock?
3. :func:`precondition_problem`: is the target ready now (DOR true, no failsafe, no
   ``STOP.TXT``, every component in OBSERVE with nothing pending, the component the fault
   hits outside any restart episode)? The drill waits for this one, within a bound.

Each answer is a reason in words (it goes into the report as it is) or ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from autoheal.store import layout

if TYPE_CHECKING:
    from autoheal.drills.plan import DrillTarget

__all__ = ["NOT_RUNNING", "daemon_problem", "fault_problem", "precondition_problem"]

NOT_RUNNING = "target daemon not running with --chaos"
_SERVICE_FAULTS = frozenset({"kill", "stall"})
_DEPENDENCY_FAULTS = frozenset({"netcut", "latency"})
_CONFIG_FAULTS = frozenset({"fail_on_start"})


def fault_problem(params: Mapping[str, Any], target: DrillTarget) -> str | None:
    """Why this scenario's fault cannot be injected into ``target``, or ``None`` (pure)."""
    fault, name = str(params.get("fault", "kill")), str(params.get("target", "feeder"))
    if fault in _CONFIG_FAULTS:
        return (
            f"fault {fault!r} is not applicable against a target: it rewrites the "
            "config, and a drill never touches the target's config"
        )
    if fault in _SERVICE_FAULTS and name not in target.services:
        return (
            f"the target config has no service {name!r} "
            f"(services: {', '.join(target.services) or 'none'})"
        )
    if fault in _DEPENDENCY_FAULTS:
        if name not in target.dependencies:
            return (
                f"the target config has no dependency {name!r} "
                f"(dependencies: {', '.join(target.dependencies) or 'none'})"
            )
        if name not in target.proxies:
            return (
                f"the target config has no fault proxy for {name!r} "
                "([chaos] proxies), so it cannot be slowed or cut"
            )
    if fault not in _SERVICE_FAULTS | _DEPENDENCY_FAULTS:
        return f"fault {fault!r} is not supported against a target"
    return None


def daemon_problem(
    health: Any, holder: str | None, *, now_wall: float, max_age_s: float, beat: Any
) -> str | None:
    """Why the target's daemon cannot take a drill, or ``None`` (pure).

    Args:
        health: the decoded ``health_v2.json`` (anything: it may be unreadable).
        holder: the PID holding the runtime directory's lock, ``None`` when free.
        now_wall: unix seconds now.
        max_age_s: how old the daemon's heartbeat may be.
        beat: the decoded ``auto_heal.heartbeat.json``: the daemon writes it every beat,
            and ``health_v2.json`` only when what it says changes.
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
        return (
            f"{NOT_RUNNING}: health_v2.json was written by pid {info.get('pid')}, "
            f"the lock is held by pid {holder}"
        )
    if not isinstance(beat, Mapping) or beat.get("pid") != info.get("pid"):
        return (
            f"{NOT_RUNNING}: its heartbeat ({layout.DAEMON_HEARTBEAT}) is missing "
            "or written by another daemon than its health_v2.json"
        )
    ts = beat.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return f"{NOT_RUNNING}: its heartbeat has no timestamp"
    if now_wall - ts > max_age_s:
        return (
            f"{NOT_RUNNING}: its heartbeat is {now_wall - ts:.1f}s old "
            f"(fresh means within {max_age_s:g}s)"
        )
    return None


def precondition_problem(
    health: Any, *, fault: str, name: str, stop_file_there: bool = False
) -> str | None:
    """Why the target is not ready for this drill's fault now, or ``None`` (pure).

    Ready means: DOR true, no failsafe (nor a ``STOP.TXT``), no dependency failing,
    every component in OBSERVE with no restart or verification pending and not held
    by an operator, and, for a ``kill`` or ``stall``, the component it hits outside any
    restart episode (``attempts`` 0): otherwise the restart the drill expects would be
    a later attempt of the same episode, delayed by the backoff and counted toward
    FAILSAFE. (A fault on a dependency restarts nothing, so a finished but still
    counted episode elsewhere does not matter to it.)
    """
    if not isinstance(health, Mapping):
        return "its health_v2.json is unreadable"
    found: list[str] = []
    if health.get("failsafe"):
        found.append(f"failsafe active ({health.get('failsafe_reason') or 'no reason'})")
    if stop_file_there:
        found.append("STOP.TXT present")
    deps = health.get("dependencies")
    for dep, d in deps.items() if isinstance(deps, Mapping) else ():
        if isinstance(d, Mapping) and d.get("ok") is False:
            found.append(f"dependency {dep} failing ({d.get('reason') or '?'})")
    comps = health.get("components")
    comps = comps if isinstance(comps, Mapping) else {}
    for comp, c in comps.items():
        if not isinstance(c, Mapping):
            continue
        if c.get("stage") != "OBSERVE":
            found.append(f"{comp} is in {c.get('stage')} ({c.get('reason') or 'no reason'})")
        elif c.get("held"):
            found.append(f"{comp} is held (stopped by an operator)")
        elif c.get("next_restart_at") is not None or c.get("verify_until") is not None:
            found.append(f"{comp} has a restart or a verification pending")
        elif c.get("ok") is False:
            found.append(f"{comp} is failing ({c.get('reason') or '?'})")
    if fault in _SERVICE_FAULTS:
        c = comps.get(name)
        attempts = c.get("attempts") if isinstance(c, Mapping) else None
        if (
            isinstance(attempts, int)
            and attempts > 0
            and c is not None
            and c.get("stage") == "OBSERVE"
        ):
            found.append(
                f"{name} is inside a restart episode (attempts {attempts} of "
                f"{c.get('max_restarts', '?')}; it ends after stable_reset of "
                f"continuous health): a {fault} now would be a delayed restart "
                "counted toward FAILSAFE"
            )
    if health.get("dor") is not True and not found:
        found.append("DOR is false")
    return "; ".join(found) or None
