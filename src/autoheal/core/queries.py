"""Pure questions about a runtime state: is it healthy, ready to trade, what must the
flags say, when does time alone change a decision. Used by ``machine`` and the shell."""

from __future__ import annotations

from dataclasses import dataclass

from autoheal.core import reasons as R
from autoheal.core.fleet import FLEET, FLEET_LOST
from autoheal.core.policy import Policy
from autoheal.core.stages import Stage
from autoheal.core.state import ComponentState, RuntimeState

__all__ = [
    "FlagsView",
    "deadlines",
    "dor",
    "flags_for",
    "has_deadline",
    "healthy",
    "spawn_allowed",
    "stable_deadline",
    "starts_at_boot",
    "verify_deadline",
]


@dataclass(frozen=True, slots=True)
class FlagsView:
    failsafe_active: bool
    mode: str
    reason: str
    set_by: str


def healthy(cs: ComponentState) -> bool:
    """Every probe has passed since the last (re)start and the operator has not stopped it."""
    return not cs.held and all(p.ok is True for p in cs.probes.values())


def failing_dependencies(state: RuntimeState, policy: Policy, component: str) -> tuple[str, ...]:
    spec = policy.components[component]
    return tuple(d for d in spec.dependencies if state.dependencies[d].failing)


def dor(state: RuntimeState, policy: Policy) -> bool:
    """Ready to trade: no failsafe, fleet switch read, no failing dependency, all required
    components healthy."""
    if state.failsafe is not None or state.fleet.lost:
        return False
    if any(d.failing for d in state.dependencies.values()):
        return False
    return all(
        cs.stage is Stage.OBSERVE and healthy(cs)
        for name, cs in state.components.items()
        if policy.components[name].required
    )


def flags_for(state: RuntimeState) -> FlagsView:
    """What ``global_flags.json`` must say for this state.

    An operator's REDUCE_ONLY outranks DEGRADED and, during a failsafe, replaces its
    SIGNAL_READ_ONLY (that is what it is for: unwinding while the failsafe holds).
    """
    if state.reduce_only is not None:
        return FlagsView(
            state.failsafe is not None,
            "REDUCE_ONLY",
            state.reduce_only.reason,
            state.reduce_only.set_by,
        )
    if state.failsafe is not None:
        return FlagsView(True, "SIGNAL_READ_ONLY", state.failsafe.reason, state.failsafe.set_by)
    failing = sorted(name for name, d in state.dependencies.items() if d.failing)
    if failing:
        detail = ",".join(f"{n}:{state.dependencies[n].reason}" for n in failing)
        return FlagsView(False, "DEGRADED", f"{R.DEPENDENCY_FAILING} {detail}", "autoheal")
    if state.fleet.lost:
        # The fleet switch cannot be read: it may say HALT. Fail closed (buys paused).
        return FlagsView(False, "DEGRADED", f"{FLEET_LOST} {state.fleet.lost}", FLEET)
    return FlagsView(False, "NORMAL", "", "autoheal")


def starts_at_boot(cs: ComponentState, *, autostart: bool) -> bool:
    """Whether a daemon that just started (and found no process to adopt) starts it.

    Not when an operator stopped it, not in a latched failsafe, not while a backoff
    delay runs (its restart is due at ``restart_at``), and not when the config says
    ``autostart = false`` and nothing is in progress for it.
    """
    if cs.held or cs.stage in (Stage.FAILSAFE, Stage.NOTIFY):
        return False
    if cs.stage is Stage.BACKOFF and cs.restart_at is not None:
        return False
    return autostart or cs.stage is not Stage.OBSERVE


def spawn_allowed(state: RuntimeState) -> bool:
    """Whether a process may be spawned now: never while a failsafe holds.

    Asked by the shell right before each spawn, because a spawn is not instantaneous:
    a restart decided before a failsafe (its stop takes up to the grace period), or a
    start by a daemon that boots into one, must not put a process up inside it.
    """
    return state.failsafe is None


def stable_deadline(cs: ComponentState, stable_reset: float) -> float | None:
    """When a healthy component's restart episode ends (its attempts reset), if one is open."""
    if cs.stage is Stage.OBSERVE and cs.attempts > 0 and cs.healthy_since is not None:
        return cs.healthy_since + stable_reset
    return None


def verify_deadline(cs: ComponentState, verify_min_uptime: float) -> float | None:
    """When a restarted component whose probes all pass counts as verified.

    Only in BACKOFF, only once every probe has passed since the spawn, and never
    before its process has been up ``verify_min_uptime`` (supervisord's ``startsecs``):
    a process that passes its first check a millisecond after the spawn has not yet
    had the time to fail. None while that is not the question.
    """
    if cs.stage is Stage.BACKOFF and cs.started_at is not None and healthy(cs):
        return cs.started_at + verify_min_uptime
    return None


def has_deadline(cs: ComponentState) -> bool:
    """Whether time alone may change a decision about ``cs`` (a cheap test, first).

    False means every deadline below is None: no restart or verification pending, and
    in OBSERVE with no restart episode open (so neither verified-at nor stable-at).
    """
    return not (
        cs.restart_at is None
        and cs.verify_until is None
        and cs.stage is Stage.OBSERVE
        and cs.attempts == 0
    )


def deadlines(state: RuntimeState, policy: Policy) -> float | None:
    """The earliest moment at which time alone changes a decision."""
    found: list[float] = []
    for name, cs in state.components.items():
        if not has_deadline(cs):
            continue
        heal = policy.components[name].heal
        for value in (
            cs.restart_at,
            cs.verify_until,
            verify_deadline(cs, heal.verify_min_uptime),
            stable_deadline(cs, heal.stable_reset),
        ):
            if value is not None:
                found.append(value)
    return min(found) if found else None
