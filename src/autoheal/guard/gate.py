"""The trading gate: may this process send a new order right now?

``TradingGate(runtime_dir, stop_file).allowed("buy", symbol="BTCUSDT")`` →
``(allowed, reason)``, decided from four files (most severe first). Both paths are
optional: by default they come from ``AUTOHEAL_RUNTIME_DIR`` / ``AUTOHEAL_STOP_FILE``,
which the daemon sets for every service (:mod:`autoheal.guard.kill_switch`); given or
not, they must be absolute.

==================================  ======================  ===============================
state                               buys                    sells
==================================  ======================  ===============================
kill switch not found (no path, a   no ``kill_switch_unknown`` no ``kill_switch_unknown``
relative path, no runtime dir, no
``global_flags.json``, a flags
file that is not a regular file)
``STOP.TXT`` present                no ``stop_file_present``  no ``stop_file_present``
``global_flags.json`` unreadable    no ``flags_invalid``      no ``flags_invalid``
``scoped_halts`` garbage            no ``scoped_halt:all``    no ``scoped_halt:all``
``REDUCE_ONLY`` (even in failsafe)  no ``reduce_only``        only with ``reduces_position``
failsafe / ``SIGNAL_READ_ONLY``     no ``failsafe_active``    no ``failsafe_active``
order inside a scoped halt          no ``scoped_halt:SCOPE``  no ``scoped_halt:SCOPE``
repeated-execution latches garbage  no ``risk_repeated_execution:all`` (buys and sells)
order inside a repeated-execution   no ``risk_repeated_execution:SCOPE`` (its side)
latch (``risk_scope_latches.json``)
``risk_latch.json`` present         no ``reduce_only``        only with ``reduces_position``
``DEGRADED``                        no ``degraded``           yes
breaker open (symbol or global)     no ``outage_circuit_...`` yes
``NORMAL``                          yes ``ok``                yes ``ok``
==================================  ======================  ===============================

Scoped halts (``autoheal failsafe enter --scope symbol=BTCUSDT``) are read from the
flags' ``scoped_halts`` key and the daemon's record ``scoped_halts.json``, their union
(:mod:`autoheal.guard.scopes` says what a value means; garbage halts every order).
An order is inside a scope when every kind the scope names equals the order's
``strategy``, ``symbol``, ``venue`` and side; a kind the caller does not give matches
(fail closed), so a caller that trades for a strategy or on a venue passes them.

The repeated-execution latches (``risk_scope_latches.json``, written by the guard,
removed only by ``autoheal risk enable``; :mod:`autoheal.guard.throttles` says what the
file means) are honoured here too, by the same matching: pass ``strategy=``, or every
strategy's orders on a latched symbol and side are refused (fail closed).

The risk latch (the guard's daily-loss latch, :mod:`autoheal.guard.risk`) is honoured
here directly, by its presence, so it holds even before the daemon has read it, or
with no daemon at all; it never loosens a failsafe.

The breaker's file is read with the breaker's own function
(:func:`autoheal.guard.breaker.load_breaker_keys`: wall-clock deadlines, clamped) and
its deadlines tested with the breaker's own :func:`~autoheal.guard.breaker_state.still_open`,
so the gate pauses buys exactly while the breaker is open, also after a reboot.

How it stays cheap and fresh. The gate keeps the parsed state in memory. A call
reads the monotonic clock and, at most once per ``recheck_interval_s`` (25 ms),
``stat``\\s the four files; only a changed ``stat`` signature (inode, mtime,
ctime, size) makes it re-read a file. So the hot path is a clock read and a few
comparisons (about a microsecond), and any change is noticed within the
re-check interval by any process that keeps calling ``allowed()``.

Optionally, :meth:`TradingGate.start` (or ``with gate:``) runs a watchfiles
watcher thread that marks the cache dirty the moment a file event arrives, so the
very next call re-checks. The thread is never started implicitly: the library
creates no threads unless asked. Async code can use :meth:`TradingGate.awatch`
to be told of every change instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from autoheal.guard import breaker_state as bs
from autoheal.guard._symbols import normalize_symbol
from autoheal.guard.breaker import (
    BREAKER_FILENAME,
    BREAKER_OPEN_REASON,
    GLOBAL_KEY,
    load_breaker_keys,
    wall_clock_for,
)
from autoheal.guard.kill_switch import (
    KILL_SWITCH_UNKNOWN,
    KillSwitchUnknown,
    PathArg,
    flags_problem,
    resolve_kill_switch,
)
from autoheal.guard.scope_latches import LATCHES_FILENAME, read_latches
from autoheal.guard.scoped_record import RECORD_FILENAME as SCOPED_RECORD
from autoheal.guard.scoped_record import read_view as read_scoped_record
from autoheal.guard.scopes import SCOPED_HALT, HaltsView, halted_scope, merge_views, parse_halts
from autoheal.guard.throttles import LATCH_REASON, LatchView, latched_scope
from autoheal.store.flags import FLAGS_FILENAME, RISK_LATCH_FILENAME, Flags, read_flags

__all__ = ["GateStatus", "TradingGate", "decide"]

log = logging.getLogger("autoheal.guard.gate")

_StatSig = tuple[int, int, int, int] | None
# STOP.TXT, flags, latch, breaker, scoped halts, repeated-execution latches
_Sigs = tuple[bool, _StatSig, bool, _StatSig, _StatSig, _StatSig]
_ACTIONS = {"buy": "buy", "sell": "sell", "BUY": "buy", "SELL": "sell"}


@dataclass(frozen=True, slots=True)
class GateStatus:
    """What the gate knows: the kill switch and the breakers' open-until times."""

    stop_present: bool = False
    flags: Flags | None = field(default_factory=Flags)
    #: Why the flags are invalid, or why the kill switch is unknown.
    flags_detail: str = ""
    open_until: Mapping[str, float] = field(default_factory=dict)
    #: False when the gate cannot find the kill switch (see the module's table).
    kill_switch_known: bool = True
    #: The guard's daily-loss latch asks for REDUCE_ONLY.
    risk_latched: bool = False
    #: The scoped halts: the union of the flags' key and the daemon's record.
    scoped: HaltsView = field(default_factory=HaltsView)
    flags_scoped: HaltsView = field(default_factory=HaltsView)
    record_scoped: HaltsView = field(default_factory=HaltsView)
    #: The repeated-execution latches (``risk_scope_latches.json``).
    latches: LatchView = field(default_factory=LatchView)

    @property
    def halted(self) -> bool:
        """True when no new order of any kind may be sent."""
        f = self.flags
        return (
            not self.kill_switch_known
            or self.stop_present
            or f is None
            or f.failsafe_active
            or f.mode == "SIGNAL_READ_ONLY"
            or bool(self.scoped.garbage)
        )


