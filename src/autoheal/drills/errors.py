"""The drills' own errors, in one place.

The hierarchy::

    RuntimeError
     ├── DrillUnavailableError   the drill's stack could not be brought up, or a target
     │    │                      cannot take the drill (the message says which part and why)
     │    └── DrillRefusedError  a target did not meet the preconditions (or another drill
     │                           held its lock) within the wait bound; nothing was injected
     ├── ChaosCommandError       a durable chaos command (``chaos_<fault>``) did not succeed
     └── StackError              a process of a stack did not start (the message names it
          │                      and its log: :mod:`autoheal.drills.stacks.harness`)
          └── ExchangeError      the fake exchange did not start or did not answer its admin API

A step that raises one of them ends its drill as ``ERROR`` with the message; the runner
still rolls back. A scenario file that cannot be read is
:class:`~autoheal.drills.model.ScenarioError` (a ``ValueError``), raised before any drill.
"""

from __future__ import annotations

__all__ = [
    "ChaosCommandError",
    "DrillRefusedError",
    "DrillUnavailableError",
    "ExchangeError",
    "StackError",
]


class DrillUnavailableError(RuntimeError):
    """The drill's stack could not be brought up, or a target cannot take the drill
    (the message says which part and why)."""


class DrillRefusedError(DrillUnavailableError):
    """The target did not meet a drill's preconditions (or another drill held the lock)
    within the wait bound; nothing was injected."""


class ChaosCommandError(RuntimeError):
    """``autoheal chaos ...`` did not succeed; the message holds its output."""


class StackError(RuntimeError):
    """A process of a stack exited before it was up, or was not up in time."""


class ExchangeError(StackError):
    """The fake exchange did not start or did not answer its admin API."""
