"""What a market-data feeder tells the daemon about its data: the ``feed`` heartbeat section.

The feeder's heartbeat proves its loop runs; it cannot prove the exchange's data
still moves (ccxt's cached order book with a stuck timestamp, a half-open socket).
So for each message the feeder calls :meth:`FeedTracker.saw` (through
:meth:`autoheal.guard.heartbeat.Heartbeat.feed_event`) with the exchange's own event
time and sequence number, and the heartbeat carries, per symbol::

    "feed": {"BTCUSDT": {"exchange_ts": 1765140000.12,   # newest exchange event time, unix s
                         "received_ts": 1765140000.15,   # our wall clock when it came in
                         "seq": 4411,                    # highest sequence number seen
                         "gaps": 2,                      # sequence numbers never received
                         "resyncs": 1,                   # books rebuilt (feed_resync)
                         "messages": 9120}}

``gaps`` only grows while this process lives (41 then 44 adds 2), so a reader that
remembers the last value tells a new gap from an old one; a restarted feeder starts
again at 0 (and a new ``pid``). A repeated or older sequence number (a cached book
handed back again, a reordered message) is not a gap and does not move ``seq`` or
``exchange_ts`` backwards. After a reconnect or a fresh snapshot the feeder calls
:meth:`FeedTracker.resync`: the next sequence number starts afresh (no gap across
connections), and ``resyncs`` tells the reader the book was rebuilt, so its earlier
gaps no longer count against it. The daemon's ``feed_lag`` probe judges the section
(:mod:`autoheal.core.feed_lag`). Standard library only; no clock is read unless
``received_ts`` is left out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FeedTracker", "SymbolFeed"]


@dataclass(slots=True)
class SymbolFeed:
    """One symbol's counters (see the module docstring for their meaning)."""

    exchange_ts: float
    received_ts: float
    seq: int | None = None
    gaps: int = 0
    resyncs: int = 0
    messages: int = 0
    #: The next sequence number starts afresh (after :meth:`FeedTracker.resync`).
    fresh: bool = False

    def to_doc(self) -> dict[str, Any]:
        return {
            "exchange_ts": self.exchange_ts,
            "received_ts": self.received_ts,
            "seq": self.seq,
            "gaps": self.gaps,
            "resyncs": self.resyncs,
            "messages": self.messages,
        }


class FeedTracker:
    """Per-symbol newest exchange time, highest sequence number and gap count.

    Args:
        time_fn: wall-clock seconds for ``received_ts`` when the caller gives none.
    """

    def __init__(self, *, time_fn: Callable[[], float] = time.time) -> None:
        self._time_fn = time_fn
        self.symbols: dict[str, SymbolFeed] = {}

    def saw(
        self,
        symbol: str,
        exchange_ts: float,
        seq: int | None = None,
        *,
        received_ts: float | None = None,
    ) -> SymbolFeed:
        """Record one message of ``symbol``.

        Args:
            symbol: the market, e.g. ``BTCUSDT``.
            exchange_ts: the exchange's event time of the message, unix seconds
                (divide ccxt's millisecond ``timestamp`` by 1000).
            seq: the exchange's sequence number for this symbol's stream (an order
                book's ``nonce`` / update id), if it has one.
            received_ts: when it arrived (unix seconds); default now.

        Returns:
            The symbol's counters after this message.

        Raises:
            ValueError: an empty symbol, a non-finite time, or a sequence number that
                is not a non-negative integer.
        """
        if not symbol:
            raise ValueError("symbol must not be empty")
        if isinstance(exchange_ts, bool) or not math.isfinite(exchange_ts):
            raise ValueError(f"exchange_ts must be a finite number, got {exchange_ts!r}")
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
            raise ValueError(f"seq must be a non-negative integer, got {seq!r}")
        now = self._time_fn() if received_ts is None else float(received_ts)
        feed = self.symbols.get(symbol)
        if feed is None:
            feed = self.symbols[symbol] = SymbolFeed(float(exchange_ts), now, seq)
        else:
            feed.exchange_ts = max(feed.exchange_ts, float(exchange_ts))
            feed.received_ts = now
            if seq is not None and feed.fresh:
                feed.seq, feed.fresh = seq, False
            elif seq is not None:
                if feed.seq is not None and seq > feed.seq + 1:
                    feed.gaps += seq - feed.seq - 1
                if feed.seq is None or seq > feed.seq:
                    feed.seq = seq
        feed.messages += 1
        return feed

    def resync(self, symbol: str | None = None) -> None:
        """The book of ``symbol`` (default: every symbol) was rebuilt from a fresh snapshot
        or a new connection: its next sequence number is a new start, not a gap."""
        for name, feed in self.symbols.items():
            if symbol is None or name == symbol:
                feed.resyncs += 1
                feed.fresh = True

    def to_doc(self) -> dict[str, dict[str, Any]]:
        """The ``feed`` section: symbol -> counters."""
        return {symbol: feed.to_doc() for symbol, feed in sorted(self.symbols.items())}
