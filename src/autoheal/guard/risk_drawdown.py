"""The drawdown from the peak, and breaches that latch only when they persist: pure.

The trader reports its marked equity (cash plus every position at its mark: the
realized and the unrealized side at once) through
:meth:`~autoheal.guard.risk.RiskGuard.observe_equity`. Each report is a *read*; this
module decides what a read means, with no file and no clock:

1. A read that is not a usable amount (``None``, a float, NaN, infinite, zero or
   negative: a mark <= 0 gives no equity) is **bad**: it changes nothing here: no
   peak, no count, never a latch, never a clear. The guard pauses new entries on it
   (``risk_pnl_unavailable``) until the next good read.
2. A good read moves the peak up (never down) and sets the drawdown
   ``peak - equity``. It *breaches* when the drawdown reaches ``max_drawdown``
   (money), or ``max_drawdown_pct`` of the peak, or when the day's marked loss
   (the day's first good equity minus this one) reaches ``max_daily_loss``.
3. ``breach_reads`` counts consecutive breaching good reads; a good read that does
   not breach resets it to zero (a bad read neither counts nor resets: alternating
   garbage cannot forgive a real breach). When it reaches ``loss_breach_reads`` (K,
   default 3) the drawdown **latches**; one absurd read alone never does.
4. A latch only ends by an operator's hand (removing ``drawdown_latched`` from
   ``risk_pnl.json``); no read clears it. The peak is kept across UTC days (a drawdown
   is measured from the peak, not from midnight); the day's first equity is not.

The state lives in ``risk_pnl.json`` beside the day's realized PnL
(:mod:`autoheal.guard.risk_day`), so a restart neither forgives a count nor invents one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from autoheal.guard.risk_numbers import amount_problem

__all__ = [
    "DEFAULT_BREACH_READS",
    "Drawdown",
    "DrawdownRule",
    "breaches",
    "equity_problem",
    "observe",
]

#: Consecutive breaching reads before a latch (``[risk] loss_breach_reads``).
DEFAULT_BREACH_READS = 3
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class DrawdownRule:
    """The limits a read is held to (``None``: not checked) and K."""

    max_drawdown: Decimal | None = None
    max_drawdown_pct: Decimal | None = None
    max_daily_loss: Decimal | None = None
    breach_reads: int = DEFAULT_BREACH_READS

    @property
    def active(self) -> bool:
        """Whether any limit is held to equity reads."""
        return not (
            self.max_drawdown is None
            and self.max_drawdown_pct is None
            and self.max_daily_loss is None
        )


@dataclass(frozen=True, slots=True)
class Drawdown:
    """What the good reads so far say (``None``: no good read yet)."""

    peak_equity: Decimal | None = None
    equity: Decimal | None = None
    day_open_equity: Decimal | None = None
    breach_reads: int = 0
    latched: bool = False
    latched_detail: str = ""

    @property
    def drawdown(self) -> Decimal:
        """``peak - equity`` (zero before the first good read)."""
        if self.peak_equity is None or self.equity is None:
            return _ZERO
        return self.peak_equity - self.equity


def equity_problem(equity: Any) -> str | None:
    """Why ``equity`` is not a usable read (``None`` when it is)."""
    if equity is None:
        return "is missing (no equity reported)"
    return amount_problem(equity)


def breaches(state: Drawdown, rule: DrawdownRule) -> tuple[str, ...]:
    """The limits ``state``'s last good read is past, each with its numbers."""
    peak, equity, day_open = state.peak_equity, state.equity, state.day_open_equity
    if peak is None or equity is None:
        return ()
    out: list[str] = []
    drawdown = peak - equity
    if rule.max_drawdown is not None and drawdown >= rule.max_drawdown:
        out.append(f"drawdown={drawdown} peak_equity={peak} max_drawdown={rule.max_drawdown}")
    if rule.max_drawdown_pct is not None:
        pct = drawdown / peak * _HUNDRED
        if pct >= rule.max_drawdown_pct:
            out.append(
                f"drawdown_pct={pct:.4f} peak_equity={peak} "
                f"max_drawdown_pct={rule.max_drawdown_pct}"
            )
    if rule.max_daily_loss is not None and day_open is not None:
        lost = day_open - equity
        if lost >= rule.max_daily_loss:
            out.append(
                f"marked_loss_today={lost} day_open_equity={day_open} "
                f"max_daily_loss={rule.max_daily_loss}"
            )
    return tuple(out)


def observe(state: Drawdown, equity: Any, rule: DrawdownRule) -> Drawdown:
    """The state after one read (rules 1-4); a bad read returns ``state`` unchanged."""
    if equity_problem(equity) is not None:
        return state
    peak = equity if state.peak_equity is None or equity > state.peak_equity else state.peak_equity
    day_open = equity if state.day_open_equity is None else state.day_open_equity
    new = Drawdown(peak, equity, day_open, state.breach_reads, state.latched, state.latched_detail)
    crossed = breaches(new, rule)
    count = state.breach_reads + 1 if crossed else 0
    latched, detail = state.latched, state.latched_detail
    if crossed and count >= rule.breach_reads and not latched:
        latched, detail = True, f"{'; '.join(crossed)} breach_reads={count}"
    return Drawdown(peak, equity, day_open, count, latched, detail)
