"""When the next restart comes, why, and how much of the restart budget is left.

Nomad says "restarting in 30.5 s" and why; an operator of autoheal asks the same
at 3 a.m. :func:`outlook` answers it for one component from the state, the policy
and ``now`` alone, by the same rules :mod:`~autoheal.core.healing` acts on:

* ``next`` says what comes: a restart at a known moment (``scheduled``), one under
  way (``restarting``), the restart being verified (``verifying``), or none and why
  not (``healthy``, ``watching`` a failing probe, ``held`` by an operator, the
  ``failsafe``, a failing ``dependency``, ``waiting`` for the process of a restart);
* the budget: ``attempts`` used of ``max_restarts``, those left, and when the
  attempts reset (``stable_reset`` after the component is healthy again: a moment
  once it is, otherwise only the length);
* ``on_failure``: what a failure of the current (or scheduled) attempt leads to: a
  restart after ``on_failure_delay`` seconds, or FAILSAFE once the budget is spent;
  None when a failure would only park it (held, a failsafe, a failing dependency).

Times are on the caller's monotonic timeline, as every deadline of the core; the
shell shifts them to wall clock for its readers (``daemon/health.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from autoheal.core.backoff import delay_for
from autoheal.core.policy import Policy
from autoheal.core.queries import healthy, stable_deadline
from autoheal.core.stages import Stage
from autoheal.core.state import ComponentState, RuntimeState

__all__ = ["Next", "OnFailure", "Outlook", "outlook", "outlooks"]


class Next(StrEnum):
    """What comes next for a component's restarts (a stable word: files, metrics)."""

    SCHEDULED = "scheduled"  # BACKOFF: a restart at ``restart_at``
    RESTARTING = "restarting"  # RESTART: stopping and spawning now
    VERIFYING = "verifying"  # BACKOFF: the last restart is up, verified by ``verify_until``
    WAITING = "waiting"  # BACKOFF: a restart's process is awaited (no deadline of its own)
    WATCHING = "watching"  # OBSERVE, not (yet) healthy: a restart once the failures count
    HEALTHY = "healthy"  # OBSERVE, every probe passes: no restart due
    HELD = "held"  # stopped by an operator: nothing restarts it until a start
    FAILSAFE = "failsafe"  # the kill switch holds (or this component spent its budget)
    DEPENDENCY = "dependency"  # a dependency fails: restarting cannot help, parked


class OnFailure(StrEnum):
    """What a failure of the current (or scheduled) attempt leads to."""

    RESTART = "restart"
    FAILSAFE = "failsafe"


@dataclass(frozen=True, slots=True)
class Outlook:
    """One component's next restart and budget (see the module docstring).

    ``attempt`` is the number of the restart that is scheduled, under way or being
    verified (``attempts + 1`` when scheduled), None otherwise. ``reset_at`` is when
    the attempts go back to 0 by themselves, known once the component is healthy in
    OBSERVE; before that they reset ``stable_reset`` seconds after it is healthy.
    The ``*_in`` fields are the same moments as seconds from ``now``, never negative.
    """

    next: Next
    reason: str
    attempts: int
    max_restarts: int
    attempts_left: int
    stable_reset: float
    attempt: int | None = None
    restart_at: float | None = None
    restart_in: float | None = None
    verify_until: float | None = None
    reset_at: float | None = None
    reset_in: float | None = None
    on_failure: OnFailure | None = None
    on_failure_delay: float | None = None


def _in(at: float | None, now: float) -> float | None:
    return None if at is None else max(0.0, at - now)


def _next(cs: ComponentState, state: RuntimeState, policy: Policy, name: str) -> Next:
    """Which of :class:`Next`; the order is the order in which healing's rules bite."""
    if cs.held:
        return Next.HELD
    if cs.stage in (Stage.FAILSAFE, Stage.NOTIFY):
        return Next.FAILSAFE
    if cs.stage is Stage.OBSERVE and healthy(cs):
        return Next.HEALTHY
    if state.failsafe is not None:
        return Next.FAILSAFE  # begin_restart parks, advance parks a due restart
    spec = policy.components[name]
    if cs.stage is not Stage.RESTART and any(
        state.dependencies[d].failing for d in spec.dependencies
    ):
        return Next.DEPENDENCY  # a due restart is dropped, a failure parks
    if cs.stage is Stage.RESTART:
        return Next.RESTARTING
    if cs.stage is Stage.BACKOFF:
        if cs.restart_at is not None:
            return Next.SCHEDULED
        if cs.verify_until is not None:
            return Next.VERIFYING
        return Next.WAITING
    return Next.WATCHING


def outlook(state: RuntimeState, policy: Policy, name: str, now: float) -> Outlook:
    """The next restart of component ``name`` and its budget, as of ``now``."""
    cs = state.components[name]
    heal = policy.components[name].heal
    kind = _next(cs, state, policy, name)
    attempt: int | None = None
    if kind is Next.SCHEDULED:
        attempt = cs.attempts + 1
    elif kind in (Next.RESTARTING, Next.VERIFYING, Next.WAITING):
        attempt = cs.attempts
    on_failure: OnFailure | None = None
    on_failure_delay: float | None = None
    blocked = state.failsafe is not None or any(
        state.dependencies[d].failing for d in policy.components[name].dependencies
    )
    if kind not in (Next.HELD, Next.FAILSAFE, Next.DEPENDENCY) and not blocked:
        # begin_restart's rule, applied to the attempts made once this one is.
        done = cs.attempts if attempt is None else attempt
        if done >= heal.max_restarts:
            on_failure = OnFailure.FAILSAFE
        else:
            on_failure = OnFailure.RESTART
            on_failure_delay = delay_for(done, heal)
    restart_at = cs.restart_at if kind is Next.SCHEDULED else None
    verify_until = cs.verify_until if kind is Next.VERIFYING else None
    reset_at = stable_deadline(cs, heal.stable_reset) if kind is Next.HEALTHY else None
    return Outlook(
        next=kind,
        reason=cs.reason,
        attempts=cs.attempts,
        max_restarts=heal.max_restarts,
        attempts_left=max(0, heal.max_restarts - cs.attempts),
        stable_reset=heal.stable_reset,
        attempt=attempt,
        restart_at=restart_at,
        restart_in=_in(restart_at, now),
        verify_until=verify_until,
        reset_at=reset_at,
        reset_in=_in(reset_at, now),
        on_failure=on_failure,
        on_failure_delay=on_failure_delay,
    )


def outlooks(state: RuntimeState, policy: Policy, now: float) -> dict[str, Outlook]:
    """:func:`outlook` of every component."""
    return {name: outlook(state, policy, name, now) for name in state.components}
