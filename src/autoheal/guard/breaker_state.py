"""Circuit-breaker math: pure functions of (state, now, policy), no clock, no files.

Theory of operation (the outage-drill reference table)::

    closed ──(failure_threshold consecutive counted failures,
              or window_failures within window_s)──▶ open
    open ────(now ≥ open_until = opened_at + cooldown_s)──▶ half_open
    half_open ─(half_open_required_successes successes)──▶ closed
    half_open ─(one counted failure)──▶ open, with a fresh cooldown

Only failures in ``policy.counted_categories`` (transient and rate-limit by
default) count: an ``insufficient_funds`` says nothing about an outage. A success
while closed resets the *consecutive* count but not the window, so three failures
within 60 s trip even with successes between them. While open, successes and
failures change nothing but the last reason: only time moves it to half_open.

Times in a :class:`KeyState` are whatever clock the shell passes in
(``time.monotonic`` by default). On disk they are *wall-clock* seconds
(``"clock": "wall"``): the monotonic clock restarts at every boot, the wall clock
does not. :func:`keys_to_doc` converts with the writer's pair of clock readings
and :func:`keys_from_doc` back with the reader's, so a deadline means the same
instant in every process and after a reboot: the time the host was down counts
toward the cooldown. Times that still lie in the future after the conversion (the
wall clock was set back) are clamped to ``now``, keeping the stored cooldown length:
a deadline is never further away than one cooldown. A file without
``"clock": "wall"`` (written by an older version) is read as monotonic seconds,
with the same clamp.

:func:`still_open` is the one deadline test: the breaker and the trading gate both
decide "open or not" through it, over keys parsed by :func:`keys_from_doc`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "BreakerPolicy",
    "KeyState",
    "advance",
    "key_from_doc",
    "key_to_doc",
    "keys_from_doc",
    "keys_to_doc",
    "on_failure",
    "on_success",
    "still_open",
]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
_STATES = (CLOSED, OPEN, HALF_OPEN)
WALL = "wall"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker trips and recovers.

    Attributes:
        failure_threshold: consecutive counted failures that trip it (0 disables the rule).
        window_failures: counted failures within ``window_s`` that trip it (0 disables).
        window_s: the window of the windowed rule, inclusive at both ends.
        cooldown_s: how long it stays open before allowing half-open probes.
        half_open_required_successes: successes in half_open that close it.
        allow_risk_reducing_when_open: let sells/cancels through while open.
        counted_categories: failure categories that count toward tripping.
    """

    failure_threshold: int = 5
    window_failures: int = 3
    window_s: float = 60.0
    cooldown_s: float = 120.0
    half_open_required_successes: int = 2
    allow_risk_reducing_when_open: bool = True
    counted_categories: frozenset[str] = field(default=frozenset({"transient", "rate_limit"}))

    def __post_init__(self) -> None:
        if self.failure_threshold < 0 or self.window_failures < 0:
            raise ValueError("failure_threshold and window_failures must be >= 0")
        if self.failure_threshold == 0 and self.window_failures == 0:
            raise ValueError("at least one of failure_threshold and window_failures must be > 0")
        for name in ("window_s", "cooldown_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.half_open_required_successes < 1:
            raise ValueError("half_open_required_successes must be >= 1")


@dataclass(frozen=True, slots=True)
class KeyState:
    """The breaker of one key (a symbol, or ``"*"`` for the exchange as a whole)."""

    state: str = CLOSED
    consecutive_failures: int = 0
    failure_times: tuple[float, ...] = ()
    opened_at: float | None = None
    open_until: float | None = None
    half_open_successes: int = 0
    last_reason: str = ""
    trips: int = 0


def _open(ks: KeyState, now: float, policy: BreakerPolicy, reason: str) -> KeyState:
    return replace(
        ks,
        state=OPEN,
        opened_at=now,
        open_until=now + policy.cooldown_s,
        half_open_successes=0,
        last_reason=reason,
        trips=ks.trips + 1,
    )


def still_open(open_until: float | None, now: float) -> bool:
    """Whether an open breaker's deadline ``open_until`` is still ahead of ``now``."""
    return open_until is not None and now < open_until


def advance(ks: KeyState, now: float, policy: BreakerPolicy) -> KeyState:
    """Apply the passage of time: open → half_open once the cooldown is over; prune the window."""
    if ks.state == OPEN and ks.open_until is not None and not still_open(ks.open_until, now):
        ks = replace(ks, state=HALF_OPEN, half_open_successes=0)
    if ks.failure_times and now - ks.failure_times[0] > policy.window_s:
        ks = replace(
            ks, failure_times=tuple(t for t in ks.failure_times if now - t <= policy.window_s)
        )
    return ks


def on_failure(
    ks: KeyState,
    now: float,
    policy: BreakerPolicy,
    *,
    category: str = "transient",
    reason: str = "",
) -> KeyState:
    """The state after a failed call at ``now``; uncounted categories only update the reason."""
    ks = advance(ks, now, policy)
    if category not in policy.counted_categories:
        return ks
    ks = replace(
        ks,
        consecutive_failures=ks.consecutive_failures + 1,
        failure_times=(*ks.failure_times, now),
        last_reason=reason or ks.last_reason,
    )
    if ks.state == HALF_OPEN:
        return _open(ks, now, policy, reason)
    if ks.state == OPEN:
        return ks
    consecutive_hit = (
        policy.failure_threshold and ks.consecutive_failures >= policy.failure_threshold
    )
    window_hit = policy.window_failures and len(ks.failure_times) >= policy.window_failures
    return _open(ks, now, policy, reason) if consecutive_hit or window_hit else ks


def on_success(ks: KeyState, now: float, policy: BreakerPolicy) -> KeyState:
    """The state after a successful call at ``now``."""
    ks = advance(ks, now, policy)
    if ks.state == CLOSED:
        return replace(ks, consecutive_failures=0) if ks.consecutive_failures else ks
    if ks.state == HALF_OPEN:
        successes = ks.half_open_successes + 1
        if successes >= policy.half_open_required_successes:
            return KeyState(trips=ks.trips, last_reason=ks.last_reason)
        return replace(ks, half_open_successes=successes)
    return ks


def _shift(t: float | None, offset: float) -> float | None:
    return None if t is None else t + offset


def key_to_doc(
    ks: KeyState, *, mono_now: float | None = None, wall_now: float | None = None
) -> dict[str, Any]:
    """The JSON form of one key; with both clock readings its times become wall-clock."""
    offset = 0.0 if mono_now is None or wall_now is None else wall_now - mono_now
    return {
        "state": ks.state,
        "consecutive_failures": ks.consecutive_failures,
        "failure_times": [t + offset for t in ks.failure_times],
        "opened_at": _shift(ks.opened_at, offset),
        "open_until": _shift(ks.open_until, offset),
        "half_open_successes": ks.half_open_successes,
        "last_reason": ks.last_reason,
        "trips": ks.trips,
    }


def keys_to_doc(keys: dict[str, KeyState], mono_now: float, wall_now: float) -> dict[str, Any]:
    """The whole ``circuit_breaker.json`` document, times in wall-clock seconds."""
    return {
        "schema": 1,
        "clock": WALL,
        "keys": {k: key_to_doc(v, mono_now=mono_now, wall_now=wall_now) for k, v in keys.items()},
    }


def keys_from_doc(doc: Any, now: float, wall_now: float) -> dict[str, KeyState] | None:
    """Every valid key of a ``circuit_breaker.json`` document, in the reader's clock.

    Args:
        doc: the parsed document.
        now: the reader's clock (the one its :class:`KeyState` times are in).
        wall_now: the wall clock read at the same moment.

    Returns:
        The keys (invalid ones left out), or ``None`` if it is not a breaker document.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict):
        return None
    wall = wall_now if doc.get("clock") == WALL else None
    out: dict[str, KeyState] = {}
    for key, kdoc in doc["keys"].items():
        ks = key_from_doc(kdoc, now, wall_now=wall)
        if ks is not None:
            out[str(key)] = ks
    return out


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def key_from_doc(doc: Any, now: float, *, wall_now: float | None = None) -> KeyState | None:
    """Parse one key's document; ``None`` if it is not a valid breaker state.

    Args:
        doc: one key's JSON form.
        now: the reader's clock.
        wall_now: the wall clock at the same moment when the stored times are wall-clock;
            ``None`` when they are already in the reader's clock.
    """
    if not isinstance(doc, dict) or doc.get("state") not in _STATES:
        return None
    times = doc.get("failure_times", [])
    if not isinstance(times, list):
        return None
    offset = 0.0 if wall_now is None else now - wall_now

    def local(value: Any) -> float | None:
        stored = _finite(value)
        return None if stored is None else min(stored + offset, now)

    parsed = tuple(t for t in (local(x) for x in times) if t is not None)
    stored_opened, stored_until = _finite(doc.get("opened_at")), _finite(doc.get("open_until"))
    opened_at = local(stored_opened)
    open_until: float | None = None
    if stored_until is not None and stored_opened is not None and opened_at is not None:
        # Keep the stored cooldown length, anchored at the (possibly clamped) opening time:
        # never more than one cooldown ahead of now.
        open_until = opened_at + max(0.0, stored_until - stored_opened)
    if doc["state"] == OPEN and open_until is None:
        return None
    ints = [doc.get(k, 0) for k in ("consecutive_failures", "half_open_successes", "trips")]
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in ints):
        return None
    reason = doc.get("last_reason", "")
    return KeyState(
        state=doc["state"],
        consecutive_failures=ints[0],
        failure_times=parsed,
        opened_at=opened_at,
        open_until=open_until,
        half_open_successes=ints[1],
        last_reason=reason if isinstance(reason, str) else "",
        trips=ints[2],
    )
