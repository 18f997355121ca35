"""The day as one trading process knows it: the shared file's day, plus what is not saved yet.

:class:`~autoheal.guard.risk.RiskGuard` holds one :class:`DayBook`. It books each fill
into ``risk_pnl.json`` (:mod:`autoheal.guard.risk_day_file`) and keeps the rules of
:mod:`autoheal.guard.risk_day` when the file fails. Each failure is a *problem*, a
``(token, detail)`` pair that refuses new risk wherever ``max_daily_loss`` is checked,
logged once and raised as the alert of the same name while it lasts:

* ``risk_pnl_unreadable``: the file is not a valid day. It is never written over (it
  is the operator's evidence) and never read as a day at zero; bookings wait in
  memory and go into the file once it reads again (repaired, or removed by hand).
* ``risk_pnl_unsaved``: a save failed (a full disk, the lock held past its timeout).
  The bookings wait in memory, counted in the day this process sees, and the save
  is retried every :data:`SAVE_RETRY_S`.
* ``risk_pnl_incomplete``: a fill or amount was not booked for a bad number; it
  lasts until an operator removes ``unbooked`` from the file.

A file that vanishes while this process knows a day (a loss, a latch, a position)
is written back: a missing file only means "a day at zero" to a process that knows
nothing else, like the first one of the day.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from autoheal.guard.risk_day import Booking, RiskDay, apply, utc_day
from autoheal.guard.risk_day_file import RISK_PNL_FILENAME, DayFile
from autoheal.store.alerts import clear_alert, write_alert

__all__ = ["SAVE_RETRY_S", "DayBook", "Problem"]

log = logging.getLogger("autoheal.guard.risk")

#: How often a save the file did not take is retried (a full disk, the lock).
SAVE_RETRY_S = 1.0
Problem = tuple[str, str]


class DayBook:
    """The day's realized PnL for one process: :meth:`view`, :meth:`sync`, :meth:`book`.

    Args:
        runtime_dir: where ``risk_pnl.json`` lives; ``None`` keeps the day in memory.
        max_daily_loss: the limit that latches the day (``None``: never).
        time_fn: monotonic clock for the save retries; ``wall_fn``: which UTC day it is.
    """

    def __init__(
        self,
        runtime_dir: Path | None,
        max_daily_loss: Decimal | None,
        *,
        time_fn: Callable[[], float],
        wall_fn: Callable[[], float],
    ) -> None:
        self.runtime_dir = runtime_dir
        self._limit = max_daily_loss
        self._time = time_fn
        self._wall = wall_fn
        self._file = None if runtime_dir is None else DayFile(runtime_dir)
        self._day_index = -1
        self._day_name = ""
        self._day = RiskDay(self.today())  # as last read or written
        self._pending: list[Booking] = []  # booked here, not yet in the file
        self._unreadable: str | None = None  # why the file could not be read
        self._unsaved: str | None = None  # why the last save failed
        self._save_at = -math.inf
        self._announced: Problem | None = None
        self.sync(force=True)

    def today(self) -> str:
        """The UTC date now (one date conversion a day, not one per check)."""
        index = int(self._wall() // 86400)
        if index != self._day_index:
            self._day_index, self._day_name = index, utc_day(index * 86400)
        return self._day_name

    def view(self) -> RiskDay:
        """The day as this process knows it: the file's, then what it booked and did not save."""
        today = self.today()
        if self._pending or today > self._day.day:
            return apply(self._day, tuple(self._pending), today, self._limit)[0]
        return self._day

    def problem(self) -> Problem | None:
        """The problem as last announced (no I/O)."""
        return self._announced

    def sync(self, *, force: bool = False) -> Problem | None:
        """Catch up with the file if another process changed it (a ``stat`` when it did not);
        retry a save that failed. Returns the problem, if any."""
        file = self._file
        if file is None:
            return self._announced if not force else self._announce()
        moved = force or file.changed()
        if moved:
            read = file.read()
            self._unreadable = read.problem
            if read.day is not None:
                self._day = read.day
            elif read.problem is None and self._knows_something():
                self._save(file)  # it vanished: write back what this process knows
        if self._pending and (force or self._time() >= self._save_at):
            self._save(file)
            moved = True
        # Nothing changes the problem but a read or a save (or a booking, which announces).
        return self._announce() if moved else self._announced

    def book(self, booking: Booking) -> Decimal:
        """Book into the file (under its lock) or, failing that, keep it pending.

        Returns:
            The PnL it realized (against the file's cost basis when saved).
        """
        self._pending.append(booking)
        results = None if self._file is None else self._save(self._file)
        if results is None:  # in memory only, or not saved (kept pending, retried)
            day, results = apply(self._day, tuple(self._pending), self.today(), self._limit)
            if self._file is None:
                self._day = day
                self._pending.clear()
        self._announce()
        return results[-1]

    def _knows_something(self) -> bool:
        day = self._day
        return bool(
            day.realized
            or day.loss_latched
            or day.basis
            or day.unbooked
            or day.drawdown.peak_equity is not None
        )

    def _save(self, file: DayFile) -> tuple[Decimal, ...] | None:
        """Book what is pending into the file under its lock; never over an unreadable one.

        Returns:
            What each pending booking realized, or ``None`` when nothing was written
            (the bookings stay pending and are retried after :data:`SAVE_RETRY_S`).
        """
        bookings = tuple(self._pending)
        try:
            with file.update() as read:
                self._unreadable = read.problem
                if read.problem is None:  # unreadable: the operator's evidence, kept
                    base = self._day if read.day is None else read.day
                    day, results = apply(base, bookings, self.today(), self._limit)
                    file.write(day, self._wall())
                    self._day, self._unsaved = day, None
                    del self._pending[: len(bookings)]
                    return results
        except OSError as exc:  # LockTimeout is one
            self._unsaved = f"{type(exc).__name__}: {exc}"
        self._save_at = self._time() + SAVE_RETRY_S
        return None

    def _problem(self) -> Problem | None:
        where = RISK_PNL_FILENAME if self._file is None else str(self._file.path)
        if self._unreadable is not None:
            return "risk_pnl_unreadable", f"{where}: {self._unreadable} (never read as zero)"
        if self._unsaved is not None:
            kept = len(self._pending)
            return "risk_pnl_unsaved", f"{where}: {self._unsaved} ({kept} booking(s) kept)"
        view = self.view()
        if view.unbooked:
            return (
                "risk_pnl_incomplete",
                f"{view.unbooked} fill(s) not booked, last: {view.unbooked_last}",
            )
        return None

    def _announce(self) -> Problem | None:
        """Log and alert a new problem once (by its token: not once per check or fill)."""
        problem = self._problem()
        before, self._announced = self._announced, problem
        if (before and before[0]) == (problem and problem[0]):
            return problem
        if before is not None:
            if self.runtime_dir is not None:
                clear_alert(self.runtime_dir, before[0])
            if problem is None:
                log.warning("[risk] %s cleared: the day's PnL is known again", before[0])
        if problem is not None:
            refused = "new risk refused" if self._limit is not None else "no max_daily_loss"
            log.error("[risk] %s %s: %s", *problem, refused)
            if self.runtime_dir is not None:
                write_alert(self.runtime_dir, problem[0], ts=self._wall(), detail=problem[1])
        return problem
