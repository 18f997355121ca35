"""The five stages of a supervised component, and the moves between them.

Stage names are part of the contract: they appear in ``health_v2.json``,
``autoheal_state.json``, log lines and metrics. :data:`TRANSITIONS` is the table of
every move the stage machine makes (each one a ``stage_transition`` line); which
move happens when is decided by the rules of ``healing``, ``checks``,
``operator_rules`` and ``fleet_rules`` (see ``machine.py``), and a property test
checks that no step ever makes a move the table lacks. The reason tokens a move
carries live in :mod:`autoheal.core.reasons`.
"""

from __future__ import annotations

import enum


class Stage(enum.StrEnum):
    OBSERVE = "OBSERVE"
    RESTART = "RESTART"
    BACKOFF = "BACKOFF"
    FAILSAFE = "FAILSAFE"
    NOTIFY = "NOTIFY"


#: Every move between two stages, by the rule that makes it.
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    # a hard failure or N soft ones (restart now); the backoff after a failed one,
    # or parked (a dependency failing, the kill switch holding); max_restarts == 0
    Stage.OBSERVE: frozenset({Stage.RESTART, Stage.BACKOFF, Stage.FAILSAFE}),
    # spawned (verifying) or the spawn failed; an operator's stop; the new process
    # exited with one of its failsafe_exit_codes before its spawn was reported
    Stage.RESTART: frozenset({Stage.BACKOFF, Stage.OBSERVE, Stage.FAILSAFE}),
    # verified; the delay ran out; max_restarts reached; an operator's stop
    Stage.BACKOFF: frozenset({Stage.OBSERVE, Stage.RESTART, Stage.FAILSAFE}),
    # the notice; an operator's clear (a fresh episode)
    Stage.FAILSAFE: frozenset({Stage.NOTIFY, Stage.RESTART}),
    # back to the latch at once; a clear or a stop of a component restored in NOTIFY
    Stage.NOTIFY: frozenset({Stage.FAILSAFE, Stage.RESTART, Stage.OBSERVE}),
}

#: The stages only an operator's clear leaves (the latch).
LATCHED = frozenset({Stage.FAILSAFE, Stage.NOTIFY})

#: Severity for "the most severe stage" in health_v2.json.
SEVERITY: dict[Stage, int] = {
    Stage.OBSERVE: 0,
    Stage.BACKOFF: 1,
    Stage.RESTART: 2,
    Stage.NOTIFY: 3,
    Stage.FAILSAFE: 4,
}
