"""Who gets a slot on the status server, and who is shed (DESIGN.md §8; issue 18 A2/A3).

The status server holds at most ``max_connections`` sockets, a number sized well
below the process's descriptor limit (:func:`budget_for_fds`): no number of clients
can starve the supervisor of descriptors, which it needs to spawn, journal and write
the kill switch. Within that cap these rules keep ``/metrics`` answered, whatever the
page's clients (or a flood) do:

1. A new connection is *idle* (``HEAD``) until its request head has been read. Idle
   connections are the cheapest to lose: at the cap, a new connection takes the slot
   of the oldest idle connection of the client holding the most connections, so a
   flood pushes out its own sockets first. Only when no connection is idle is the new
   one refused. Connections are always accepted, then judged: a listen backlog full
   of sockets that will never speak cannot hold a scraper's connection hostage.
2. One client (remote address) holds at most ``max_per_client`` connections; past
   that its own oldest idle connection makes room, or the new one is refused.
3. Once its head is read, a connection is routed. A *scrape* (``/metrics``,
   ``/status``, any short answer) always proceeds. *Page* work (the page, commands,
   ``/events`` streams) holds at most ``max_connections - reserved_for_scrapes``
   slots, so that streams and slow page requests never take the last ones.
4. ``/events`` streams number at most ``max_streams``; a new one replaces the oldest
   stream of the client holding the most streams (the browser comes back on its own:
   SSE ``retry:``).

What is deliberately not here: time. The deadlines (the request head's, a response's,
a stream's lifetime, the accept back-off's sleep) are the shell's; connections are
ordered by their accept sequence number, so "oldest" needs no clock.
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

#: The most sockets the server holds: a scraper or two, a few browser tabs, a curl.
MAX_CONNECTIONS = 64
#: The fewest, however low the descriptor limit: below this the page is useless anyway.
MIN_CONNECTIONS = 8
#: Descriptors kept for the supervisor itself whatever it supervises: the journal
#: (SQLite and its WAL), the event loop, inotify, log files, probe and webhook sockets.
FD_RESERVE_BASE = 128
#: And per service: its pidfd, plus a spawn's log file, /dev/null and exec pipe.
FD_RESERVE_PER_SERVICE = 4
#: Back-off after a failed accept (EMFILE...): 10 ms, doubling, at most 1 s.
ACCEPT_RETRY_FIRST_S = 0.01
ACCEPT_RETRY_MAX_S = 1.0
#: Errors accept() reports for one pending connection that died (Linux passes pending
#: network errors on, accept(2)); the next connection is fine, so no back-off.
PEER_ACCEPT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "ECONNRESET",
        "EPROTO",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
        "EAGAIN",
        "EINTR",
    )
    if hasattr(errno, name)
)


class Kind(StrEnum):
    """What a connection is doing: the names label ``autoheal_http_connections``."""

    HEAD = "head"  # accepted, request head not read yet: idle, may be shed
    SCRAPE = "scrape"  # /metrics, /status, or any short answer (404, 405, 400)
    PAGE = "page"  # the page or a command
    STREAM = "stream"  # an /events stream


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's bounds. Build them with :meth:`for_cap` or :func:`budget_for_fds`.

    Raises:
        ValueError: a bound that would let one kind of connection starve another.
    """

    max_connections: int = MAX_CONNECTIONS
    max_per_client: int = MAX_CONNECTIONS // 2
    reserved_for_scrapes: int = MAX_CONNECTIONS // 8
    max_streams: int = 8
    #: Deadline for the request head to arrive (slowloris); capped by the response's.
    head_timeout_s: float = 5.0
    #: An /events stream ends after this; the browser reconnects (SSE ``retry:``).
    stream_lifetime_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_connections < 2:
            raise ValueError("max_connections must be at least 2")
        if not 1 <= self.max_per_client <= self.max_connections:
            raise ValueError("max_per_client must be between 1 and max_connections")
        if not 1 <= self.reserved_for_scrapes < self.max_connections:
            raise ValueError("reserved_for_scrapes must be at least 1 and below max_connections")
        if not 1 <= self.max_streams <= self.page_slots:
            raise ValueError("max_streams must be at least 1 and fit in the page's slots")
        if not self.head_timeout_s > 0 or not self.stream_lifetime_s > 0:
            raise ValueError("head_timeout_s and stream_lifetime_s must be positive")

    @property
    def page_slots(self) -> int:
        """Slots page work (the page, commands, streams) may hold together."""
        return self.max_connections - self.reserved_for_scrapes

    @classmethod
    def for_cap(cls, max_connections: int) -> Limits:
        """Limits in proportion to a cap (64: 32 per client, 8 kept for scrapes, 8 streams)."""
        cap = max(2, max_connections)
        reserved = max(1, cap // 8)
        return cls(
            max_connections=cap,
            max_per_client=max(1, cap // 2),
            reserved_for_scrapes=reserved,
            max_streams=max(1, min(8, cap // 4, cap - reserved)),
        )


@dataclass(frozen=True, slots=True)
class FdBudget:
    """The server's limits for a descriptor limit, and what the process needs in all.

    ``needed`` is the supervisor's reserve plus the server's cap; ``short`` says the
    soft limit is below it (the shell warns: raise ``LimitNOFILE=``).
    """

    limits: Limits
    soft_limit: int | None
    needed: int

    @property
    def short(self) -> bool:
        return self.soft_limit is not None and self.soft_limit < self.needed


def budget_for_fds(soft_limit: int | None, services: int) -> FdBudget:
    """Size the server from the soft RLIMIT_NOFILE (None: unlimited) and the service count.

    The server takes at most half of what the supervisor's reserve leaves, at most
    :data:`MAX_CONNECTIONS` and at least :data:`MIN_CONNECTIONS`.
    """
    reserve = FD_RESERVE_BASE + FD_RESERVE_PER_SERVICE * max(0, services)
    cap = MAX_CONNECTIONS
    if soft_limit is not None:
        cap = min(MAX_CONNECTIONS, max(MIN_CONNECTIONS, (soft_limit - reserve) // 2))
    return FdBudget(Limits.for_cap(cap), soft_limit, reserve + cap)


@dataclass(frozen=True, slots=True)
class Conn:
    """One open connection as the rules see it: ``seq`` is its accept order."""

    seq: int
    peer: str
    kind: Kind = Kind.HEAD


@dataclass(frozen=True, slots=True)
class Verdict:
    """Admit or refuse; ``evict`` names the connections (by ``seq``) to close first.

    ``reason`` says why something was refused or evicted (it labels
    ``autoheal_http_connections_shed``): ``full``, ``client_full``, ``page_full``,
    ``streams_full``.
    """

    admit: bool
    evict: tuple[int, ...] = ()
    reason: str = ""


def _heaviest_oldest(candidates: list[Conn], weight: Counter[str]) -> Conn | None:
    """The oldest candidate of the peer with the highest weight, or None."""
    if not candidates:
        return None
    return min(candidates, key=lambda c: (-weight[c.peer], c.seq))


def admit_connection(conns: Iterable[Conn], peer: str, limits: Limits) -> Verdict:
    """A new connection from ``peer``: admit it, shedding idle ones if need be (rules 1, 2)."""
    live = list(conns)
    evict: list[Conn] = []
    mine = [c for c in live if c.peer == peer]
    while len(mine) >= limits.max_per_client:
        victim = _heaviest_oldest([c for c in mine if c.kind is Kind.HEAD], Counter())
        if victim is None:
            return Verdict(False, reason="client_full")
        evict.append(victim)
        mine.remove(victim)
        live.remove(victim)
    reason = "client_full" if evict else ""
    while len(live) >= limits.max_connections:
        per_peer = Counter(c.peer for c in live)
        victim = _heaviest_oldest([c for c in live if c.kind is Kind.HEAD], per_peer)
        if victim is None:
            return Verdict(False, reason="full")
        evict.append(victim)
        live.remove(victim)
        reason = reason or "full"
    return Verdict(True, tuple(c.seq for c in evict), reason)


def admit_request(conns: Iterable[Conn], seq: int, kind: Kind, limits: Limits) -> Verdict:
    """Connection ``seq`` has read its head and wants to do ``kind`` (rules 3, 4)."""
    if kind in (Kind.HEAD, Kind.SCRAPE):
        return Verdict(True)
    others = [c for c in conns if c.seq != seq]
    evict: tuple[int, ...] = ()
    if kind is Kind.STREAM:
        streams = [c for c in others if c.kind is Kind.STREAM]
        if len(streams) >= limits.max_streams:
            victim = _heaviest_oldest(streams, Counter(c.peer for c in streams))
            if victim is not None:
                evict = (victim.seq,)
    page_work = sum(1 for c in others if c.kind in (Kind.PAGE, Kind.STREAM)) - len(evict)
    if page_work >= limits.page_slots:
        return Verdict(False, reason="page_full")
    return Verdict(True, evict, "streams_full" if evict else "")


def shed_for_descriptors(conns: Iterable[Conn]) -> int | None:
    """When accept() finds no descriptor free: the idle connection to close (by ``seq``)."""
    live = list(conns)
    victim = _heaviest_oldest(
        [c for c in live if c.kind is Kind.HEAD], Counter(c.peer for c in live)
    )
    return None if victim is None else victim.seq


def accept_retry_after(previous_s: float | None, *, shed: bool) -> float:
    """How long to wait before the next accept() after a failed one.

    Args:
        previous_s: the last wait of this episode of failures, None for the first.
        shed: an idle connection was just closed to free a descriptor: it is free as
            soon as that connection's task runs, so retry after the shortest wait.
            Otherwise the shortage is someone else's: wait twice as long each time.

    Returns:
        :data:`ACCEPT_RETRY_FIRST_S`, doubling up to :data:`ACCEPT_RETRY_MAX_S`.
    """
    if shed or previous_s is None or not previous_s > 0:
        return ACCEPT_RETRY_FIRST_S
    return min(previous_s * 2.0, ACCEPT_RETRY_MAX_S)


def accept_error_is_peers(err: int | None) -> bool:
    """True when accept() failed for one dead pending connection (retry at once), False
    when the process or system is short of something (descriptors, buffers: back off)."""
    return err is not None and err in PEER_ACCEPT_ERRNOS
