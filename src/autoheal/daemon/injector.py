"""The port through which a fault injector is handed to the daemon.

The daemon never imports :mod:`autoheal.chaos` (DESIGN.md §1): ``autoheal run
--chaos`` passes a factory (:class:`autoheal.chaos.handler.ChaosHandler`) to
:class:`~autoheal.daemon.loop.Daemon`, which calls it once with
:class:`InjectorPorts` (what an injector may see and do, never the daemon itself)
and then speaks to the result only through :class:`FaultInjector`. A daemon built
without one refuses every ``chaos_*`` command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from anyio.abc import TaskGroup

if TYPE_CHECKING:
    from autoheal.config import Config
    from autoheal.daemon.commands import PendingCommand
    from autoheal.daemon.services import Services

__all__ = ["FaultInjector", "InjectorFactory", "InjectorPorts"]


@dataclass(frozen=True, slots=True)
class InjectorPorts:
    """What a fault injector may see and do.

    Attributes:
        config: the config in force now (a reload may change it).
        runtime_dir: the runtime directory (fixed while the daemon runs).
        services: the daemon's processes (identity and ownership proofs).
        succeed: finishes a command with a result.
        fail: finishes a command as failed: ``(pending, reason, message, refused)``.
        journal_event: records a journal event.
    """

    config: Callable[[], Config]
    runtime_dir: Path
    services: Services
    succeed: Callable[[PendingCommand, dict[str, Any]], None]
    fail: Callable[[PendingCommand, str, str, bool], None]
    journal_event: Callable[..., None]


class FaultInjector(Protocol):
    """What the daemon needs from a fault injector."""

    def start(self, tg: TaskGroup) -> None:
        """Begin serving (e.g. start the blast-radius guard) in the daemon's task group."""

    def __call__(self, pending: PendingCommand) -> None:
        """Execute (or refuse) one ``chaos_*`` command; finishes it through the daemon."""

    async def heal_all(self) -> list[str]:
        """Undo every active fault; returns what was healed (``kind:target``)."""

    async def disable(self, reason: str, message: str) -> None:
        """Heal every fault and refuse all further faults (journaled ``chaos_disabled``).

        Args:
            reason: a reason token (``environment_live``).
            message: what the operator reads when a later command is refused.
        """


#: Called once by the daemon with its ports; returns the injector it will use.
InjectorFactory = Callable[[InjectorPorts], FaultInjector]
