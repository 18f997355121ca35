"""Healing: restart now, later, or give up; verify; the clock's deadlines; a new config.

The counter- and clock-driven rules of the stage machine (see ``machine.py``'s theory
of operation): a failure restarts at once (first of an episode), after the backoff
delay, or, after ``max_restarts``, enters FAILSAFE (``enter_failsafe``: STOP.TXT and
a notice); nothing restarts while a dependency fails (parked without deadlines) or
while the kill switch holds (parked until the clear); a restart is verified once
every probe passed since the spawn and the process stayed up ``verify_min_uptime``;
``advance`` handles each deadline at or before ``now``; ``config_reloaded`` stops,
starts and restarts what a new policy removed, added and changed.

Functions of the step's scratch (:class:`~autoheal.core.work.Work`); pure.
"""

from __future__ import annotations

from dataclasses import replace

from autoheal.core import reasons as R
from autoheal.core.actions import (
    RestartProcess,
    SendNotice,
    StartProcess,
    StopProcess,
    WriteStop,
)
from autoheal.core.backoff import delay_for
from autoheal.core.fleet import FLEET
from autoheal.core.queries import has_deadline, healthy, stable_deadline, verify_deadline
from autoheal.core.stages import LATCHED, Stage
from autoheal.core.state import (
    ComponentState,
    FailsafeState,
    ProbeState,
)
from autoheal.core.work import Work, with_probe


def begin_restart(w: Work, name: str, reason: str) -> None:
    """The component failed: restart now, schedule a delayed restart, or give up."""
    cs = w.components[name]
    heal = w.policy.components[name].heal
    cs = replace(cs, healthy_since=None, verify_until=None, restart_at=None)
    if w.dep_blocked(name):
        # Restarting cannot fix a failing dependency: park without deadlines;
        # resume_dependents() picks it up when the dependency recovers.
        w.components[name] = cs
        if cs.stage is not Stage.OBSERVE:
            w.move(name, cs, Stage.BACKOFF, R.DEPENDENCY_FAILING)
        else:
            w.components[name] = replace(cs, reason=reason)
        return
    if w.failsafe is not None and cs.stage not in LATCHED:
        # Nothing restarts while the kill switch holds: park until the operator clears.
        w.components[name] = cs
        w.move(name, cs, Stage.BACKOFF, R.FAILSAFE_ACTIVE)
        w.components[name] = replace(w.components[name], reason=R.FAILSAFE_ACTIVE)
        return
    if cs.attempts >= heal.max_restarts:
        enter_failsafe(w, name, cs, reason)
        return
    if cs.attempts == 0:
        restart_now(w, name, cs, reason, debug=w.policy.components[name].debug_on_retry)
        return
    w.components[name] = cs
    w.move(
        name,
        replace(cs, restart_at=w.now + delay_for(cs.attempts, heal)),
        Stage.BACKOFF,
        reason,
    )


def restart_now(
    w: Work,
    name: str,
    cs: ComponentState,
    reason: str,
    *,
    debug: bool = False,
    spend: bool = True,
) -> RestartProcess:
    """Restart ``name`` now. ``debug``: after a failure (``RestartProcess.debug``);
    ``spend``: the restart spends an attempt of ``max_restarts`` (all but a planned
    exit's, ``core.exit_rules``)."""
    heal = w.policy.components[name].heal
    cs = replace(
        cs,
        attempts=cs.attempts + 1 if spend else cs.attempts,
        restarts=cs.restarts + 1,
        restart_at=None,
        verify_until=None,
        healthy_since=None,
        held=False,
        started_at=None,
        probes={p: ProbeState() for p in cs.probes},
    )
    w.components[name] = cs
    w.move(name, cs, Stage.RESTART, reason)
    action = RestartProcess(name, cs.attempts, heal.max_restarts, reason, debug)
    w.actions.append(action)
    return action


