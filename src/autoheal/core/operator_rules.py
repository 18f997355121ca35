"""The operator's commands: restart, stop, start, failsafe enter, reduce-only, clear.

Commands may be wrong (``IllegalCommandError``: unknown component, nothing to clear,
already active) or refused by a safety gate (``CommandRefusedError``: nothing
restarts or starts while the failsafe holds). Each of restart, stop, start and a
clear begins a fresh episode; restart, stop and start are answered by their own
process action (``Work.reply_after``). The guard's daily-loss latch
(``RiskLatchSeen``) is a fact, not a command: it only tightens.

Functions of the step's scratch (:class:`~autoheal.core.work.Work`); pure.
"""

from __future__ import annotations

from dataclasses import replace

from autoheal.core import healing
from autoheal.core import reasons as R
from autoheal.core.actions import (
    RemoveRiskLatch,
    RemoveStop,
    SendNotice,
    StartProcess,
    StopProcess,
    WriteStop,
)
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
from autoheal.core.fleet import FLEET
from autoheal.core.observations import (
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorRestarted,
    OperatorSetReduceOnly,
    OperatorStarted,
    OperatorStopped,
    RiskLatchSeen,
)
from autoheal.core.stages import LATCHED, Stage
from autoheal.core.state import (
    ComponentState,
    FailsafeState,
    ProbeState,
    ReduceOnlyState,
)
from autoheal.core.switch import RISK
from autoheal.core.work import Work


def check_component(w: Work, name: str) -> ComponentState:
    if name not in w.components:
        raise IllegalCommandError(f"unknown component {name!r}", reason="unknown_component")
    return w.components[name]


def refuse_in_failsafe(w: Work, name: str, verb: str) -> None:
    cs = w.components[name]
    if cs.stage in LATCHED or w.failsafe is not None:
        raise CommandRefusedError(
            f"can't {verb} {name} while the failsafe is active "
            f"({w.failsafe.reason if w.failsafe else cs.reason}); "
            "clear it first with 'autoheal failsafe clear --reason ...'",
            reason="failsafe_active",
        )


def restart(w: Work, obs: OperatorRestarted) -> None:
    check_component(w, obs.component)
    refuse_in_failsafe(w, obs.component, "restart")
    cs = replace(w.components[obs.component], attempts=0)
    w.reply_after = healing.restart_now(w, obs.component, cs, R.OPERATOR)


def stop(w: Work, obs: OperatorStopped) -> None:
    cs = check_component(w, obs.component)
    if cs.held:
        raise IllegalCommandError(f"{obs.component} is already stopped", reason="already_stopped")
    cs = replace(cs, held=True, restart_at=None, verify_until=None, healthy_since=None, attempts=0)
    w.components[obs.component] = cs
    if cs.stage is not Stage.FAILSAFE:
        w.move(obs.component, cs, Stage.OBSERVE, R.OPERATOR)
    w.components[obs.component] = replace(w.components[obs.component], reason="stopped")
    w.reply_after = StopProcess(obs.component, R.OPERATOR)
    w.actions.append(w.reply_after)


def start(w: Work, obs: OperatorStarted) -> None:
    cs = check_component(w, obs.component)
    refuse_in_failsafe(w, obs.component, "start")
    if not cs.held:
        raise IllegalCommandError(
            f"{obs.component} is not stopped (stage {cs.stage}); use restart",
            reason="not_stopped",
        )
    heal = w.policy.components[obs.component].heal
    w.components[obs.component] = replace(
        cs,
        held=False,
        attempts=0,
        reason=R.STARTED,
        probes={p: ProbeState() for p in cs.probes},
        verify_until=w.now + heal.verify_window,
    )
    w.reply_after = StartProcess(obs.component, R.OPERATOR)
    w.actions.append(w.reply_after)


