"""What a feeder's ``feed`` section means: per symbol, is the exchange's data still moving?

A heartbeat written by the feeder's own loop proves the loop runs, not that the
market data is fresh: ccxt's ``watch_order_book`` can keep handing back a cached book
whose exchange timestamp is stuck while the socket, the process and the heartbeat all
look healthy. So the feeder reports, per symbol, the newest *exchange* event
timestamp it saw and a counter of sequence numbers it never saw
(:mod:`autoheal.guard.feed`), and this module judges that section:

* **``feed_stale``**: a symbol's ``exchange_ts`` is older than ``max_age`` (the
  daemon's wall clock minus the exchange's time). The exchange timestamp, not "did the
  book change": in a quiet market (no trades, the same book) the exchange's own
  snapshots and heartbeats still carry a fresh event time, and that is not a failure.
  A timestamp ahead of our wall clock counts as age 0: clock skew between the
  exchange and this host is not a frozen feed, and such a symbol still goes stale
  once its time stops moving.
* **``feed_sequence_gap``**: a symbol's ``gaps`` counter (sequence numbers never
  received; it only grows while one writer lives) has grown by more than
  ``max_gaps`` since the probe's baseline for that symbol. The failure holds until the
  book is rebuilt: the writer restarts (a new ``pid``, or a counter that went down) or
  reports a resync (its ``resyncs`` counter moved: a fresh snapshot after a
  reconnect). A book that missed updates stays wrong until then, and the soft-failure
  path (restart the feeder) is what rebuilds it when the feeder does not.
* **``feed_missing``**: no ``feed`` section, or a configured symbol absent from it.
* **``feed_invalid``**: the section or a symbol's entry is not what the writer
  promises (not an object; ``exchange_ts`` not a finite number; ``gaps`` not a
  non-negative integer). Booleans are never numbers here.

Rules of the file: pure (values in, a verdict out), total over whatever JSON the
file held, deterministic; ``now_wall`` and ``now_mono`` are arguments. One reason per
verdict, in this order: a missing or invalid symbol, then a stale one, then a gap
(symbols in order within each); the detail names the symbol. The verdict's
``recheck_at`` is the monotonic moment the first fresh symbol would turn stale, so the
runner looks again exactly then.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from autoheal.core.reasons import FEED_INVALID, FEED_MISSING, FEED_SEQUENCE_GAP, FEED_STALE

__all__ = ["FeedBaseline", "FeedVerdict", "judge_feed"]


@dataclass(frozen=True, slots=True)
class FeedBaseline:
    """The gap counters the probe first saw from one writer: what "new" gaps are measured from.

    Attributes:
        writer: the heartbeat's ``pid`` (``None`` when the file has none).
        gaps: per symbol, the counter when its book was last (re)built.
        resyncs: per symbol, the ``resyncs`` counter that went with it.
    """

    writer: object = None
    gaps: Mapping[str, int] = field(default_factory=dict)
    resyncs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeedVerdict:
    """One judgement of a feed section.

    Attributes:
        ok: every judged symbol is fresh and has no new gap beyond ``max_gaps``.
        reason: ``""`` when ok, else one of the ``feed_*`` tokens.
        detail: a short explanation naming the symbol.
        age: the oldest judged symbol's age in seconds, when known.
        recheck_at: monotonic deadline at which a fresh verdict turns stale by itself.
        baseline: the baseline to pass to the next judgement.
    """

    ok: bool
    reason: str
    detail: str
    age: float | None
    recheck_at: float | None
    baseline: FeedBaseline


def _number(raw: object) -> float | None:
    """A finite float from a JSON number, else ``None`` (``True`` is not a number)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    try:
        value = float(raw)
    except OverflowError:  # an int too large for a float
        return None
    return value if math.isfinite(value) else None


def _counter(raw: object) -> int | None:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        return None
    return raw


