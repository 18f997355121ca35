"""The command queue's lock, failing: ``database is locked`` under a seeded fault window.

Every write of the queue (:mod:`autoheal.store.commands`) is one ``BEGIN IMMEDIATE``
transaction on the journal's SQLite file. Another process holding the write lock
past the ``busy_timeout`` makes ``BEGIN IMMEDIATE`` raise
``sqlite3.OperationalError: database is locked`` before anything is written.
:func:`queue_lock_patches` makes the queue's entry points (``submit``, ``claim_next``,
``audit`` — the ``started`` and ``<type>.<phase>`` events —, ``finish``,
``settle_dead_claims``) raise exactly that, before calling the real function, with a
chance drawn per call while the window is open. The wait itself (up to 10 s of a
blocked thread) is not simulated: the error comes at once.

What the daemon's own journal writes (events, notices) meet is not changed here: only
the queue's lock fails.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ENTRY_POINTS", "QueueLock", "queue_lock_patches"]

#: The queue's functions that take the lock, as the daemon and the operator call them.
ENTRY_POINTS = ("submit", "claim_next", "audit", "finish", "settle_dead_claims")


class QueueLock:
    """The fault window: while ``chance`` > 0, a call fails with that chance."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.chance = 0.0
        #: entry point → how many calls failed.
        self.failed: Counter[str] = Counter()

    def take(self, entry: str) -> None:
        """Raises: ``sqlite3.OperationalError`` when the lock is not to be had now."""
        if self.chance > 0 and self._rng.random() < self.chance:
            self.failed[entry] += 1
            raise sqlite3.OperationalError("database is locked")


@contextmanager
def queue_lock_patches(lock: QueueLock) -> Iterator[None]:
    """For the run: each queue entry point takes ``lock`` first (a planted bug that
    replaced one of them stays in place, wrapped)."""
    from autoheal.store import commands as queue

    saved = {name: getattr(queue, name) for name in ENTRY_POINTS}

    def wrapped(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kw: Any) -> Any:
            lock.take(name)
            return real(*args, **kw)

        call.__name__ = name
        return call

    for name, real in saved.items():
        setattr(queue, name, wrapped(name, real))
    try:
        yield
    finally:
        for name, real in saved.items():
            setattr(queue, name, real)