def enter_failsafe(w: Work, obs: OperatorEnteredFailsafe) -> None:
    fleet_held = w.failsafe is not None and w.failsafe.set_by == FLEET
    if fleet_held:
        # The operator's halt takes over the fleet's: the fleet's RUN must not clear it.
        w.failsafe = FailsafeState(obs.reason, obs.actor)
        w.fleet = replace(w.fleet, displaced=None)
        w.actions.append(
            SendNotice(
                "operator",
                "runtime",
                R.OPERATOR,
                f"failsafe taken over from the fleet by {obs.actor}: {obs.reason}",
            )
        )
    if w.failsafe is not None and w.reduce_only is not None:
        # Unwinding is over: halt everything again.
        w.reduce_only = None
        w.actions.append(WriteStop(obs.reason, obs.actor))
        w.actions.append(
            SendNotice(
                "failsafe",
                "runtime",
                R.OPERATOR,
                f"REDUCE_ONLY ended by {obs.actor}, failsafe halts all orders: {obs.reason}",
            )
        )
        return
    if fleet_held:
        return
    if w.failsafe is not None:
        raise IllegalCommandError(
            f"the failsafe is already active ({w.failsafe.reason}, set by {w.failsafe.set_by})",
            reason="already_active",
        )
    w.failsafe = FailsafeState(obs.reason, obs.actor)
    w.reduce_only = None
    w.actions.append(WriteStop(obs.reason, obs.actor))
    w.actions.append(
        SendNotice(
            "failsafe", "runtime", R.OPERATOR, f"failsafe entered by {obs.actor}: {obs.reason}"
        )
    )


def set_reduce_only(w: Work, obs: OperatorSetReduceOnly) -> None:
    if w.reduce_only is not None:
        raise IllegalCommandError(
            f"REDUCE_ONLY is already set ({w.reduce_only.reason}, by {w.reduce_only.set_by})",
            reason="already_reduce_only",
        )
    w.reduce_only = ReduceOnlyState(obs.reason, obs.actor)
    if w.failsafe is not None:
        # STOP.TXT halts every order, reducing sells too: unwinding needs it gone,
        # while global_flags.json keeps failsafe_active with mode REDUCE_ONLY.
        w.actions.append(RemoveStop(obs.reason, obs.actor))
    w.actions.append(
        SendNotice(
            "operator",
            "runtime",
            R.OPERATOR,
            f"REDUCE_ONLY set by {obs.actor}: only position-reducing sells; {obs.reason}",
        )
    )


def clear_failsafe(w: Work, obs: OperatorClearedFailsafe) -> None:
    if w.failsafe is None and w.reduce_only is None:
        raise IllegalCommandError(
            "the failsafe is not active; nothing to clear", reason="not_active"
        )
    w.reduce_only = None
    w.fleet = replace(w.fleet, displaced=None)
    if w.failsafe is None:
        # Clearing REDUCE_ONLY lifts the guard's daily-loss latch too; clearing a
        # failsafe does not (the latch then asks for REDUCE_ONLY again).
        seen = w.switch.latch_on_disk
        if seen is not None:  # none seen: a latch that appears later is read, and holds
            w.actions.append(RemoveRiskLatch(obs.reason, obs.actor, seen.version))
        w.actions.append(
            SendNotice(
                "operator",
                "runtime",
                R.OPERATOR,
                f"REDUCE_ONLY cleared by {obs.actor}: {obs.reason}",
            )
        )
        return
    w.failsafe = None
    w.actions.append(RemoveStop(obs.reason, obs.actor))
    w.actions.append(
        SendNotice(
            "failsafe_cleared",
            "runtime",
            R.OPERATOR,
            f"failsafe cleared by {obs.actor}: {obs.reason}",
        )
    )
    for name, old in list(w.components.items()):
        cs = replace(old, attempts=0)
        w.components[name] = cs
        parked = cs.stage is Stage.BACKOFF and cs.reason == R.FAILSAFE_ACTIVE
        if cs.stage in LATCHED or (parked and not cs.held):
            healing.restart_now(w, name, cs, R.OPERATOR)


def risk_latched(w: Work, obs: RiskLatchSeen) -> None:
    """The guard's latch asks for REDUCE_ONLY: granted only where it tightens."""
    if w.failsafe is not None or w.reduce_only is not None:
        return  # as strict or stricter already; inside a failsafe it would unwind it
    w.reduce_only = ReduceOnlyState(obs.reason, RISK)
    w.actions.append(
        SendNotice(
            "operator",
            RISK,
            "risk_reduce_only",
            f"REDUCE_ONLY latched by the risk guard: {obs.reason}",
        )
    )
