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

Times are whatever clock the shell passes in (``time.monotonic`` by default, which
is system-wide on Linux, so several processes agree on it). :func:`key_from_doc`
clamps times that lie in the future (a file written before a reboot) to ``now``:
the cooldown then restarts, which errs on the side of caution.
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
    "on_failure",
    "on_success",
]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
_STATES = (CLOSED, OPEN, HALF_OPEN)


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


def advance(ks: KeyState, now: float, policy: BreakerPolicy) -> KeyState:
    """Apply the passage of time: open → half_open once the cooldown is over; prune the window."""
    if ks.state == OPEN and ks.open_until is not None and now >= ks.open_until:
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


def key_to_doc(ks: KeyState) -> dict[str, Any]:
    """The JSON form stored in ``circuit_breaker.json``."""
    return {
        "state": ks.state,
        "consecutive_failures": ks.consecutive_failures,
        "failure_times": list(ks.failure_times),
        "opened_at": ks.opened_at,
        "open_until": ks.open_until,
        "half_open_successes": ks.half_open_successes,
        "last_reason": ks.last_reason,
        "trips": ks.trips,
    }


def _num(value: Any, now: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return min(float(value), now)


def key_from_doc(doc: Any, now: float) -> KeyState | None:
    """Parse one key's document; ``None`` if it is not a valid breaker state."""
    if not isinstance(doc, dict) or doc.get("state") not in _STATES:
        return None
    times = doc.get("failure_times", [])
    if not isinstance(times, list):
        return None
    parsed = tuple(t for t in (_num(x, now) for x in times) if t is not None)
    opened_at = _num(doc.get("opened_at"), now)
    open_until = doc.get("open_until")
    if (
        isinstance(open_until, int | float)
        and not isinstance(open_until, bool)
        and opened_at is not None
    ):
        # Keep the original cooldown length but anchor it at the (possibly clamped) opening time.
        cooldown = float(open_until) - float(doc["opened_at"])
        open_until = opened_at + max(0.0, cooldown)
    else:
        open_until = None
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