def judge_feed(
    section: object,
    *,
    writer: object,
    symbols: Sequence[str],
    max_age: float,
    max_gaps: int,
    baseline: FeedBaseline,
    now_wall: float,
    now_mono: float,
) -> FeedVerdict:
    """Judge the ``feed`` section of one heartbeat document.

    Args:
        section: ``doc.get("feed")`` as decoded (any JSON value, or ``None``).
        writer: the document's ``pid``: a new one starts a new baseline.
        symbols: the symbols to judge, in order; empty: every symbol in the section.
        max_age: the oldest acceptable exchange timestamp age, in seconds.
        max_gaps: how many sequence numbers may be missed since the baseline.
        baseline: what the previous judgement returned (``FeedBaseline()`` at first).
        now_wall: the current unix time.
        now_mono: the current monotonic time, for ``recheck_at``.

    Returns:
        The verdict, with the baseline for the next call.
    """
    if section is None:
        return _fail(FEED_MISSING, "no 'feed' section", None, baseline)
    if not isinstance(section, Mapping):
        return _fail(
            FEED_INVALID, f"'feed' is {type(section).__name__}, not an object", None, baseline
        )
    wanted = list(symbols) if symbols else sorted(str(s) for s in section)
    if not wanted:
        return _fail(FEED_MISSING, "the 'feed' section names no symbol", None, baseline)
    seen: dict[str, tuple[int, int]] = {}
    ages: dict[str, float] = {}
    problem: tuple[str, str] | None = None
    for symbol in wanted:
        entry = section.get(symbol)
        if entry is None:
            problem = problem or (FEED_MISSING, f"{symbol}: not in the feed section")
            continue
        if not isinstance(entry, Mapping):
            problem = problem or (FEED_INVALID, f"{symbol}: {type(entry).__name__}, not an object")
            continue
        ts = _number(entry.get("exchange_ts"))
        gaps = _counter(entry.get("gaps", 0))
        resyncs = _counter(entry.get("resyncs", 0))
        if ts is None or gaps is None or resyncs is None:
            bad = (
                "exchange_ts is not a finite number"
                if ts is None
                else ("gaps and resyncs must be non-negative integers")
            )
            problem = problem or (FEED_INVALID, f"{symbol}: {bad}")
            continue
        seen[symbol] = (gaps, resyncs)
        ages[symbol] = max(now_wall - ts, 0.0)
    new_base = _rebase(baseline, writer, seen)
    for symbol, age in ages.items():
        if problem is None and age > max_age:
            problem = (FEED_STALE, f"{symbol}: exchange_ts age {age:.3f} s > {max_age:g} s")
    for symbol, (gaps, _) in seen.items():
        grown = gaps - new_base.gaps.get(symbol, gaps)
        if problem is None and grown > max_gaps:
            problem = (
                FEED_SEQUENCE_GAP,
                f"{symbol}: {grown} sequence numbers missed (max_gaps {max_gaps})",
            )
    oldest = max(ages.values()) if ages else None
    if problem is not None:
        return _fail(*problem, oldest, new_base)
    recheck = min(now_mono + (max_age - age) for age in ages.values())
    return FeedVerdict(True, "", "", oldest, recheck, new_base)


def _rebase(
    baseline: FeedBaseline, writer: object, seen: Mapping[str, tuple[int, int]]
) -> FeedBaseline:
    """The baseline for this reading: a new writer starts from what it reports now; so
    does a symbol seen for the first time, one whose counter went down (the writer
    restarted under the same pid) and one that reports a resync (a rebuilt book)."""
    if baseline.writer != writer:
        return FeedBaseline(
            writer, {s: g for s, (g, _) in seen.items()}, {s: r for s, (_, r) in seen.items()}
        )
    gaps, resyncs = dict(baseline.gaps), dict(baseline.resyncs)
    for symbol, (g, r) in seen.items():
        if symbol not in gaps or g < gaps[symbol] or r != resyncs.get(symbol):
            gaps[symbol], resyncs[symbol] = g, r
    if gaps == baseline.gaps and resyncs == baseline.resyncs:
        return baseline
    return FeedBaseline(writer, gaps, resyncs)


def _fail(reason: str, detail: str, age: float | None, baseline: FeedBaseline) -> FeedVerdict:
    return FeedVerdict(False, reason, detail, age, None, baseline)
