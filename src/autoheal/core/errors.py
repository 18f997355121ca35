"""Errors the core raises for operator *commands* (never for observations).

Hierarchy::

    Exception
     ├── IllegalCommandError   the command makes no sense in this state (exit 1)
     └── CommandRefusedError   a safety gate refuses it (exit 3)

Observations are facts about the world and never raise; only commands can be wrong.
"""

from __future__ import annotations


class IllegalCommandError(Exception):
    """An operator command that does not apply to the current state, e.g. clearing no failsafe."""

    def __init__(self, message: str, *, reason: str = "illegal_command") -> None:
        super().__init__(message)
        self.reason = reason


class CommandRefusedError(Exception):
    """A command refused by a safety gate, e.g. a restart while the failsafe is latched."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
