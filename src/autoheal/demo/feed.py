"""The fake exchange's market-data stream: exchange timestamps, sequence numbers, feed faults.

Each tick the exchange publishes, per symbol, one event ``{"symbol", "price", "ts",
"seq"}``: ``ts`` is the exchange's event time (unix seconds), ``seq`` the symbol's
sequence number, one more per event. :class:`FeedBook` makes those events and can be
told (``POST /admin/feed``, :func:`parse_feed_plan`) to misbehave the way real feeds do
while the websocket stays open:

* ``freeze``: these symbols' events repeat the last one unchanged -- same price, same
  exchange time, same sequence number -- as ccxt's ``watch_order_book`` keeps handing
  back a cached book whose timestamp is stuck (ccxt issues 22662, 21731, 23214);
  the other symbols flow on;
* ``skip``: ``{symbol: n}``: the symbol's next event jumps ``n`` sequence numbers
  (they are never sent), once;
* ``quiet``: a quiet market: no trades, every book unchanged, but the events keep
  coming with a fresh exchange time (the exchange's own snapshots and heartbeats):
  what a feed_lag judgement must never mistake for a frozen feed.

Pure: ``now`` is passed in; the shell (:mod:`autoheal.demo.exchange`) sends the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FeedBook", "FeedPlan", "parse_feed_plan"]


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """What the stream does now; the empty plan is a healthy, moving market."""

    freeze: frozenset[str] = frozenset()
    skip: tuple[tuple[str, int], ...] = ()
    quiet: bool = False

    def to_doc(self) -> dict[str, Any]:
        return {"freeze": sorted(self.freeze), "skip": dict(self.skip), "quiet": self.quiet}


def parse_feed_plan(doc: Any, symbols: list[str]) -> FeedPlan:
    """Validate the ``POST /admin/feed`` body (``{}`` clears every feed fault).

    Args:
        doc: the decoded JSON body: ``freeze`` (a list of symbols), ``skip`` (symbol ->
            sequence numbers to skip, a positive integer), ``quiet`` (a boolean).
        symbols: the exchange's symbols.

    Raises:
        ValueError: with a message naming the bad field.
    """
    if not isinstance(doc, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(doc) - {"freeze", "skip", "quiet"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    freeze = doc.get("freeze", [])
    if not isinstance(freeze, list) or not all(s in symbols for s in freeze):
        raise ValueError(f"freeze must be a list of symbols among {symbols}")
    skip = doc.get("skip", {})
    if not isinstance(skip, dict) or not all(
        s in symbols and not isinstance(n, bool) and isinstance(n, int) and n > 0
        for s, n in skip.items()
    ):
        raise ValueError("skip must map symbols to a positive number of sequence numbers")
    quiet = doc.get("quiet", False)
    if not isinstance(quiet, bool):
        raise ValueError("quiet must be true or false")
    return FeedPlan(frozenset(freeze), tuple(sorted(skip.items())), quiet)


@dataclass(slots=True)
class FeedBook:
    """The latest event per symbol and the plan that shapes the next ones."""

    plan: FeedPlan = FeedPlan()
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Skips not yet applied: symbol -> sequence numbers to leave out of the next event.
    pending_skip: dict[str, int] = field(default_factory=dict)
    skipped: int = 0

    def set(self, plan: FeedPlan) -> None:
        self.plan = plan
        self.pending_skip = dict(plan.skip)

    def tick(self, prices: dict[str, float], now: float) -> dict[str, dict[str, Any]]:
        """The events of one tick (the frozen symbols' are their last ones again)."""
        for symbol in sorted(prices):
            last = self.events.get(symbol)
            if last is not None and symbol in self.plan.freeze:
                continue
            seq = 1 if last is None else int(last["seq"]) + 1
            jump = self.pending_skip.pop(symbol, 0)
            self.skipped += jump
            self.events[symbol] = {
                "symbol": symbol,
                "price": prices[symbol],
                "ts": now,
                "seq": seq + jump,
            }
        return self.events

    def to_doc(self) -> dict[str, Any]:
        return {
            **self.plan.to_doc(),
            "skipped": self.skipped,
            "seq": {s: e["seq"] for s, e in sorted(self.events.items())},
        }