def decide(
    status: GateStatus,
    action: str,
    *,
    symbol: str | None = None,
    reduces_position: bool = False,
    now: float = 0.0,
    strategy: str | None = None,
    venue: str | None = None,
) -> tuple[bool, str]:
    """The pure decision behind :meth:`TradingGate.allowed` (see the module table)."""
    act = _ACTIONS.get(action) or _ACTIONS.get(str(action).strip().lower())
    if act is None:
        return False, "invalid_action"
    if not status.kill_switch_known:
        return False, KILL_SWITCH_UNKNOWN
    if status.stop_present:
        return False, "stop_file_present"
    flags = status.flags
    if flags is None:
        return False, "flags_invalid"
    scoped = status.scoped
    if scoped.garbage:
        return False, f"{SCOPED_HALT}:all"
    if flags.mode == "REDUCE_ONLY":
        # An operator's explicit choice, also inside a failsafe (DESIGN.md §7: to unwind);
        # STOP.TXT above still halts everything.
        return (True, "ok") if act == "sell" and reduces_position else (False, "reduce_only")
    if flags.failsafe_active or flags.mode == "SIGNAL_READ_ONLY":
        return False, "failsafe_active"
    if scoped.halts:
        halted = halted_scope(scoped, strategy=strategy, symbol=symbol, venue=venue, side=act)
        if halted is not None:
            return False, f"{SCOPED_HALT}:{halted}"
    latches = status.latches
    if latches.garbage or latches.latches:
        hit = latched_scope(latches, strategy=strategy, symbol=symbol, side=act, venue=venue)
        if hit is not None:
            return False, f"{LATCH_REASON}:{hit}"
    if status.risk_latched:
        return (True, "ok") if act == "sell" and reduces_position else (False, "reduce_only")
    if act == "sell":
        return True, "ok"
    if flags.mode == "DEGRADED":
        return False, "degraded"
    if status.open_until:
        keys = (GLOBAL_KEY,) if symbol is None else (GLOBAL_KEY, normalize_symbol(symbol))
        if any(bs.still_open(status.open_until.get(k), now) for k in keys):
            return False, BREAKER_OPEN_REASON
    return True, "ok"


