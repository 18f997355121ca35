"""Planted bugs: realistic mutations of a core or store rule, switched on for one run.

Each is a context manager that replaces one named function for the run only (and puts
it back), so the simulator can show that its invariants find the mistake: the table
in ``docs/simulation.md`` says how many seeds each takes and which invariant catches
it. ``python -m autoheal.sim --plant NAME`` runs with one on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any

from autoheal.core import fleet_rules, healing, switch
from autoheal.core.backoff import delay_for
from autoheal.core.commands import Intent, KeyDecision, KeyUse, decide_key_use
from autoheal.core.fleet import FLEET
from autoheal.core.observations import FleetSwitchRead, OperatorClearedFailsafe
from autoheal.core.stages import LATCHED, Stage
from autoheal.core.work import Work
from autoheal.daemon import files
from autoheal.daemon.persist import Persist
from autoheal.store import commands as queue
from autoheal.store.journal import Journal

__all__ = ["PLANTS", "SURVIVED", "planted"]


@contextmanager
def _swap(owner: Any, name: str, new: Callable[..., Any]) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, new)
    try:
        yield
    finally:
        setattr(owner, name, old)


def spawn_gate_open() -> AbstractContextManager[None]:
    """The process work spawns what the core decided without asking again right before
    (``core.queries.spawn_allowed`` always yes): the bug the simulator found, planted
    back. A restart whose stop began before a halt, or a daemon booting into one,
    spawns inside it."""
    from autoheal.daemon import parts

    def spawn_allowed(_state: object) -> bool:
        return True

    return _swap(parts, "spawn_allowed", spawn_allowed)


def restart_in_failsafe() -> AbstractContextManager[None]:
    """A component that fails during a failsafe is restarted instead of parked.

    Survived, not found: since the fixes of issue 20, ``core.machine.step`` takes back
    any spawn of a step that leaves a failsafe holding (``healing.withhold_spawns``),
    and the shell asks again before each spawn. Kept (in :data:`SURVIVED`) to show it.
    """
    original = healing.begin_restart

    def begin_restart(w: Work, name: str, reason: str) -> None:
        held = w.failsafe
        if held is None or w.components[name].stage in LATCHED:
            original(w, name, reason)
            return
        w.failsafe = None
        try:
            original(w, name, reason)
        finally:
            w.failsafe = w.failsafe or held

    return _swap(healing, "begin_restart", begin_restart)


def budget_off_by_one() -> AbstractContextManager[None]:
    """``attempts > max_restarts`` where it must be ``>=``: one restart too many."""
    original = healing.begin_restart

    def begin_restart(w: Work, name: str, reason: str) -> None:
        cs = w.components[name]
        heal = w.policy.components[name].heal
        if cs.attempts == heal.max_restarts and w.failsafe is None and not w.dep_blocked(name):
            cs = replace(cs, healthy_since=None, verify_until=None, restart_at=None)
            w.components[name] = cs
            later = replace(cs, restart_at=w.now + delay_for(cs.attempts, heal))
            w.move(name, later, Stage.BACKOFF, reason)
            return
        original(w, name, reason)

    return _swap(healing, "begin_restart", begin_restart)


def missing_stop_cleared_at_start() -> AbstractContextManager[None]:
    """The old rule: a daemon that starts and finds no ``STOP.TXT`` under a saved
    failsafe reads it as the operator's removal."""
    original = switch._interpret_stop

    def interpret_stop(
        known: bool | None, present: bool, active: bool, ro: bool, **kw: Any
    ) -> switch.SwitchEvent | None:
        if kw.get("startup") and not present and active and not ro:
            return switch.SwitchEvent(
                "stop_file_removed",
                OperatorClearedFailsafe("STOP.TXT removed by hand", "operator"),
            )
        return original(known, present, active, ro, **kw)

    return _swap(switch, "_interpret_stop", interpret_stop)


def key_conflict_joined() -> AbstractContextManager[None]:
    """Another command under a used key is taken for the earlier one (no conflict)."""
    original = decide_key_use

    def joined(earlier: Intent | None, status: str | None, new: Intent) -> KeyDecision:
        decision = original(earlier, status, new)
        if decision.use is KeyUse.CONFLICT and earlier is not None:
            return original(earlier, status, earlier)
        return decision

    return _swap(queue, "decide_key_use", joined)