def enter_failsafe(
    w: Work,
    name: str,
    cs: ComponentState,
    cause: str,
    *,
    token: str = R.MAX_RESTARTS_EXCEEDED,
    why: str = "",
) -> None:
    """FAILSAFE for ``name``: its budget ran out (``max_restarts_exceeded``, the last
    failure ``cause``), or ``token`` with the words ``why`` (an exit-code rule)."""
    heal = w.policy.components[name].heal
    if token == R.MAX_RESTARTS_EXCEEDED:
        stop_reason = f"{name}: {token} (last failure {cause})"
        message = (
            f"{name} failed {heal.max_restarts} restart attempts (last failure {cause}); "
            "FAILSAFE entered, STOP.TXT written, trading halted"
        )
    else:
        stop_reason = f"{name}: {token} ({why})"
        message = f"{name}: {why}; FAILSAFE entered, STOP.TXT written, trading halted"
    cs = replace(cs, restart_at=None, verify_until=None, healthy_since=None)
    w.components[name] = cs
    cs = w.move(name, cs, Stage.FAILSAFE, token)
    w.actions.append(StopProcess(name, token))
    if w.failsafe is None or w.failsafe.set_by == FLEET:
        # Defence in depth: begin_restart parks whatever fails while any failsafe
        # holds, so a fleet halt is never held here today. Were one held, the
        # local failsafe would take it over (the fleet's RUN must not clear it).
        w.failsafe = FailsafeState(stop_reason, "autoheal", name)
        # A new failsafe halts everything, an operator's REDUCE_ONLY included.
        w.reduce_only = None
        w.actions.append(WriteStop(w.failsafe.reason, "autoheal"))
    cs = w.move(name, cs, Stage.NOTIFY, token)
    w.actions.append(SendNotice("failsafe", name, token, message))
    w.move(name, cs, Stage.FAILSAFE, token)


def became_healthy(w: Work, name: str) -> None:
    """Every probe passes: end a grace period, or verify a restart that has been up
    ``verify_min_uptime`` (the deadline at that moment brings ``advance`` back here)."""
    cs = w.components[name]
    if not healthy(cs):
        return
    if cs.stage is Stage.BACKOFF:
        heal = w.policy.components[name].heal
        verified_at = verify_deadline(cs, heal.verify_min_uptime)
        if verified_at is None or verified_at > w.now:
            return
        cs = replace(cs, verify_until=None, restart_at=None, healthy_since=w.now)
        w.components[name] = cs
        w.move(name, cs, Stage.OBSERVE, R.VERIFIED)
    elif cs.stage is Stage.OBSERVE:
        w.components[name] = replace(
            cs,
            verify_until=None,
            reason="",
            healthy_since=cs.healthy_since if cs.healthy_since is not None else w.now,
        )


def spawn_finished(w: Work, name: str, ok: bool, reason: str) -> None:
    cs = w.components[name]
    heal = w.policy.components[name].heal
    if not ok:
        probes = cs.probes
        if "process" in probes:
            probes = with_probe(probes, "process", ProbeState(False, R.SPAWN_FAILED, 0))
        cs = replace(cs, probes=probes, started_at=None)
        w.components[name] = cs
        if cs.stage is Stage.RESTART:
            cs = w.move(name, cs, Stage.BACKOFF, reason or R.SPAWN_FAILED)
        if cs.stage in (Stage.BACKOFF, Stage.OBSERVE) and not cs.held:
            begin_restart(w, name, reason or R.SPAWN_FAILED)
        return
    # Health is judged on checks of this process only: a verdict from before the
    # spawn (the old process's heartbeat, a state file's) does not count.
    probes = {p: ProbeState() for p in cs.probes}
    if "process" in probes:
        probes["process"] = ProbeState(True, "", 0)
    cs = replace(cs, probes=probes, started_at=w.now)
    if cs.stage is Stage.RESTART:
        cs = replace(cs, verify_until=w.now + heal.verify_window)
        w.components[name] = cs
        w.move(name, cs, Stage.BACKOFF, "verifying")
    elif cs.stage is Stage.BACKOFF and cs.restart_at is None:
        # A new process (one that finished spawning after a pause, or adopted by a
        # restarted daemon) gets a whole window, which holds its minimum uptime.
        w.components[name] = replace(cs, verify_until=w.now + heal.verify_window)
    elif cs.stage is Stage.OBSERVE and not cs.held and not healthy(cs):
        # A plain start (daemon start-up, operator start): a grace period in which
        # soft failures (no heartbeat yet) do not count, like a startup probe.
        w.components[name] = replace(cs, verify_until=w.now + heal.verify_window)
    else:
        w.components[name] = cs
    became_healthy(w, name)