def _stat_sig(path: Path) -> _StatSig:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def _open_breakers(path: Path, now: float, wall_now: float) -> dict[str, float]:
    """Key → open_until (in the gate's clock) for every key the breaker holds open."""
    keys = load_breaker_keys(path, now, wall_now) or {}
    return {
        key: ks.open_until
        for key, ks in keys.items()
        if ks.state == bs.OPEN and ks.open_until is not None
    }


def _flags_status(status: GateStatus, runtime_dir: Path) -> GateStatus:
    """``status`` with the flags as read now: found and valid, invalid, or not found."""
    read = read_flags(runtime_dir)
    problem = flags_problem(read, runtime_dir)
    if problem:
        return replace(status, flags=None, flags_detail=problem, kill_switch_known=False)
    fs = parse_halts(read.scoped_halts)
    return replace(
        status,
        flags=read.flags,
        flags_detail=read.detail,
        kill_switch_known=True,
        flags_scoped=fs,
        scoped=merge_views(fs, status.record_scoped),
    )


class TradingGate:
    """Decides ``allowed(action)`` from ``STOP.TXT``, ``global_flags.json``, the risk
    latch and the breakers.

    Args:
        runtime_dir: the runtime directory holding the flags and breaker files, an
            absolute path; default ``AUTOHEAL_RUNTIME_DIR``. Without either, or with a
            relative one, every answer is ``(False, "kill_switch_unknown")``.
        stop_file: the ``STOP.TXT`` path, absolute; default ``AUTOHEAL_STOP_FILE``, else
            ``<runtime_dir>/../STOP.TXT``.
        recheck_interval_s: the most time between two ``stat`` checks (the fallback poll).
        time_fn: monotonic seconds, shared with the breaker's clock; tests pass a fake.
        wall_fn: the wall clock, to read the breaker's stored deadlines (as the breaker does).
        watch_breaker: also pause buys for keys whose persisted breaker is open.
    """

    def __init__(
        self,
        runtime_dir: PathArg | None = None,
        stop_file: PathArg | None = None,
        *,
        recheck_interval_s: float = 0.025,
        time_fn: Callable[[], float] = time.monotonic,
        wall_fn: Callable[[], float] | None = None,
        watch_breaker: bool = True,
    ) -> None:
        found = resolve_kill_switch(runtime_dir, stop_file)
        paths = None if isinstance(found, KillSwitchUnknown) else found
        if isinstance(found, KillSwitchUnknown):
            log.error("[gate] kill_switch_unknown: %s; every new order is refused", found.detail)
        #: Whether the kill switch's paths are known (its files are checked on each call).
        self.known = paths is not None
        #: ``None`` when the kill switch's paths are unknown.
        self.runtime_dir: Path | None = None if paths is None else paths.runtime_dir
        self.stop_file: Path | None = None if paths is None else paths.stop_file
        rt = Path(os.devnull) if paths is None else paths.runtime_dir
        self._stop_path = Path(os.devnull) / "STOP.TXT" if paths is None else paths.stop_file
        self._flags_path = rt / FLAGS_FILENAME
        self._latch_path = rt / RISK_LATCH_FILENAME
        self._breaker_path = rt / BREAKER_FILENAME if watch_breaker and self.known else None
        self._scoped_path = rt / SCOPED_RECORD
        self._latches_path = rt / LATCHES_FILENAME
        self._interval = recheck_interval_s
        self._time_fn = time_fn
        self._wall_fn = wall_clock_for(time_fn, wall_fn)
        self._sigs: _Sigs | None = None
        self._status = GateStatus(
            flags=None if paths is None else Flags(),
            flags_detail="" if not isinstance(found, KillSwitchUnknown) else found.detail,
            kill_switch_known=self.known,
        )
        self._next_check = float("-inf")
        self._dirty = True
        self._stop_event: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- the hot path --------------------------------------------------------------------

    def allowed(
        self,
        action: str,
        *,
        symbol: str | None = None,
        reduces_position: bool = False,
        strategy: str | None = None,
        venue: str | None = None,
    ) -> tuple[bool, str]:
        """May a new order for ``action`` (``buy``/``sell``) go out now?

        Args:
            action: ``buy`` or ``sell``, any case.
            symbol: the market, so an open breaker for it pauses buys.
            reduces_position: the sell shrinks a held position (needed under ``REDUCE_ONLY``).
            strategy: the strategy placing it, and ``venue`` the venue it goes to: an
                order inside a scoped halt is refused (``scoped_halt:<scope>``).

        Returns:
            ``(allowed, reason)``; ``reason`` is ``ok`` when allowed.
        """
        now = self._time_fn()
        if self._dirty or now >= self._next_check:
            self._check(now)
        return decide(
            self._status,
            action,
            symbol=symbol,
            reduces_position=reduces_position,
            now=now,
            strategy=strategy,
            venue=venue,
        )

    async def aallowed(
        self,
        action: str,
        *,
        symbol: str | None = None,
        reduces_position: bool = False,
        strategy: str | None = None,
        venue: str | None = None,
    ) -> tuple[bool, str]:
        """The async form of :meth:`allowed`.

        It does not hop to a thread: at worst it runs three ``stat`` calls (microseconds),
        and re-reads a small file only after a change.
        """
        return self.allowed(
            action,
            symbol=symbol,
            reduces_position=reduces_position,
            strategy=strategy,
            venue=venue,
        )

    def status(self) -> GateStatus:
        """Re-check the files now and return what the gate knows."""
        self._check(self._time_fn())
        return self._status

    # -- change detection ----------------------------------------------------------------

    def _check(self, now: float) -> None:
        self._dirty = False  # cleared first: an event during the check marks it again
        self._next_check = now + self._interval
        if not self.known:
            return
        sigs: _Sigs = (
            os.path.lexists(self._stop_path),
            _stat_sig(self._flags_path),
            os.path.lexists(self._latch_path),
            None if self._breaker_path is None else _stat_sig(self._breaker_path),
            _stat_sig(self._scoped_path),
            _stat_sig(self._latches_path),
        )
        if sigs == self._sigs:
            return
        with self._lock:
            old = self._sigs
            self._sigs = sigs
            status = self._status
            if old is None or old[1] != sigs[1]:
                status = _flags_status(status, self._flags_path.parent)
            if self._breaker_path is not None and (old is None or old[3] != sigs[3]):
                breakers = _open_breakers(self._breaker_path, now, self._wall_fn())
                status = replace(status, open_until=breakers)
            if old is None or old[4] != sigs[4]:
                rs = read_scoped_record(self._scoped_path.parent)
                status = replace(
                    status, record_scoped=rs, scoped=merge_views(status.flags_scoped, rs)
                )
            if old is None or old[5] != sigs[5]:
                status = replace(status, latches=read_latches(self._latches_path.parent))
            status = replace(status, stop_present=sigs[0], risk_latched=sigs[2])
            self._log_change(self._status, status)
            self._status = status

    @staticmethod
    def _log_change(old: GateStatus, new: GateStatus) -> None:
        if new.kill_switch_known != old.kill_switch_known:
            if new.kill_switch_known:
                log.warning("[gate] kill switch found again")
            else:
                log.error(
                    "[gate] kill_switch_unknown: %s; every new order is refused",
                    new.flags_detail,
                )
        if new.risk_latched != old.risk_latched:
            log.warning(
                "[gate] risk latch %s",
                "present: REDUCE_ONLY" if new.risk_latched else "removed",
            )
        if new.stop_present != old.stop_present:
            log.warning(
                "[gate] STOP.TXT %s",
                "present: all new orders halted" if new.stop_present else "removed",
            )
        if new.scoped != old.scoped:
            if new.scoped.garbage:
                log.error(
                    "[gate] scoped_halts unreadable (%s): all new orders halted", new.scoped.garbage
                )
            else:
                log.warning("[gate] scoped halts: %s", ", ".join(new.scoped.by_name()) or "none")
        if new.latches != old.latches:
            if new.latches.garbage:
                log.error(
                    "[gate] %s unreadable (%s): all new orders refused",
                    LATCHES_FILENAME,
                    new.latches.garbage,
                )
            else:
                log.warning(
                    "[gate] repeated-execution latches: %s",
                    ", ".join(sorted(new.latches.latches)) or "none",
                )
        if new.flags != old.flags and new.kill_switch_known:
            if new.flags is None:
                log.error("[gate] flags_invalid (%s): all new orders halted", new.flags_detail)
            else:
                log.warning(
                    "[gate] flags mode=%s failsafe_active=%s reason=%s",
                    new.flags.mode,
                    new.flags.failsafe_active,
                    new.flags.reason or "-",
                )

    def invalidate(self) -> None:
        """Make the next call re-check the files (what the watcher thread does on an event)."""
        self._dirty = True

    def _watch_targets(self) -> tuple[list[Path], Callable[[Any, str], bool]]:
        names = {
            str(self._stop_path),
            str(self._flags_path),
            str(self._latch_path),
            str(self._scoped_path),
            str(self._latches_path),
        }
        if self._breaker_path is not None:
            names.add(str(self._breaker_path))
        dirs = sorted({self._flags_path.parent, self._stop_path.parent})
        return dirs, lambda _change, path: path in names

    # -- the optional watcher thread ----------------------------------------------------
    # watchfiles is imported here, not at the top: the guard alone (autoheal-guard) has no
    # dependencies, and allowed() re-checks the files by itself without a watcher.

    def start(self, *, wait_ready_s: float = 1.0) -> TradingGate:
        """Start a watcher thread that invalidates the cache on file events; idempotent.

        Args:
            wait_ready_s: wait up to this long for the watcher to be armed, so that a
                change made right after ``start()`` returns is seen by the thread.
        """
        if self._thread is not None or not self.known:
            return self  # nothing to watch: an unknown kill switch stays refused
        watchfiles = _import_watchfiles("start()")
        dirs, watch_filter = self._watch_targets()
        stop_event = threading.Event()
        ready = threading.Event()

        def run() -> None:
            # step=10 ms: the watcher returns ~10-20 ms after the first event.
            # rust_timeout=50 ms + yield_on_timeout: the first (possibly empty) yield tells
            # start() the watcher is armed, and close() never waits long.
            for changes in watchfiles.watch(
                *dirs,
                watch_filter=watch_filter,
                debounce=50,
                step=10,
                stop_event=stop_event,
                rust_timeout=50,
                yield_on_timeout=True,
                recursive=False,
                raise_interrupt=False,
            ):
                ready.set()
                if changes:
                    self._dirty = True
            ready.set()

        self._stop_event = stop_event
        self._thread = threading.Thread(target=run, name="autoheal-gate-watch", daemon=True)
        self._thread.start()
        ready.wait(wait_ready_s)
        self._dirty = True
        return self

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the watcher thread, if running."""
        if self._thread is None or self._stop_event is None:
            return
        self._stop_event.set()
        self._thread.join(timeout_s)
        self._thread = None
        self._stop_event = None

    def __enter__(self) -> TradingGate:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def awatch(
        self, *, stop_event: Any = None, poll_s: float = 1.0
    ) -> AsyncIterator[GateStatus]:
        """Yield the gate's status now and after every change (file event or fallback poll).

        Args:
            stop_event: an ``anyio.Event``/``asyncio.Event`` that ends the iteration.
            poll_s: the fallback re-check period when no event arrives.
        """
        watchfiles = _import_watchfiles("awatch()")
        last = self.status()
        yield last
        if not self.known:
            return
        dirs, watch_filter = self._watch_targets()
        async for _changes in watchfiles.awatch(
            *dirs,
            watch_filter=watch_filter,
            debounce=50,
            step=10,
            stop_event=stop_event,
            rust_timeout=int(poll_s * 1000),
            yield_on_timeout=True,
            recursive=False,
        ):
            current = self.status()
            if current != last:
                last = current
                yield current


def _import_watchfiles(method: str) -> Any:
    """watchfiles, for a watcher; a clear error where only the guard was installed."""
    try:
        import watchfiles
    except ImportError:
        raise ImportError(
            f"TradingGate.{method} needs watchfiles, which is not installed here "
            "(pip install watchfiles); without a watcher, allowed() still sees a new "
            "STOP.TXT within its re-check interval"
        ) from None
    return watchfiles
