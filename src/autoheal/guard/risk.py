"""Pre-trade risk limits: the guard a trading process holds, and the daily-loss latch.

Whether an order is allowed is decided by a pure function, :func:`check_order`, in
:mod:`autoheal.guard.risk_check` (its reason tokens and fail-closed rules are listed
there); the limits are :mod:`autoheal.guard.risk_limits`. This module is the public face
of both and re-exports their names, as it always did.

:class:`RiskGuard` is the thin stateful wrapper a trading process holds: it keeps the
throttle window, keeps the day's realized PnL durable in ``risk_pnl.json`` (shared by
the runtime's trading processes, read back at start; see :mod:`autoheal.guard.risk_day`),
logs every refusal once with its numbers, and latches ``REDUCE_ONLY`` when the day's
realized loss reaches ``max_daily_loss``: it creates ``risk_latch.json`` in the runtime
directory (:func:`latch_reduce_only`). It never writes ``global_flags.json``: only the
daemon and an operator write that, and only they clear. The gate honours the latch file
at once; the daemon applies it as a REDUCE_ONLY that only tightens, and removes it on an
operator's clear of REDUCE_ONLY.

Quantities, prices and money are :class:`~decimal.Decimal`; a float given to
:func:`to_decimal` goes through its shortest ``repr`` (``0.1`` is ``Decimal('0.1')``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

# The pure check and the limits live in their own modules (the config loader imports
# the limits alone); they are part of this module's surface, as they always were.
from autoheal.guard.risk_check import (
    LIMIT_OF_REASON,
    REASONS,
    THROTTLE_WINDOW_S,
    Activity,
    OpenOrder,
    RiskBook,
    RiskOrder,
    Verdict,
    check_order,
    total_exposure,
)
from autoheal.guard.risk_day import (
    Amount,
    Booking,
    EquityRead,
    Fill,
    RiskDay,
    Unbookable,
    fill_problem,
)
from autoheal.guard.risk_daybook import DayBook
from autoheal.guard.risk_drawdown import DrawdownRule, equity_problem
from autoheal.guard.risk_limits import (
    GLOBAL_KEYS,
    SYMBOL_KEYS,
    RiskConfigError,
    RiskLimits,
    SymbolLimits,
    parse_limits,
    to_decimal,
)
from autoheal.guard.risk_numbers import signed_problem
from autoheal.guard.throttle_state import DEFAULT_STRATEGY, Throttles
from autoheal.store.alerts import clear_alert, write_alert
from autoheal.store.flags import RISK_LATCH_FILENAME, RISK_SET_BY, write_risk_latch

__all__ = [
    "GLOBAL_KEYS",
    "LIMIT_OF_REASON",
    "REASONS",
    "SYMBOL_KEYS",
    "Activity",
    "Booked",
    "EquitySeen",
    "OpenOrder",
    "RiskBook",
    "RiskConfigError",
    "RiskGuard",
    "RiskLimits",
    "RiskOrder",
    "SymbolLimits",
    "Verdict",
    "check_order",
    "latch_reduce_only",
    "parse_limits",
    "to_decimal",
    "total_exposure",
]

log = logging.getLogger("autoheal.guard.risk")

_ZERO = Decimal(0)


class Booked(NamedTuple):
    """What a fill or an amount did to the day: ``booked`` and the PnL it realized, or
    the refusal (``reason`` a ``risk_*`` token, ``detail`` its numbers)."""

    booked: bool
    realized: Decimal = _ZERO
    reason: str | None = None
    detail: str = ""


class EquitySeen(NamedTuple):
    """What one equity read did (:meth:`RiskGuard.observe_equity`).

    ``good``: the read was usable (else new entries are paused,
    ``reason="risk_pnl_unavailable"``); ``latched``: the drawdown is latched
    (``reason="risk_drawdown"``); the rest are the durable numbers after the read.
    """

    good: bool
    latched: bool
    reason: str | None
    detail: str
    peak_equity: Decimal | None
    drawdown: Decimal
    breach_reads: int


# -- the daily-loss latch -------------------------------------------------------------------
def latch_reduce_only(runtime_dir: Path, reason: str, *, since: float | None = None) -> str:
    """Ask for ``REDUCE_ONLY``: create ``risk_latch.json`` in ``runtime_dir``.

    A request that can only tighten: ``global_flags.json`` is never read or written
    (a read-modify-write of it raced the daemon and could clear a failsafe). A latch
    already there is never replaced: it asks for the same thing, since earlier.

    Args:
        runtime_dir: the runtime directory (it must exist).
        reason: why, for the operator (``risk_daily_loss ...``).
        since: unix seconds; default now.

    Returns:
        ``"written"``, or ``"already"`` when a latch is there (until an operator clears it).

    Raises:
        OSError: the write failed (the caller keeps its own latch and retries).
    """
    stamp = time.time() if since is None else since
    written = write_risk_latch(Path(runtime_dir), reason, since=stamp, set_by=RISK_SET_BY)
    return "written" if written else "already"


# -- the stateful wrapper -------------------------------------------------------------------
class RiskGuard:
    """Checks orders against ``limits``; keeps the throttle window and the day's realized PnL.

    The day (realized PnL, loss latch, cost basis; :mod:`autoheal.guard.risk_day`) is
    durable in ``<runtime_dir>/risk_pnl.json``, shared by every trading process of the
    runtime (:class:`~autoheal.guard.risk_daybook.DayBook`): it is read at
    construction, re-read before a check whenever another process changed it (a
    ``stat`` per check), and every fill is booked into it by a read-modify-write under
    its lock. A restarted trader resumes the day's loss; two traders add up. When the
    file cannot be read or written, or a fill could not be booked, new risk is refused
    where ``max_daily_loss`` is checked (``risk_pnl_unreadable``, ``risk_pnl_unsaved``,
    ``risk_pnl_incomplete``), logged once, with an alert of the same name.

    Args:
        limits: the ``[risk]`` limits (:func:`parse_limits`).
        runtime_dir: where the daily-loss latch (``risk_latch.json``) and
            ``risk_pnl.json`` live; ``None`` keeps both in memory only.
        time_fn: the clock for the throttle (monotonic) ...
        wall_fn: ... and the one that says which UTC day the realized PnL belongs to.

    The execution throttles (:mod:`autoheal.guard.throttles`: message limits per
    strategy, the collar over a window, repeated executions that disable a
    strategy/symbol/side in ``risk_scope_latches.json``) are kept in ``throttles``
    and checked after :func:`check_order`; ``strategy`` names the orders of a call
    that gives none.

    Use: ``ok, reasons = guard.check(order, book)``; after sending, ``guard.note_sent()``;
    after a fill, ``guard.record_fill(symbol, side, qty, price)``.
    """

    def __init__(
        self,
        limits: RiskLimits,
        runtime_dir: Path | None = None,
        *,
        time_fn: Callable[[], float] = time.monotonic,
        wall_fn: Callable[[], float] = time.time,
        strategy: str = DEFAULT_STRATEGY,
    ) -> None:
        self.limits = limits
        #: The strategy of the orders this guard checks when a call names none.
        self.strategy = strategy
        #: The execution throttles' state (message limits, window collar, repeated fills).
        self.throttles = Throttles(limits, runtime_dir, time_fn=time_fn, wall_fn=wall_fn)
        self.runtime_dir = None if runtime_dir is None else Path(runtime_dir)
        self._time = time_fn
        self._wall = wall_fn  # stamps the latch's ``since``
        self._sent: deque[float] = deque()
        self._days = DayBook(
            self.runtime_dir, limits.max_daily_loss, time_fn=time_fn, wall_fn=wall_fn
        )
        self._latch_logged = ""  # the day whose latch was logged
        self._flags_day = self._days.today()
        self._flags_latched = False
        self._rule = DrawdownRule(
            limits.max_drawdown,
            limits.max_drawdown_pct,
            limits.max_daily_loss,
            limits.loss_breach_reads,
        )
        self._drawdown_limited = limits.max_drawdown is not None or (
            limits.max_drawdown_pct is not None
        )
        # A process that must watch the drawdown has not read its equity yet: paused.
        self._unavailable: tuple[str, str] | None = None
        if self._drawdown_limited:
            self._unavailable = ("risk_pnl_unavailable", "no equity read yet")
        self._dd_flags_latched = False

    # -- state ---------------------------------------------------------------------------
    def _view(self) -> RiskDay:
        view = self._days.view()
        if view.day != self._flags_day:  # a new day's latch is written afresh
            self._flags_day, self._flags_latched = view.day, False
        return view

    @property
    def _realized(self) -> Decimal:
        return self._view().realized

    @property
    def _latched(self) -> bool:
        return self._view().loss_latched

    @property
    def realized_pnl_today(self) -> Decimal:
        """Today's realized PnL across the runtime's trading processes (negative: a loss)."""
        self._days.sync()
        return self._realized

    @property
    def loss_latched(self) -> bool:
        """Whether today's realized loss reached ``max_daily_loss`` (new risk refused)."""
        self._days.sync()
        return self._latched

    def activity(self, now: float) -> Activity:
        while self._sent and self._sent[0] <= now - THROTTLE_WINDOW_S:
            self._sent.popleft()
        if self.limits.max_daily_loss is not None or self._drawdown_limited:
            problem = self._days.sync()  # a stat; a read only when another process wrote
        else:
            problem = self._days.problem()  # nothing here needs the day's PnL
        view = self._view()
        dd = view.drawdown
        drawdown = ("risk_drawdown", dd.latched_detail or "latched") if dd.latched else None
        return Activity(
            tuple(self._sent),
            view.realized,
            view.loss_latched,
            problem,
            drawdown,
            self._unavailable,
        )

    # -- the check -----------------------------------------------------------------------
    def check(
        self, order: RiskOrder, book: RiskBook | None, *, strategy: str | None = None
    ) -> tuple[bool, tuple[str, ...]]:
        """``(allowed, reasons)``; a refusal is logged once, with its numbers.

        ``strategy``: who places it (default: the guard's ``strategy``), for the
        message limits and the repeated-execution latches.
        """
        verdict = self.verdict(order, book, strategy=strategy)
        return verdict.allowed, verdict.reasons

    def verdict(
        self, order: RiskOrder, book: RiskBook | None, *, strategy: str | None = None
    ) -> Verdict:
        now = self._time()
        activity = self.activity(now)
        if activity.loss_latched and not self._flags_latched:
            self.latch_flags()
        if activity.drawdown_refusal is not None and not self._dd_flags_latched:
            self._latch_drawdown(activity.drawdown_refusal[1])
        verdict = check_order(self.limits, book, order, now, activity)
        verdict = self._throttled(verdict, order, book, strategy or self.strategy, now)
        if not verdict.allowed:
            log.warning(
                "[risk] %s %s qty=%s price=%s refused: %s",
                str(order.side).upper(),
                order.symbol,
                order.qty,
                order.price,
                "; ".join(verdict.details),
            )
        return verdict

    def note_sent(self, *, strategy: str | None = None) -> None:
        """Count an order that was sent, for the throttle and the strategy's submits."""
        self._sent.append(self._time())
        self.throttles.note("submit", strategy or self.strategy)

    # -- the execution throttles (autoheal.guard.throttles) ------------------------------
    def _throttled(
        self, verdict: Verdict, order: RiskOrder, book: RiskBook | None, strategy: str, now: float
    ) -> Verdict:
        """``verdict`` with the throttles' refusals added (an invalid order stays as it is)."""
        if verdict.reasons == ("risk_invalid_order",):
            return verdict
        found = [
            self.throttles.latch_refusal(order, strategy),
            self.throttles.message_refusal("submit", strategy, now),
            self.throttles.collar_refusal(order, book, now),
        ]
        more = [r for r in found if r is not None]
        if not more:
            return verdict
        return Verdict(
            False,
            verdict.reasons + tuple(t for t, _ in more),
            verdict.details + tuple(f"{t} {d}" for t, d in more),
        )

    def check_message(self, kind: str, *, strategy: str | None = None) -> tuple[bool, str]:
        """May a ``modify`` go out now (``cancel``: always ``(True, "ok")``, see throttles)?

        ``(allowed, reason)``; a refusal is logged. Count it with :meth:`note_message`
        once sent.
        """
        who = strategy or self.strategy
        refused = self.throttles.message_refusal(kind, who, self._time())
        if refused is None:
            return True, "ok"
        log.warning("[risk] %s %s refused: %s %s", kind, who, *refused)
        return False, refused[0]

    def note_message(self, kind: str, *, strategy: str | None = None) -> None:
        """Count a ``modify`` or ``cancel`` that was sent (a submit: :meth:`note_sent`)."""
        self.throttles.note(kind, strategy or self.strategy)

    def message_rates(self) -> dict[str, dict[str, int]]:
        """Per strategy, its ``submit``/``modify``/``cancel`` messages in the last second."""
        return self.throttles.rates(self.strategy)

    def record_execution(
        self, symbol: str, side: str, *, strategy: str | None = None
    ) -> str | None:
        """Count an execution (a fill) for the repeated-execution throttle.

        Returns the scope it disabled (``strategy=...,symbol=...,side=...``), or ``None``.
        :meth:`record_fill` calls it for every fill it books.
        """
        return self.throttles.record_fill(symbol, side, strategy or self.strategy)

    # -- booking -------------------------------------------------------------------------
    def record_fill(
        self,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        *,
        strategy: str | None = None,
    ) -> Booked:
        """Book a fill at ``price`` (average-cost method) into the day, durably.

        A fill of quantity zero books nothing. A fill with a bad number is refused
        (``risk_invalid_fill``): not booked, logged, counted as ``unbooked`` (new risk
        refused with ``risk_pnl_incomplete`` until an operator clears it).

        Returns:
            :class:`Booked`: whether it was booked and the PnL it realized.
        """
        if isinstance(qty, Decimal) and qty.is_zero():
            return Booked(True)
        bad = fill_problem(symbol, side, qty, price)
        if bad is not None:
            what = f"fill symbol={symbol!r} side={side!r} qty={qty!r} price={price!r}: {bad}"
            return self._refuse_booking("risk_invalid_fill", what)
        booked = self._book(Fill(symbol, side, qty, price))
        self.record_execution(symbol, side, strategy=strategy)
        return booked

    def record_realized(self, pnl: Decimal) -> Booked:
        """Add realized PnL (negative: a loss); reaching ``max_daily_loss`` latches.

        An amount that is not a finite Decimal is refused like a bad fill
        (``risk_invalid_pnl``).
        """
        bad = signed_problem(pnl)
        if bad is not None:
            return self._refuse_booking("risk_invalid_pnl", f"realized pnl={pnl!r} {bad}")
        return self._book(Amount(pnl))

    def _refuse_booking(self, token: str, what: str) -> Booked:
        log.error("[risk] %s %s: not booked", token, what)
        self._days.book(Unbookable(f"{token} {what}"))
        return Booked(False, _ZERO, token, what)

    def _book(self, booking: Booking) -> Booked:
        realized = self._days.book(booking)
        view = self._view()
        if view.loss_latched and self._latch_logged != view.day:
            self._latch_logged = view.day
            log.error(
                "[risk] risk_daily_loss realized_pnl_today=%s max_daily_loss=%s: "
                "new risk refused, REDUCE_ONLY latched",
                view.realized,
                self.limits.max_daily_loss,
            )
        if self._latched and not self._flags_latched:
            self.latch_flags()
        return Booked(True, realized)

    def latch_flags(self) -> bool:
        """Write the day's ``REDUCE_ONLY`` latch (retried on the next call after a failure).

        Once per UTC day: after an operator cleared it, the same day's loss does not
        latch again; a new day's does.
        """
        if self.runtime_dir is None:
            self._flags_latched = True
            return True
        reason = (
            f"risk_daily_loss realized_pnl_today={self._realized} "
            f"max_daily_loss={self.limits.max_daily_loss}"
        )
        if not self._write_latch(self.runtime_dir, reason):
            return False
        self._flags_latched = True
        return True

    # -- the equity reads (autoheal.guard.risk_drawdown) ----------------------------------
    @property
    def watches_equity(self) -> bool:
        """Whether a drawdown limit is set: the trader must report its equity every tick."""
        return self._drawdown_limited

    @property
    def drawdown_latched(self) -> bool:
        """Whether the drawdown latched (K consecutive breaching reads; durable)."""
        self._days.sync()
        return self._view().drawdown.latched

    def observe_equity(self, equity: Decimal | None) -> EquitySeen:
        """Report the marked equity now (cash plus every position at its mark).

        Call it on every tick, before the orders of the tick. ``None`` (no equity: a
        balance that cannot be read, a mark <= 0) or a bad number pauses new entries
        at once (``risk_pnl_unavailable``; reducing orders still pass), without
        counting it as a breach and without latching; the next good read lifts the
        pause. A good read moves the peak, the drawdown and the count of consecutive
        breaching reads in ``risk_pnl.json`` (under its lock, like a fill); the
        ``loss_breach_reads``-th latches ``REDUCE_ONLY`` (``risk_drawdown``).
        """
        bad = equity_problem(equity)
        if bad is not None or equity is None:
            self._pause(f"equity={equity!r} {bad}")
            return self._seen(False)
        self._resume()
        self._days.book(EquityRead(equity, self._rule))
        view = self._view()
        if view.drawdown.latched and not self._dd_flags_latched:
            self._latch_drawdown(view.drawdown.latched_detail)
        return self._seen(True)

    def _seen(self, good: bool) -> EquitySeen:
        dd = self._view().drawdown
        if not good and self._unavailable is not None:
            reason, detail = self._unavailable
        elif dd.latched:
            reason, detail = "risk_drawdown", dd.latched_detail
        else:
            reason, detail = None, ""
        return EquitySeen(
            good, dd.latched, reason, detail, dd.peak_equity, dd.drawdown, dd.breach_reads
        )

    def _pause(self, detail: str) -> None:
        first = self._unavailable is None or self._unavailable[1] != detail
        self._unavailable = ("risk_pnl_unavailable", detail)
        if first:
            log.error("[risk] risk_pnl_unavailable %s: new entries paused (no latch)", detail)
            if self.runtime_dir is not None:
                try:
                    write_alert(
                        self.runtime_dir, "risk_pnl_unavailable", ts=self._wall(), detail=detail
                    )
                except OSError as exc:
                    log.error("[risk] cannot raise the risk_pnl_unavailable alert: %s", exc)

    def _resume(self) -> None:
        if self._unavailable is None:
            return
        self._unavailable = None
        log.warning("[risk] risk_pnl_unavailable cleared: a good equity read")
        if self.runtime_dir is not None:
            try:
                clear_alert(self.runtime_dir, "risk_pnl_unavailable")
            except OSError as exc:
                log.error("[risk] cannot clear the risk_pnl_unavailable alert: %s", exc)

    def _write_latch(self, runtime_dir: Path, reason: str) -> bool:
        """Create ``risk_latch.json`` (the daily loss's or the drawdown's); False when it
        could not be written: new risk stays refused here, logged, and it is retried."""
        try:
            outcome = latch_reduce_only(runtime_dir, reason, since=self._wall())
        except OSError as exc:
            log.error(
                "[risk] cannot write the REDUCE_ONLY latch %s: %s (new risk stays refused "
                "here; retried)",
                runtime_dir / RISK_LATCH_FILENAME,
                exc,
            )
            return False
        log.warning("[risk] REDUCE_ONLY latch %s (%s)", outcome, reason)
        return True

    def _latch_drawdown(self, detail: str) -> None:
        reason = f"risk_drawdown {detail}"
        log.error("[risk] %s: new risk refused, REDUCE_ONLY latched", reason)
        if self.runtime_dir is None:
            self._dd_flags_latched = True
            return
        if not self._write_latch(self.runtime_dir, reason):
            return
        self._dd_flags_latched = True
