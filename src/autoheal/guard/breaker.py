"""A circuit breaker per key (symbol) and for the exchange as a whole, shared by processes.

The math lives in :mod:`autoheal.guard.breaker_state`; this shell keeps the
states in memory or in ``<runtime_dir>/circuit_breaker.json``. Every change is a
read-modify-write under an exclusive ``flock`` (``circuit_breaker.json.lock``) and
an atomic replace, so several trading processes share one breaker per key and a
reader never sees a torn file. Reads are cached on the file's ``stat`` signature,
so ``allow_call`` does not parse JSON when nothing changed.

Deadlines on disk are wall-clock seconds (see :mod:`autoheal.guard.breaker_state`),
so a reboot, which restarts the monotonic clock, neither stretches a cooldown to the
previous uptime nor forgets it: the time the host was down counts toward it.

A corrupt breaker file is logged and treated as "all closed": the breaker is an
outage optimisation, while halting is the kill switch's job (``STOP.TXT``), and
a breaker that could never close again would be worse than a fresh one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoheal.guard import breaker_state as bs
from autoheal.guard._filelock import locked
from autoheal.guard._symbols import RISK_REDUCING_ACTIONS, normalize_action, normalize_symbol
from autoheal.guard.kill_switch import (
    FROM_ENV,
    RUNTIME_DIR_ENV,
    FromEnv,
    PathArg,
    absolute_runtime_dir,
)
from autoheal.store import layout as runtime_files
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = ["BREAKER_FILENAME", "GLOBAL_KEY", "CircuitBreaker"]

BREAKER_FILENAME = runtime_files.BREAKERS
GLOBAL_KEY = "*"
BREAKER_OPEN_REASON = "outage_circuit_breaker_active"

log = logging.getLogger("autoheal.guard.breaker")

_StatSig = tuple[int, int, int, int]


class CircuitBreaker:
    """Per-key breakers with an injectable clock, optionally persisted and shared.

    Args:
        runtime_dir: where ``circuit_breaker.json`` lives (absolute: ``ValueError``
            otherwise); by default ``AUTOHEAL_RUNTIME_DIR`` when set, else in memory;
            ``None`` keeps state in memory.
        policy: thresholds, window and cooldown.
        time_fn: the clock (monotonic seconds); tests pass a fake.
        wall_fn: the wall clock, used only to store deadlines that survive a reboot.
            Default ``time.time``; when only a fake ``time_fn`` is given, that fake
            serves as both clocks, so a test has one clock to move.
    """

    def __init__(
        self,
        runtime_dir: PathArg | FromEnv | None = FROM_ENV,
        policy: bs.BreakerPolicy | None = None,
        *,
        time_fn: Callable[[], float] = time.monotonic,
        wall_fn: Callable[[], float] | None = None,
    ) -> None:
        self.policy = policy or bs.BreakerPolicy()
        self._time_fn = time_fn
        self._wall_fn = wall_clock_for(time_fn, wall_fn)
        source = "runtime_dir"
        if runtime_dir is FROM_ENV:
            runtime_dir, source = os.environ.get(RUNTIME_DIR_ENV) or None, RUNTIME_DIR_ENV
        self._path = (
            None
            if runtime_dir is None
            else absolute_runtime_dir(runtime_dir, what="CircuitBreaker", source=source)
            / BREAKER_FILENAME
        )
        self._keys: dict[str, bs.KeyState] = {}
        self._sig: _StatSig | None = None

    # -- queries -------------------------------------------------------------------------

    def state(self, key: str | None = None) -> str:
        """``closed``, ``open`` or ``half_open`` for ``key`` (default: the global breaker)."""
        return self._current(self._key(key), self._time_fn()).state

    def allow_call(self, action: str = "buy", key: str | None = None) -> tuple[bool, str | None]:
        """May a call for ``action`` on ``key`` go ahead now?

        The global breaker and the key's own both apply. While either is open only
        risk-reducing actions (sell, cancel, close) pass, if the policy allows them.

        Returns:
            ``(True, None)`` or ``(False, "outage_circuit_breaker_active")``.
        """
        now = self._time_fn()
        keys = {GLOBAL_KEY, self._key(key)}
        if all(self._current(k, now).state != bs.OPEN for k in keys):
            return True, None
        act = normalize_action(action)
        if act in RISK_REDUCING_ACTIONS and self.policy.allow_risk_reducing_when_open:
            return True, None
        return False, BREAKER_OPEN_REASON

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every known key with its state, counts, remaining cooldown and last reason."""
        now = self._time_fn()
        self._refresh()
        out: dict[str, dict[str, Any]] = {}
        for key in sorted(self._keys):
            ks = bs.advance(self._keys[key], now, self.policy)
            remaining = 0.0 if ks.state != bs.OPEN or ks.open_until is None else ks.open_until - now
            out[key] = {
                "state": ks.state,
                "consecutive_failures": ks.consecutive_failures,
                "failures_in_window": len(ks.failure_times),
                "cooldown_remaining_s": round(max(0.0, remaining), 3),
                "half_open_successes": ks.half_open_successes,
                "last_reason": ks.last_reason,
                "trips": ks.trips,
            }
        return out

    # -- changes -------------------------------------------------------------------------

    def record_failure(
        self, key: str | None = None, *, category: str = "transient", reason: str = ""
    ) -> str:
        """Count a failed call; returns the key's new state."""
        k = self._key(key)

        def change(ks: bs.KeyState, now: float) -> bs.KeyState:
            return bs.on_failure(ks, now, self.policy, category=category, reason=reason)

        return self._mutate(k, change)

    def record_success(self, key: str | None = None) -> str:
        """Count a successful call; returns the key's new state."""
        k = self._key(key)
        now = self._time_fn()
        current = self._current(k, now)
        if current.state == bs.CLOSED and current.consecutive_failures == 0:
            return bs.CLOSED  # the common case: nothing to write, no lock taken

        def change(ks: bs.KeyState, now: float) -> bs.KeyState:
            return bs.on_success(ks, now, self.policy)

        return self._mutate(k, change)

    def reset(self, key: str | None = None) -> None:
        """Close one key's breaker and forget its failures (an operator's action)."""
        self._mutate(self._key(key), lambda _ks, _now: bs.KeyState())

    def reset_all(self) -> None:
        """Close every breaker (an operator's action)."""
        if self._path is None:
            self._keys = {}
            return
        with locked(self._path):
            write_json_atomic(self._path, bs.keys_to_doc({}, self._time_fn(), self._wall_fn()))
        log.warning("[breaker] reset_all")
        self._refresh(force=True)

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _key(key: str | None) -> str:
        if key is None or key == GLOBAL_KEY:
            return GLOBAL_KEY
        return normalize_symbol(key) or GLOBAL_KEY

    def _current(self, key: str, now: float) -> bs.KeyState:
        self._refresh()
        return bs.advance(self._keys.get(key, bs.KeyState()), now, self.policy)

    def _mutate(self, key: str, change: Callable[[bs.KeyState, float], bs.KeyState]) -> str:
        if self._path is None:
            now = self._time_fn()
            before = self._keys.get(key, bs.KeyState())
            after = change(before, now)
            self._keys[key] = after
            self._log_transition(key, bs.advance(before, now, self.policy), after)
            return after.state
        with locked(self._path):
            self._refresh(force=True)
            now = self._time_fn()
            before = self._keys.get(key, bs.KeyState())
            after = change(before, now)
            keys = dict(self._keys)
            keys[key] = after
            write_json_atomic(self._path, bs.keys_to_doc(keys, now, self._wall_fn()))
            self._refresh(force=True)
        self._log_transition(key, bs.advance(before, now, self.policy), after)
        return after.state

    def _log_transition(self, key: str, before: bs.KeyState, after: bs.KeyState) -> None:
        if before.state != after.state:
            log.warning(
                "[breaker] key=%s %s -> %s reason=%s consecutive_failures=%d",
                key,
                before.state,
                after.state,
                after.last_reason or "-",
                after.consecutive_failures,
            )

    def _refresh(self, *, force: bool = False) -> None:
        if self._path is None:
            return
        try:
            st = os.stat(self._path)
            sig: _StatSig | None = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        except FileNotFoundError:
            sig = None
        if not force and sig == self._sig:
            return
        self._sig = sig
        self._keys = {} if sig is None else self._parse()

    def _parse(self) -> dict[str, bs.KeyState]:
        if self._path is None:
            return {}
        keys = load_breaker_keys(self._path, self._time_fn(), self._wall_fn())
        return {} if keys is None else keys


def wall_clock_for(
    time_fn: Callable[[], float], wall_fn: Callable[[], float] | None
) -> Callable[[], float]:
    """The wall clock paired with ``time_fn``: ``wall_fn``, else ``time.time`` for the real
    monotonic clock, else ``time_fn`` itself (a test's one fake clock serves as both)."""
    if wall_fn is not None:
        return wall_fn
    return time.time if time_fn is time.monotonic else time_fn


def load_breaker_keys(path: Path, now: float, wall_now: float) -> dict[str, bs.KeyState] | None:
    """Every key of ``circuit_breaker.json`` in the reader's clock (the breaker's and the
    gate's one way to read it); ``None`` when missing or unreadable (logged)."""
    result = read_json(path)
    keys = bs.keys_from_doc(result.doc, now, wall_now)
    if keys is None and result.reason != "missing":
        log.warning(
            "[breaker] %s unreadable (%s); treating all keys as closed",
            path,
            result.reason or "no keys",
        )
    return keys
