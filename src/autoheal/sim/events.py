"""Change events delayed, merged or dropped: the daemon's folder watch under faults.

The daemon wakes on inotify (:func:`autoheal.daemon.dirwatch.watch`, looked up by
:mod:`autoheal.daemon.watch` at each call). For a run, :func:`faulty_watch` puts a
wrapper there that passes each batch of changed names through :class:`EventFaults`:
while a window is on, a batch is

* ``drop``-ped: never delivered (as when the kernel's queue overflowed and the
  overflow itself went unseen, or a watch raced a replacement);
* ``hold``-ed: kept and merged into the next batch that comes (a debounce);
* delivered ``late``: after a drawn virtual delay, by a task of the watch's own.

Each batch is decided by the window's generator (seeded from the run's), so the
number of events never shifts the run's other draws.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

__all__ = ["EVENT_KINDS", "EventFaults", "EventWindow", "faulty_watch"]

EVENT_KINDS = ("drop", "hold", "late")


@dataclass
class EventWindow:
    kind: str
    until: float
    rate: float
    delay_s: tuple[float, float] = (0.0, 0.0)


class EventFaults:
    """The event fault that is on (at most one), and what it did."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.window: EventWindow | None = None
        self.struck: dict[str, int] = {}
        self.last_struck = -math.inf
        """When a batch was last dropped, held or delayed (virtual seconds)."""

    def decide(self, now: float) -> tuple[str, float] | None:
        """What happens to a batch now: None (delivered), or the fault and a delay."""
        w = self.window
        if w is None or w.until <= now:
            self.window = None
            return None
        if self._rng.random() >= w.rate:
            return None
        self.struck[w.kind] = self.struck.get(w.kind, 0) + 1
        self.last_struck = now
        delay = round(self._rng.uniform(*w.delay_s), 3) if w.kind == "late" else 0.0
        return w.kind, delay


@contextmanager
def faulty_watch(faults: EventFaults) -> Iterator[None]:
    """For the block: the daemon's folder watch delivers through ``faults``."""
    from autoheal.daemon import dirwatch

    real = dirwatch.watch

    async def watch(
        folders: Iterable[Path],
        files: Iterable[Path],
        on_change: Callable[[set[str]], None],
        **kw: Any,
    ) -> None:
        held: set[str] = set()

        async def later(delay: float, names: set[str]) -> None:
            await anyio.sleep(delay)
            on_change(names)

        async with anyio.create_task_group() as tg:

            def changed(names: set[str]) -> None:
                nonlocal held
                verdict = faults.decide(anyio.current_time())
                if verdict is None:
                    names, held = names | held, set()
                    on_change(names)
                    return
                kind, delay = verdict
                if kind == "hold":
                    held |= names
                elif kind == "late":
                    tg.start_soon(later, delay, set(names))
                # "drop": nothing

            await real(folders, files, changed, **kw)

    dirwatch.watch = watch
    try:
        yield
    finally:
        dirwatch.watch = real