def replay_requeued() -> AbstractContextManager[None]:
    """A reused key of a finished command puts that command back in the queue (a
    "retry on replay"), instead of returning its recorded result."""
    original = queue.submit

    def submit(journal: Journal, *args: Any, **kw: Any) -> queue.Submitted:
        submitted = original(journal, *args, **kw)
        if submitted.duplicate and submitted.command.status in queue.TERMINAL_STATUSES:
            with journal.transaction() as conn:
                conn.execute(
                    "UPDATE commands SET status = 'pending', claimed_by = NULL,"
                    " claimed_at = NULL, finished_at = NULL, result = NULL,"
                    " claimer_pid = NULL, claimer_start_time = NULL WHERE id = ?",
                    (submitted.command.id,),
                )
        return submitted

    return _swap(queue, "submit", submit)


def dead_claim_never_settled() -> AbstractContextManager[None]:
    """A daemon that starts leaves the claims of a dead one as they are."""

    def settle_dead_claims(*_args: Any, **_kw: Any) -> list[queue.Command]:
        return []

    return _swap(queue, "settle_dead_claims", settle_dead_claims)


def transition_unjournaled() -> AbstractContextManager[None]:
    """A move that ends a restart well (``verified``: BACKOFF → OBSERVE) is logged but
    not journaled: ``autoheal events`` and the incident report miss the recovery."""
    from autoheal.core.actions import LogTransition
    from autoheal.daemon.effects import Effects

    original = Effects.execute

    def execute(self: Effects, action: Any) -> None:
        if isinstance(action, LogTransition) and action.reason == "verified":
            return
        original(self, action)

    return _swap(Effects, "execute", execute)


def state_saved_when_write_failed() -> AbstractContextManager[None]:
    """The state's save ignores that the write failed: marked saved, never retried
    (``Persist.save_state`` drops ``files.save_state``'s answer), so a power loss or
    a kill brings back an older state."""

    def save_state(self: Persist) -> None:
        files.save_state(
            self._dir, self._runtime.state, to_wall=self.to_wall(), now_wall=self._clock.wall()
        )
        self.state_dirty = False

    return _swap(Persist, "save_state", save_state)


def fleet_run_clears_local_halt() -> AbstractContextManager[None]:
    """The fleet's RUN clears any failsafe, not only the fleet's own: the read of the
    switch forgets to ask who set the failsafe (``set_by == "fleet"``)."""
    original = fleet_rules.read

    def read(w: Work, obs: FleetSwitchRead) -> None:
        if obs.state != "HALT" and w.failsafe is not None and w.failsafe.set_by != FLEET:
            w.failsafe = replace(w.failsafe, set_by=FLEET)
        original(w, obs)

    return _swap(fleet_rules, "read", read)


#: name → the mutation's switch.
PLANTS: dict[str, Callable[[], AbstractContextManager[None]]] = {
    "spawn_gate_open": spawn_gate_open,
    "budget_off_by_one": budget_off_by_one,
    "missing_stop_cleared_at_start": missing_stop_cleared_at_start,
    "key_conflict_joined": key_conflict_joined,
    "replay_requeued": replay_requeued,
    "dead_claim_never_settled": dead_claim_never_settled,
    "fleet_run_clears_local_halt": fleet_run_clears_local_halt,
    "transition_unjournaled": transition_unjournaled,
    "state_saved_when_write_failed": state_saved_when_write_failed,
}


#: Mutations the daemon survives (another layer holds): name → the mutation's switch.
SURVIVED: dict[str, Callable[[], AbstractContextManager[None]]] = {
    "restart_in_failsafe": restart_in_failsafe,
}


@contextmanager
def planted(name: str | None) -> Iterator[None]:
    """Run the block with the mutation ``name`` on (None: none)."""
    if name is None:
        yield
        return
    with {**PLANTS, **SURVIVED}[name]():
        yield
