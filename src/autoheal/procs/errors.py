"""Errors raised by :mod:`autoheal.procs`.

Hierarchy::

    Exception
    └── ProcsError
        └── SpawnError      a service could not be started (reason token + detail)

Everything else the operating system or psutil raises is translated at the
boundary into a :class:`~autoheal.procs.model.ProcessStatus`, a
:class:`~autoheal.procs.model.StopOutcome` or one of these errors.
"""

from __future__ import annotations

__all__ = ["ProcsError", "SpawnError"]


class ProcsError(Exception):
    """Base class of the errors of :mod:`autoheal.procs`."""


class SpawnError(ProcsError):
    """A service could not be started; nothing of it is left running.

    Attributes:
        reason: a stable token: ``invalid_argv``, ``invalid_spec``, ``exec_not_found``,
            ``cwd_not_found``, ``permission_denied``, ``log_unwritable``,
            ``pidfile_unwritable`` or ``spawn_failed``.
        detail: for humans (the OS message, the path).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
