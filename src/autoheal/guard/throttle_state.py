"""The execution throttles' recent past, kept by :class:`~autoheal.guard.risk.RiskGuard`.

What the numbers mean is :mod:`autoheal.guard.throttles` (pure); this keeps the send
times per strategy and kind, the marks seen per symbol and the fills per
strategy/symbol/side, reads ``risk_scope_latches.json`` (a ``stat`` per check, a read
only when it changed) and writes a latch when a scope reaches its repeated executions.

A latch that cannot be written (a full disk, a read-only runtime, a lock held too
long, a garbage document) still refuses its scope here, in memory, and is logged
loudly (``log.error``) on every failed try; the write is retried on the next check.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from autoheal.guard.risk_check import RiskBook, RiskOrder
from autoheal.guard.risk_limits import RiskLimits
from autoheal.guard.scope_latches import add_latch, latches_path, read_latches
from autoheal.guard.throttles import (
    KINDS,
    LATCH_REASON,
    MESSAGE_WINDOW_S,
    LatchView,
    collar_window_check,
    execution_scope,
    latch_entry,
    latched_scope,
    message_check,
    message_rates,
    repeated_execution,
)

__all__ = ["DEFAULT_STRATEGY", "Throttles"]

log = logging.getLogger("autoheal.guard.risk")

#: The strategy of orders that do not name one.
DEFAULT_STRATEGY = "default"
_Sig = tuple[int, int, int, int] | None


def _sig(path: str) -> _Sig:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return (-1, -1, -1, -1)  # there but not stat-able: read (and refuse) again
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class Throttles:
    """Message limits, the window collar and the repeated-execution latch for one process."""

    def __init__(
        self,
        limits: RiskLimits,
        runtime_dir: Path | None,
        *,
        time_fn: Callable[[], float],
        wall_fn: Callable[[], float],
    ) -> None:
        self.limits = limits
        self.runtime_dir = runtime_dir
        self._time = time_fn
        self._wall = wall_fn
        self._sent: dict[str, dict[str, deque[float]]] = {}
        self._marks: dict[str, deque[tuple[float, Decimal]]] = {}
        self._fills: dict[str, deque[float]] = {}
        #: Latches this process decided, kept until an operator's enable removes the
        #: file's entry (a write that failed keeps refusing here).
        self._mine: dict[str, dict[str, object]] = {}
        self._unsaved: set[str] = set()
        self._file_sig: _Sig = None
        self._path = None if runtime_dir is None else os.fspath(latches_path(runtime_dir))
        self._file_view = LatchView()
        self._seen_in_file: set[str] = set()

    # -- message limits ------------------------------------------------------------------
    def _history(self, strategy: str) -> dict[str, deque[float]]:
        return self._sent.setdefault(strategy, {k: deque() for k in KINDS})

    def _prune(self, now: float) -> None:
        for kinds in self._sent.values():
            for times in kinds.values():
                while times and times[0] <= now - MESSAGE_WINDOW_S:
                    times.popleft()

    def note(self, kind: str, strategy: str) -> None:
        """Count one message of ``kind`` (``submit``, ``modify``, ``cancel``) that was sent."""
        self._history(strategy)[kind].append(self._time())

    def message_refusal(self, kind: str, strategy: str, now: float) -> tuple[str, str] | None:
        limits = {
            "submit": self.limits.max_submits_per_s,
            "modify": self.limits.max_modifies_per_s,
            "cancel": self.limits.max_cancels_per_s,
        }
        if all(v is None for v in limits.values()):
            return None
        self._prune(now)
        return message_check(kind, strategy, self._history(strategy), now, limits)

    def rates(self, *always: str) -> dict[str, dict[str, int]]:
        """``{strategy: {"submit": n, "modify": n, "cancel": n}}``, messages in the last second
        (the strategies in ``always`` too, with zeros when they sent nothing yet)."""
        for strategy in always:
            self._history(strategy)
        now = self._time()
        self._prune(now)
        return {s: message_rates(h, now) for s, h in sorted(self._sent.items())}

    # -- the latches -----------------------------------------------------------------------
    def view(self) -> LatchView:
        """The file's latches joined with this process's own (re-read when it changed).

        The hot path is one ``stat`` (about 2 us when the file is absent).
        """
        if self._path is not None:
            sig = _sig(self._path)
            if sig != self._file_sig:
                self._file_sig = sig
                self._reread()
            if self._unsaved:
                self._retry_unsaved()
        view = self._file_view
        if view.garbage or not self._mine:
            return view
        return LatchView({**view.latches, **self._mine})

    def _reread(self) -> None:
        assert self.runtime_dir is not None
        self._file_view = read_latches(self.runtime_dir)
        self._forget_enabled()
        if self._file_view.garbage:
            log.error(
                "[risk] %s %s unreadable (%s): every order refused until an "
                "operator runs 'autoheal risk enable all'",
                LATCH_REASON,
                self._path,
                self._file_view.garbage,
            )

    def _forget_enabled(self) -> None:
        """A saved latch of ours gone from the file: an operator enabled it."""
        view = self._file_view
        if view.garbage:
            return
        now_in = set(view.latches)
        for scope in list(self._mine):
            if scope in self._seen_in_file and scope not in now_in:
                del self._mine[scope]
                self._seen_in_file.discard(scope)
                self._fills.pop(scope, None)
                log.warning("[risk] %s re-enabled by an operator", scope)
            elif scope in now_in:
                self._seen_in_file.add(scope)

    def _retry_unsaved(self) -> None:
        for scope in sorted(self._unsaved):
            self._save(scope)

    def _save(self, scope: str) -> None:
        assert self.runtime_dir is not None
        entry = self._mine[scope]
        try:
            outcome = add_latch(self.runtime_dir, scope, dict(entry))
        except Exception as exc:  # OSError, LockTimeout: refused here all the same, loudly
            self._unsaved.add(scope)
            log.error(
                "[risk] %s cannot write the latch for %s to %s: %s (refused in this "
                "process; retried)",
                LATCH_REASON,
                scope,
                latches_path(self.runtime_dir),
                exc,
            )
            return
        if outcome == "garbage":
            self._unsaved.add(scope)
            log.error(
                "[risk] %s %s is garbage: the latch for %s is not written (everything "
                "is refused already)",
                LATCH_REASON,
                latches_path(self.runtime_dir),
                scope,
            )
            return
        self._unsaved.discard(scope)
        self._seen_in_file.add(scope)
        self._file_sig = None  # re-read: our own write
        log.error("[risk] %s %s disabled (%s): %s", LATCH_REASON, scope, outcome, entry)

    def latch_refusal(self, order: RiskOrder, strategy: str) -> tuple[str, str] | None:
        view = self.view()
        if not view.garbage and not view.latches:
            return None
        scope = latched_scope(view, strategy=strategy, symbol=order.symbol, side=order.side)
        if scope is None:
            return None
        if view.garbage:
            return LATCH_REASON, f"scope=all: {view.garbage}: the latch document is garbage"
        return (
            LATCH_REASON,
            f"scope={scope} disabled until 'autoheal risk enable {scope}'",
        )

    def record_fill(self, symbol: str, side: str, strategy: str) -> str | None:
        """Count a fill; the scope it disabled (now), or ``None``."""
        n, window = self.limits.max_repeated_executions, self.limits.repeated_execution_window_s
        if n is None or window is None:
            return None
        scope = execution_scope(strategy, symbol, side)
        now = self._time()
        fills = self._fills.setdefault(scope, deque())
        fills.append(now)
        while fills and fills[0] <= now - window:
            fills.popleft()
        disable, count = repeated_execution(fills, now, n, window)
        if not disable or scope in self._mine:
            return None
        self._mine[scope] = latch_entry(self._wall(), count, window)
        if self.runtime_dir is not None:
            self._save(scope)
        else:
            log.error("[risk] %s %s disabled (in memory)", LATCH_REASON, scope)
        return scope

    # -- the collar over a window ----------------------------------------------------------
    def collar_refusal(
        self, order: RiskOrder, book: RiskBook | None, now: float
    ) -> tuple[str, str] | None:
        pct, window = self.limits.collar_window_pct, self.limits.collar_window_s
        if pct is None or window is None:
            return None
        marks = self._marks.setdefault(order.symbol, deque())
        mark = None if book is None else book.marks.get(order.symbol)
        if type(mark) is Decimal and mark.is_finite() and mark > 0:
            marks.append((now, mark))
        while marks and marks[0][0] <= now - window:
            marks.popleft()
        price = order.price if order.price is not None else mark
        return collar_window_check(
            pct, window, marks, price if type(price) is Decimal else None, now, symbol=order.symbol
        )
