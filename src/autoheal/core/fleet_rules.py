"""The fleet switch's rules in ``step`` (``core.fleet`` judges the reads themselves).

A fleet HALT enters a failsafe (``set_by = "fleet"``) only when none is active, and
sets aside an operator's REDUCE_ONLY (given back by the fleet's RUN); REDUCE_ONLY
likewise. The fleet's RUN clears only what the fleet set. A lost link fails closed
(DEGRADED, or halted with ``on_lost = "halt"``) and clears nothing; only a fresh read
ends it; a lower switch version is never applied.

Functions of the step's scratch (:class:`~autoheal.core.work.Work`); pure.
"""

from __future__ import annotations

from dataclasses import replace

from autoheal.core import healing
from autoheal.core import reasons as R
from autoheal.core.actions import (
    ClearAlert,
    RaiseAlert,
    RemoveStop,
    SendNotice,
    WriteStop,
)
from autoheal.core.fleet import FLEET, FLEET_LOST
from autoheal.core.observations import (
    FleetLost,
    FleetSwitchRead,
)
from autoheal.core.stages import Stage
from autoheal.core.state import (
    FailsafeState,
    ReduceOnlyState,
)
from autoheal.core.work import Work


def lost(w: Work, obs: FleetLost) -> None:
    """The switch could not be read for ``stale_after``: fail closed, clear nothing."""
    if w.fleet.lost:
        return
    w.fleet = replace(w.fleet, lost=obs.reason or FLEET_LOST)
    halt = obs.on_lost == "halt"
    if halt and w.failsafe is None:
        w.failsafe = FailsafeState(f"{FLEET_LOST}: {obs.reason}", FLEET)
        if w.reduce_only is not None and w.reduce_only.set_by != FLEET:
            w.fleet = replace(w.fleet, displaced=w.reduce_only)
        w.reduce_only = None
        w.actions.append(WriteStop(w.failsafe.reason, FLEET))
    w.actions.append(RaiseAlert(FLEET_LOST, "fleet switch", obs.reason))
    w.actions.append(
        SendNotice(
            "failsafe" if halt else "degraded",
            FLEET,
            FLEET_LOST,
            f"fleet switch unreadable ({obs.reason}); runtime "
            + ("HALTED" if halt else "DEGRADED: new entries paused, exits allowed"),
        )
    )


def read(w: Work, obs: FleetSwitchRead) -> None:
    """A fresh valid read of the fleet switch: end a loss, then apply what it says."""
    if obs.version < w.fleet.version:
        return  # never applied (core.fleet already reports it as unreadable)
    if w.fleet.lost:
        w.fleet = replace(w.fleet, lost="")
        w.actions.append(ClearAlert(FLEET_LOST, "fleet switch", "read again"))
        w.actions.append(SendNotice("recovered", FLEET, R.RECOVERED, "fleet switch read again"))
    w.fleet = replace(w.fleet, version=obs.version)
    what = f"fleet {obs.state} v{obs.version} by {obs.set_by or '?'}: {obs.reason}"
    fleet_halt = w.failsafe is not None and w.failsafe.set_by == FLEET
    if obs.state == "HALT":
        if w.failsafe is None:
            w.failsafe = FailsafeState(what, FLEET)
            if w.reduce_only is not None and w.reduce_only.set_by != FLEET:
                w.fleet = replace(w.fleet, displaced=w.reduce_only)
            w.reduce_only = None
            w.actions.append(WriteStop(what, FLEET))
            w.actions.append(SendNotice("failsafe", FLEET, "fleet_halt", what))
        elif fleet_halt and w.failsafe.reason != what:
            w.failsafe = replace(w.failsafe, reason=what)
        elif w.reduce_only is not None and w.reduce_only.set_by == FLEET:
            # A local failsafe was unwinding under the fleet's REDUCE_ONLY: halt again.
            w.reduce_only = None
            w.actions.append(WriteStop(w.failsafe.reason, w.failsafe.set_by))
        return
    if fleet_halt:
        clear_fleet_failsafe(w, what)
    if obs.state == "REDUCE_ONLY":
        if w.failsafe is None and w.reduce_only is None:
            w.reduce_only = ReduceOnlyState(what, FLEET)
            w.actions.append(SendNotice("operator", FLEET, "fleet_reduce_only", what))
        return
    if w.reduce_only is not None and w.reduce_only.set_by == FLEET:
        w.reduce_only = None
        w.actions.append(SendNotice("recovered", FLEET, "fleet_run", what))


def detached(w: Work) -> None:
    """No ``[fleet]`` any more: end a persisted loss; a fleet failsafe stays latched."""
    if not w.fleet.lost:
        return
    w.fleet = replace(w.fleet, lost="")
    w.actions.append(ClearAlert(FLEET_LOST, "fleet switch", "[fleet] removed"))
    w.actions.append(SendNotice("recovered", FLEET, R.RECOVERED, "[fleet] removed from the config"))


def clear_fleet_failsafe(w: Work, what: str) -> None:
    """Lift the fleet's own halt, give back what it displaced, resume parked components."""
    w.failsafe = None
    if w.reduce_only is None and w.fleet.displaced is not None:
        w.reduce_only = w.fleet.displaced
    w.fleet = replace(w.fleet, displaced=None)
    w.actions.append(RemoveStop(what, FLEET))
    w.actions.append(SendNotice("failsafe_cleared", FLEET, "fleet_run", what))
    for name, cs in list(w.components.items()):
        if cs.stage is Stage.BACKOFF and cs.reason == R.FAILSAFE_ACTIVE and not cs.held:
            healing.restart_now(w, name, replace(cs, attempts=0), FLEET)
