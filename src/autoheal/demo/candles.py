"""Candles of the demo's price walk, as a venue keeps them: one-minute OHLC per symbol,
merged into longer intervals when asked.

A bot such as freqtrade reads candles, not ticks: its strategy runs on the last closed
candle, and it wants hundreds of them at start. The walk keeps only its current
prices, so the exchange records each step here (:meth:`CandleBook.record`), and the
venue dialects answer ``klines`` from this book.

Rules, each the simplest one a bot cannot mistake for trading that did not happen:

* A minute's candle is the walk's prices seen in that minute: open, high, low, close.
* A minute with no record (the walk had not started, or the record was dropped after
  :data:`KEEP_MINUTES`) is flat: before the first record at the first recorded open,
  after a record at the last close before it. No history is invented beyond that:
  the market "listed" :data:`LISTED_BEFORE_MS` before the exchange started and was
  quiet until then.
* The demo records no trade volume: every volume is 0.
* Candles open on multiples of their interval since the epoch (UTC), as the venue's do
  for intervals up to a day.

Pure: the caller passes ``now_ms``; no clock is read here.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["INTERVALS", "KEEP_MINUTES", "LISTED_BEFORE_MS", "Candle", "CandleBook"]

MINUTE_MS = 60_000
#: The venue's interval names up to a day, in minutes.
INTERVALS = {
    "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30,
    "1h": 60, "2h": 120, "4h": 240, "6h": 360, "8h": 480, "12h": 720, "1d": 1440,
}  # fmt: skip
#: Recorded minutes kept per symbol (a day and an hour: a rolling 24 h ticker's worth).
KEEP_MINUTES = 1500
#: How long before the first record a market's (flat) history begins.
LISTED_BEFORE_MS = 30 * 86_400_000


@dataclass(frozen=True, slots=True)
class Candle:
    """One candle: its open time (ms) and its four prices."""

    open_ms: int
    open: float
    high: float
    low: float
    close: float


@dataclass(slots=True)
class _Series:
    minutes: list[int] = field(default_factory=list)  # sorted minute numbers (ms // 60000)
    ohlc: dict[int, list[float]] = field(default_factory=dict)


class CandleBook:
    """Recorded one-minute candles per symbol; longer intervals are merged on demand.

    Args:
        keep_minutes: recorded minutes kept per symbol; older ones are dropped.
    """

    def __init__(self, keep_minutes: int = KEEP_MINUTES) -> None:
        self._keep = keep_minutes
        self._series: dict[str, _Series] = {}

    def record(self, prices: Mapping[str, float], now_ms: int) -> None:
        """The walk's prices at ``now_ms`` (called after each step)."""
        minute = now_ms // MINUTE_MS
        for symbol, price in prices.items():
            series = self._series.setdefault(symbol, _Series())
            ohlc = series.ohlc.get(minute)
            if ohlc is not None:
                ohlc[1] = max(ohlc[1], price)
                ohlc[2] = min(ohlc[2], price)
                ohlc[3] = price
                continue
            if series.minutes and minute < series.minutes[-1]:
                continue  # the clock went back: a venue's candles never do
            series.ohlc[minute] = [price, price, price, price]
            series.minutes.append(minute)
            if len(series.minutes) > self._keep:
                del series.ohlc[series.minutes.pop(0)]

    def listed_ms(self, symbol: str) -> int | None:
        """When the symbol's history begins (None: never recorded)."""
        series = self._series.get(symbol)
        if series is None or not series.minutes:
            return None
        return series.minutes[0] * MINUTE_MS - LISTED_BEFORE_MS

    def candle(self, symbol: str, open_ms: int, minutes: int) -> Candle:
        """The candle of ``minutes`` minutes opening at ``open_ms``.

        Raises:
            KeyError: the symbol was never recorded.
        """
        series = self._series[symbol]
        first = open_ms // MINUTE_MS
        lo = bisect.bisect_left(series.minutes, first)
        hi = bisect.bisect_left(series.minutes, first + minutes)
        inside = [series.ohlc[m] for m in series.minutes[lo:hi]]
        if lo > 0:
            carry = series.ohlc[series.minutes[lo - 1]][3]
        else:
            carry = series.ohlc[series.minutes[0]][0]
        if inside and series.minutes[lo] == first:
            opening = inside[0][0]
        else:
            opening = carry
            inside.insert(0, [carry, carry, carry, carry])
        return Candle(
            open_ms,
            opening,
            max(o[1] for o in inside),
            min(o[2] for o in inside),
            inside[-1][3],
        )

    def klines(
        self,
        symbol: str,
        minutes: int,
        *,
        now_ms: int,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[Candle]:
        """Up to ``limit`` candles, oldest first, as the venue's ``klines`` chooses them.

        With ``start_ms``: those opening at or after it; else those ending with the one
        that opens at or before ``end_ms`` (default: the current, still open, candle).
        Never a candle that opens after ``now_ms`` or before the listing.

        Raises:
            KeyError: the symbol was never recorded.
        """
        step = minutes * MINUTE_MS
        listed = self.listed_ms(symbol)
        if listed is None:
            raise KeyError(symbol)
        last = now_ms // step * step
        if end_ms is not None:
            last = min(last, end_ms // step * step)
        floor = -(-listed // step) * step
        if start_ms is not None:
            first = max(floor, -(-start_ms // step) * step)
            last = min(last, first + (limit - 1) * step)
        else:
            first = max(floor, last - (limit - 1) * step)
        return [self.candle(symbol, t, minutes) for t in range(first, last + 1, step)]
