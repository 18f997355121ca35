"""The status server's open connections, and the counts ``/metrics`` shows of them.

:mod:`autoheal.core.admission` decides who gets a slot and who is shed; the
:class:`ConnectionTable` applies those verdicts to live connections. Shedding one
cancels its handler's scope: the handler closes its socket on its way out, and the
slot is free at once, so the count never waits on a slow close.
"""

from __future__ import annotations

import resource
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio

from autoheal.core.admission import (
    Conn,
    Kind,
    Limits,
    Verdict,
    admit_connection,
    admit_request,
    shed_for_descriptors,
)

__all__ = ["SHED_REASONS", "ConnectionTable", "ServerStats", "Slot", "fd_soft_limit"]

#: Reasons a connection is closed early; they label ``autoheal_http_connections_shed``.
SHED_REASONS = ("full", "client_full", "page_full", "streams_full", "head_timeout", "descriptors")


@dataclass
class ServerStats:
    """What the server counts, rendered on ``/metrics`` (plain numbers, kept on the loop)."""

    max_connections: int = 0
    open: Counter[str] = field(default_factory=Counter)  # by Kind
    shed: Counter[str] = field(default_factory=Counter)  # by reason (SHED_REASONS)
    accept_errors: Counter[str] = field(default_factory=Counter)  # by errno name


class Slot:
    """A connection's entry in the table: its view for the rules, and how to close it."""

    __slots__ = ("conn", "scope")

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.scope = anyio.CancelScope()


class ConnectionTable:
    """The open connections; applies :mod:`autoheal.core.admission`'s verdicts to them.

    Shedding a connection cancels its handler's scope: the handler closes its socket
    on its way out, and the slot is free at once.
    """

    def __init__(self, limits: Limits, stats: ServerStats) -> None:
        self.limits = limits
        self.stats = stats
        self._slots: dict[int, Slot] = {}
        self._seq = 0
        stats.max_connections = limits.max_connections

    def _views(self) -> Iterator[Conn]:
        return (slot.conn for slot in self._slots.values())

    def _apply(self, verdict: Verdict) -> None:
        for seq in verdict.evict:
            slot = self._slots.pop(seq, None)
            if slot is not None:
                self.stats.open[slot.conn.kind] -= 1
                self.stats.shed[verdict.reason] += 1
                slot.scope.cancel()

    def open(self, peer: str) -> Slot | None:
        """A slot for a new connection from ``peer``, or None: close it at once."""
        verdict = admit_connection(self._views(), peer, self.limits)
        self._apply(verdict)
        if not verdict.admit:
            self.stats.shed[verdict.reason] += 1
            return None
        self._seq += 1
        slot = Slot(Conn(self._seq, peer))
        self._slots[self._seq] = slot
        self.stats.open[Kind.HEAD] += 1
        return slot

    def route(self, slot: Slot, kind: Kind) -> bool:
        """Move ``slot`` to ``kind`` once its head is read; False: answer busy."""
        verdict = admit_request(self._views(), slot.conn.seq, kind, self.limits)
        if not verdict.admit or self._slots.get(slot.conn.seq) is not slot:
            self.stats.shed[verdict.reason or "full"] += 1
            return False
        self._apply(verdict)
        self.stats.open[slot.conn.kind] -= 1
        self.stats.open[kind] += 1
        slot.conn = Conn(slot.conn.seq, slot.conn.peer, kind)
        return True

    def close(self, slot: Slot) -> None:
        """The connection ended (idempotent: a shed slot is already gone)."""
        if self._slots.get(slot.conn.seq) is slot:
            del self._slots[slot.conn.seq]
            self.stats.open[slot.conn.kind] -= 1

    def shed_for_descriptors(self) -> bool:
        """accept() found no descriptor: close the idle connection the rules pick, if any."""
        seq = shed_for_descriptors(self._views())
        if seq is None:
            return False
        self._apply(Verdict(True, (seq,), "descriptors"))
        return True


def fd_soft_limit() -> int | None:
    """This process's soft RLIMIT_NOFILE, or None when unlimited or unknown."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft
