"""The port through which a fault injector is handed to the daemon.

The daemon never imports :mod:`autoheal.chaos` (DESIGN.md §1): ``autoheal run
--chaos`` passes a factory (:class:`autoheal.chaos.handler.ChaosHandler`) to
:class:`~autoheal.daemon.loop.Daemon`, which calls it once with itself and then
speaks to the result only through :class:`FaultInjector`. A daemon built without
one refuses every ``chaos_*`` command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from anyio.abc import TaskGroup

if TYPE_CHECKING:
    from autoheal.daemon.commands import PendingCommand
    from autoheal.daemon.loop import Daemon

__all__ = ["FaultInjector", "InjectorFactory"]


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


#: Called once by the daemon with itself; returns the injector it will use.
InjectorFactory = Callable[["Daemon"], FaultInjector]
