"""How many failed checks make a probe's soft failure a verdict: in a row, or K of N.

The default is the consecutive rule (``failures_before_restart`` counted failures in a
row for a service's probe, ``failures_before_degraded`` for a dependency's). A probe may
instead be judged by :class:`FailureWindow`: ``failures`` failed checks within its last
``within`` counted checks (monit's "X times within Y cycles"), so a probe that flaps
1-0-1-0 is judged failing, where the consecutive rule never sees two in a row.

The window holds only *counted* checks (``checks`` decides which count: not while a
dependency fails or is suspect, not outside OBSERVE), newest last, True for a failure,
and never more than ``within`` of them. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_WITHIN", "FailureWindow", "judged_failing", "pushed"]

#: The longest window a probe may keep (it is saved in the state file, per probe).
MAX_WITHIN = 100


@dataclass(frozen=True, slots=True)
class FailureWindow:
    """``failures`` failed checks within the last ``within`` counted checks."""

    failures: int
    within: int

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ValueError("failures must be at least 1")
        if self.within < self.failures:
            raise ValueError("within must be at least failures")
        if self.within > MAX_WITHIN:
            raise ValueError(f"within must be at most {MAX_WITHIN}")


def pushed(window: tuple[bool, ...], failed: bool, rule: FailureWindow) -> tuple[bool, ...]:
    """``window`` with one more counted check, cut to the last ``rule.within``."""
    return (*window, failed)[-rule.within :]


def judged_failing(window: tuple[bool, ...], rule: FailureWindow) -> bool:
    """At least ``rule.failures`` failed checks among the last ``rule.within``."""
    return sum(window[-rule.within :]) >= rule.failures
