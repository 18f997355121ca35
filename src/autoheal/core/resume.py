"""What a starting daemon resumes: its saved state, and the journal as the record of
last resort for a failsafe.

A failsafe the daemon enters is saved in ``autoheal_state.json`` and journaled (its
``failsafe`` notice). The state file can miss it: its write failed (ENOSPC, a
folder made read-only or replaced) and then the host died, or it was lost or
removed by hand. The kill-switch files cannot stand in for it either, since they
are shared with people: an edit made while no daemon runs is not an operator's
clear (DESIGN.md §2). So when the resumed state holds no failsafe and the journal's
last word on one is that it was entered, the daemon resumes it, loudly. This only
tightens: a journal whose last word is a clear never loosens a saved failsafe.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoheal.core.fleet import FLEET
from autoheal.core.observations import OperatorEnteredFailsafe
from autoheal.core.state import RuntimeState

__all__ = ["CLEARED", "ENTERED", "JournaledNotice", "failsafe_to_resume"]

#: The notice kinds that begin and end a failsafe (``SendNotice.kind``).
ENTERED = "failsafe"
CLEARED = "failsafe_cleared"


@dataclass(frozen=True, slots=True)
class JournaledNotice:
    """The newest journaled notice of kind :data:`ENTERED` or :data:`CLEARED`."""

    kind: str
    target: str
    """Who it was about: ``runtime``, ``fleet`` or a component."""
    message: str


def failsafe_to_resume(
    state: RuntimeState, last: JournaledNotice | None
) -> OperatorEnteredFailsafe | None:
    """The failsafe to enter at start, if the journal holds one the state lost.

    Resumed as the daemon's, which only an operator clears, even when the last notice
    was the fleet's: an operator's failsafe entered before it, and never cleared, may
    be under it (the fleet's RUN would lift both), and the journal cannot say.

    A saved failsafe that is the fleet's, where the journal's last word is a failsafe
    entered by someone else, is stale: the state's write of that later failsafe failed
    (the fleet's RUN that ended its own halt was not saved either). The entry takes the
    failsafe over from the fleet, so the fleet's RUN cannot lift it (seed 4353: an
    operator's STOP.TXT, the daemon SIGKILLed while ENOSPC refused every state write,
    and the next daemon's first fleet read, RUN, removed the operator's STOP.TXT).
    """
    if last is None or last.kind != ENTERED:
        return None
    held = state.failsafe
    if held is not None and not (held.set_by == FLEET and last.target != FLEET):
        return None
    return OperatorEnteredFailsafe(f"resumed from the journal: {last.message}", "autoheal")
