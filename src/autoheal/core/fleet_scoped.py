"""Scoped halts from the fleet: the switch record's optional ``scoped_halts``, and what
a host does with it.

``autoheal fleet halt --scope S`` adds ``S`` to the record's ``scoped_halts``
(``{scope: {"reason", "set_by", "since"}}``, the shape of the local
``global_flags.json`` key); ``autoheal fleet run --scope S`` removes it. The record's
other fields are unchanged, and a record without the field names no scoped halt.

A fleet flag is state: each valid read says which scopes the fleet wants halted now.
On each one a host (:func:`plan`):

* sets every wanted scope it does not hold yet, with ``set_by = "fleet"``: an
  operator's local clear of a fleet-set scope is undone by the next read, as a
  fleet HALT re-halts a host cleared locally (resume with ``fleet run --scope``);
* clears a local scope only when the fleet set it (``set_by = "fleet"``) and the
  fleet no longer wants it. A scope an operator set, or took over, stays;
* a read that is not valid (Redis lost, a bad record, a version going backwards)
  changes nothing: losing the fleet never clears a scoped halt.

Scope strings are the guard's (``autoheal.guard.scopes``); the core imports no layer,
so the shell passes the guard's parser in as ``canonical``. Pure: no clock, no files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_SCOPED",
    "SCOPED_FIELD",
    "SET_BY",
    "FleetScoped",
    "ScopedPlan",
    "encode_scoped",
    "parse_scoped",
    "plan",
    "with_scope",
]

#: The switch record's optional field.
SCOPED_FIELD = "scoped_halts"
#: ``set_by`` of a scoped halt the fleet set on a host (``core.fleet.FLEET``).
SET_BY = "fleet"
#: More scopes than this in one record is not a record of ours.
MAX_SCOPED = 256


@dataclass(frozen=True, slots=True, order=True)
class FleetScoped:
    """One scoped halt the fleet wants: the scope, who asked for it, why, since when."""

    scope: str
    set_by: str = ""
    reason: str = ""
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class ScopedPlan:
    """What a host changes after a valid read: scopes to set (``set_by = "fleet"``), and
    scopes the fleet set that it no longer wants."""

    to_set: tuple[FleetScoped, ...] = ()
    to_clear: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.to_set and not self.to_clear


def _text(value: str, limit: int) -> str:
    return value[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def parse_scoped(
    value: object, canonical: Callable[[str], str] | None = None
) -> tuple[FleetScoped, ...] | str:
    """The record's ``scoped_halts`` value (``None``: the field is absent, no scope), or
    why it is not one (a string: the record is then unreadable, never a RUN).

    ``canonical`` turns a scope string into its canonical form and raises ``ValueError``
    for one that is not a scope (or is ``all``: that is ``fleet halt``). Without it only
    the shape is checked. Scopes that name the same thing are kept once (the first).
    """
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        return f"{SCOPED_FIELD} is not an object"
    if len(value) > MAX_SCOPED:
        return f"{SCOPED_FIELD} has more than {MAX_SCOPED} scopes"
    seen: dict[str, FleetScoped] = {}
    for raw, entry in value.items():
        if not isinstance(raw, str) or not raw:
            return f"{SCOPED_FIELD} has an empty scope"
        shown, key = _text(raw, 64), raw
        if canonical is not None:
            try:
                key = canonical(raw)
            except ValueError as exc:
                return f"{SCOPED_FIELD} scope {shown!r}: {_text(str(exc), 120)}"
        if not isinstance(entry, Mapping):
            return f"{SCOPED_FIELD} entry {shown!r} is not an object"
        reason, set_by = entry.get("reason", ""), entry.get("set_by", "")
        since = entry.get("since", 0.0)
        if not isinstance(reason, str) or not isinstance(set_by, str):
            return f"{SCOPED_FIELD} entry {shown!r}: reason and set_by must be strings"
        number = isinstance(since, int | float) and not isinstance(since, bool)
        if not number or not math.isfinite(since):
            return f"{SCOPED_FIELD} entry {shown!r}: since is not a number"
        entry_ = FleetScoped(key, _text(set_by, 200), _text(reason, 500), float(since))
        seen.setdefault(key, entry_)
    return tuple(sorted(seen.values()))


def encode_scoped(entries: Sequence[FleetScoped]) -> dict[str, dict[str, object]]:
    return {e.scope: {"reason": e.reason, "set_by": e.set_by, "since": e.since} for e in entries}


def with_scope(
    entries: Sequence[FleetScoped],
    scope: str,
    *,
    halted: bool,
    set_by: str,
    reason: str,
    ts: float,
) -> tuple[FleetScoped, ...]:
    """The fleet's scoped halts after an operator halts (or resumes) ``scope``.

    Halting a scope the fleet already halts keeps the first entry (its ``since``).
    """
    kept = {e.scope: e for e in entries}
    if halted:
        kept.setdefault(scope, FleetScoped(scope, set_by, reason, ts))
    else:
        kept.pop(scope, None)
    return tuple(sorted(kept.values()))


def plan(wanted: Sequence[FleetScoped], local: Mapping[str, str]) -> ScopedPlan:
    """What a host changes after a valid read.

    Args:
        wanted: the record's scoped halts (canonical scopes).
        local: this host's scoped halts, scope -> ``set_by``.
    """
    names = {w.scope for w in wanted}
    to_set = tuple(w for w in sorted(wanted) if w.scope not in local)
    to_clear = tuple(
        sorted(scope for scope, by in local.items() if by == SET_BY and scope not in names)
    )
    return ScopedPlan(to_set, to_clear)