def withhold_spawns(w: Work) -> list[RestartProcess | StartProcess]:
    """Inside a failsafe, take back the spawns this step decided before it began.

    One step can both restart a component (its backoff ran out, a verification
    failed with no attempt yet) and enter a failsafe for another (its budget ran
    out), in whichever order the components come. The failsafe wins: each such
    component is parked (BACKOFF, ``failsafe_active``), as if it had failed after.

    Returns:
        The actions taken back.
    """
    withheld = [a for a in w.actions if isinstance(a, RestartProcess | StartProcess)]
    if not withheld:
        return withheld
    w.actions = [a for a in w.actions if not isinstance(a, RestartProcess | StartProcess)]
    for action in withheld:
        cs = replace(w.components[action.component], restart_at=None, verify_until=None)
        w.move(action.component, cs, Stage.BACKOFF, R.FAILSAFE_ACTIVE)
    return withheld


def advance(w: Work) -> None:
    """Handle every deadline at or before ``now``; each handling clears or moves it."""
    for _ in range(4 * len(w.components) + 4):
        due = False
        for name, cs in list(w.components.items()):
            if not has_deadline(cs):
                continue  # most of them, most of the time: O(N) at 500 services
            heal = w.policy.components[name].heal
            if cs.restart_at is not None and cs.restart_at <= w.now:
                due = True
                if w.dep_blocked(name):
                    w.components[name] = replace(cs, restart_at=None)
                elif w.failsafe is not None:
                    begin_restart(w, name, cs.reason or "backoff_elapsed")
                else:
                    restart_now(
                        w,
                        name,
                        cs,
                        cs.reason or "backoff_elapsed",
                        debug=w.policy.components[name].debug_on_retry,
                    )
            elif (
                verified_at := verify_deadline(cs, heal.verify_min_uptime)
            ) is not None and verified_at <= w.now:
                # Up for verify_min_uptime with every probe passing: verified.
                due = True
                became_healthy(w, name)
            elif cs.verify_until is not None and cs.verify_until <= w.now:
                due = True
                if w.dep_blocked(name):
                    w.components[name] = replace(cs, verify_until=None)
                elif not healthy(cs) or cs.stage is Stage.BACKOFF:
                    # In BACKOFF the verification above comes first: a restart still
                    # unverified when its window ends has failed.
                    worst = next(
                        (p.reason for p in cs.probes.values() if p.ok is False),
                        R.VERIFY_TIMEOUT,
                    )
                    begin_restart(w, name, worst if cs.stage is Stage.OBSERVE else R.VERIFY_TIMEOUT)
                else:
                    w.components[name] = replace(cs, verify_until=None)
            else:
                stable_at = stable_deadline(cs, heal.stable_reset)
                if stable_at is not None and stable_at <= w.now and healthy(cs):
                    due = True
                    w.components[name] = replace(cs, attempts=0, reason=R.STABLE)
        if not due:
            return


def config_reloaded(
    w: Work, changed: frozenset[str], added: tuple[str, ...], removed: tuple[str, ...]
) -> None:
    """A new policy: removed components stop, added ones start, changed ones restart.

    Nothing starts or restarts while the failsafe holds (an added component waits,
    parked, for the clear), and a component an operator stopped stays stopped: its
    new settings apply at its next start.
    """
    for name in removed:
        w.actions.append(StopProcess(name, R.CONFIG_REMOVED))
    for name in added:
        cs = w.components[name]
        if w.failsafe is not None:
            w.components[name] = replace(cs, stage=Stage.BACKOFF, reason=R.FAILSAFE_ACTIVE)
            continue
        heal = w.policy.components[name].heal
        w.components[name] = replace(cs, reason=R.STARTED, verify_until=w.now + heal.verify_window)
        w.actions.append(StartProcess(name, R.CONFIG_ADDED))
    for name in sorted(changed):
        kept = w.components.get(name)
        if kept is None or name in added or kept.held or w.failsafe is not None:
            continue
        restart_now(w, name, replace(kept, attempts=0), R.CONFIG_CHANGED)
