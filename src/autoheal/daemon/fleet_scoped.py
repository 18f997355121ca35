"""The fleet's scoped halts, applied on this host after each valid read of the switch.

What to change is :func:`autoheal.core.fleet_scoped.plan`'s decision; this reads the
daemon's record ``scoped_halts.json``, sets and clears the scopes it names (with
``set_by = "fleet"``) through :mod:`autoheal.guard.scoped_record`, copies them into
``global_flags.json`` and journals each change. A record that cannot be read or
written is logged once and left alone (the guard halts every order over an
unreadable one); the next valid read tries again, since the fleet's flag is state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from autoheal.core.fleet import SwitchRecord
from autoheal.core.fleet_scoped import SET_BY, ScopedPlan, plan
from autoheal.guard import scoped_record
from autoheal.guard.scopes import Halt, ScopeError, parse_scope

__all__ = ["FleetScopedApplier", "canonical_scope"]

log = logging.getLogger("autoheal")


def canonical_scope(text: str) -> str:
    """A fleet scope's canonical string; ``all`` is refused (that is ``fleet halt``).

    Raises:
        ScopeError: not a scope, or ``all``.
    """
    scope = parse_scope(text)
    if scope.is_all:
        raise ScopeError("'all' is the fleet's HALT (autoheal fleet halt), not a scope")
    return str(scope)


class FleetScopedApplier:
    """Brings this host's fleet-set scoped halts to what the switch record says.

    Args:
        runtime_dir: where ``scoped_halts.json`` and ``global_flags.json`` live.
        rewrote_flags: tells the kill-switch watch the daemon itself wrote the flags.
        journal_event: the daemon's journal port.
        wall: unix seconds (the halt's ``since``).
    """

    def __init__(
        self,
        runtime_dir: Path,
        *,
        rewrote_flags: Callable[[], None],
        journal_event: Callable[..., None],
        wall: Callable[[], float],
    ) -> None:
        self._rt = Path(runtime_dir)
        self._rewrote_flags = rewrote_flags
        self._journal_event = journal_event
        self._wall = wall
        self._problem = ""

    def apply(self, record: SwitchRecord) -> ScopedPlan:
        """Set what the fleet wants and this host lacks; clear what the fleet set and no
        longer wants. Returns the plan (empty when nothing changed or nothing could)."""
        view = scoped_record.read_view(self._rt)
        if view.garbage:
            self._trouble(f"{scoped_record.UNREADABLE}: {view.garbage}")
            return ScopedPlan()
        local = {name: halt.set_by for name, halt in view.by_name().items()}
        todo = plan(record.scoped, local)
        if todo.empty:
            self._trouble("")
            return todo
        try:
            for want in todo.to_set:
                why = f"fleet v{record.version} by {want.set_by or '?'}: {want.reason}"
                scoped_record.set_halt(self._rt, want.scope, Halt(why, self._wall(), SET_BY))
            for scope in todo.to_clear:
                scoped_record.clear_halt(self._rt, scope)
            if scoped_record.sync_flags(self._rt):
                self._rewrote_flags()
        except OSError as exc:  # RecordUnreadableError is one
            self._trouble(f"scoped_halt_write_failed: {exc}")
            return ScopedPlan()
        self._trouble("")
        for want in todo.to_set:
            log.warning(
                "fleet_scoped_halt_entered scope=%s version=%d by=%s reason=%s",
                want.scope,
                record.version,
                want.set_by or "-",
                want.reason or "-",
            )
            self._journal(
                "fleet_scoped_halt_entered", want.scope, record.version, want.set_by, want.reason
            )
        for scope in todo.to_clear:
            log.warning("fleet_scoped_halt_cleared scope=%s version=%d", scope, record.version)
            self._journal("fleet_scoped_halt_cleared", scope, record.version, "", "")
        return todo

    def _journal(self, kind: str, scope: str, version: int, by: str, reason: str) -> None:
        self._journal_event(
            kind,
            reason=reason or kind,
            actor=SET_BY,
            data={"scope": scope, "fleet_version": version, "fleet_set_by": by},
        )

    def _trouble(self, problem: str) -> None:
        """One line when the problem starts or ends, not one per read."""
        if problem == self._problem:
            return
        if problem:
            log.error("fleet_scoped_halts_not_applied problem=%s", problem)
        else:
            log.info("fleet_scoped_halts_applied_again")
        self._problem = problem
