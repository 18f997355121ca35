"""Execution throttles (RTS 6 Art. 15(1)(a), 15(1)(d), 15(3)): what the numbers mean.

Pure and stdlib only: every function takes ``now`` and the recorded past and reads no
clock and no file; :class:`~autoheal.guard.risk.RiskGuard` keeps the past and acts.

* **Message limits** (``max_submits_per_s``, ``max_modifies_per_s``,
  ``max_cancels_per_s``): each strategy's submits, modifies and cancels in the last
  second (:data:`MESSAGE_WINDOW_S`), counted separately per strategy; the same limit
  applies to every strategy (no per-strategy overrides: one runaway strategy must not
  be able to borrow another's budget, and one number is what an operator audits).
  A submit over ``max_submits_per_s`` or a modify over ``max_modifies_per_s`` is
  refused (``risk_message_rate``). **A cancel is never refused**: refusing it would
  keep an order resting, i.e. keep risk open. Cancels are counted; a strategy whose
  cancels in the window reach ``max_cancels_per_s`` has its *submits and modifies*
  refused until the cancel rate falls (a cancel storm is a broken algorithm; the
  brake is on what adds orders, never on what removes them).
* **Collar over a window** (``collar_window_pct`` over ``collar_window_s``): the
  reference is the *oldest* mark of the symbol seen within the last
  ``collar_window_s`` seconds (marks are recorded on every check); an order whose
  price (its limit price, else the current mark) is more than ``collar_window_pct``
  percent from it is refused (``risk_collar_window``). A slow drift is allowed as the
  window slides; a jump inside one window is not.
* **Repeated executions** (``max_repeated_executions`` within
  ``repeated_execution_window_s``): the fills of one strategy/symbol/side scope; the
  ``N``-th within the window disables that scope (:func:`repeated_execution`), until
  an operator re-enables it by name (``autoheal risk enable SCOPE``). The disables are
  the latch document ``risk_scope_latches.json`` (:func:`parse_latches`):
  ``{"latches": {scope: {"reason", "since", "executions", "window_s"}}}``. Fail
  closed: a document that is not that shape (or a key that is not a scope) refuses
  every order (its scope could be any); an entry whose key is a scope but whose body
  is garbage still disables that scope.

A bad time (NaN, infinity, not a number) makes the check refuse with
``risk_invalid_time``, never count nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# symbols compare as the scoped halts compare them (a ccxt settle suffix cut)
from autoheal.guard.scopes import scope_symbol as normalize_symbol

__all__ = [
    "GARBAGE_SCOPE",
    "KINDS",
    "LATCH_REASON",
    "LIMIT_KEYS",
    "MESSAGE_WINDOW_S",
    "SCOPE_KINDS",
    "LatchView",
    "canonical_scope",
    "collar_window_check",
    "execution_scope",
    "latch_entry",
    "latched_scope",
    "message_check",
    "message_rates",
    "parse_latches",
    "parse_scope",
    "prune",
    "repeated_execution",
]

#: The message kinds counted per strategy.
KINDS = ("submit", "modify", "cancel")
#: The ``[risk]`` key of each kind's limit.
LIMIT_KEYS = {
    "submit": "max_submits_per_s",
    "modify": "max_modifies_per_s",
    "cancel": "max_cancels_per_s",
}
#: Message limits count the messages of the last second.
MESSAGE_WINDOW_S = 1.0
#: The reason token of a scope disabled by the repeated-execution throttle.
LATCH_REASON = "risk_repeated_execution"
#: The kinds of a scope string, in their fixed order.
SCOPE_KINDS = ("strategy", "symbol", "venue", "side")
#: What a garbage latch document disables: everything.
GARBAGE_SCOPE = "all"
_HUNDRED = Decimal(100)
_MAX_VALUE = 64
_MAX_RAW = 200  # of a garbage entry kept for the operator (a file must not flood a log)


def _finite(*times: object) -> str | None:
    """Why a time is unusable (a NaN compares false and would count nothing), or None."""
    for t in times:
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            return f"{t!r} is not a finite time"
    return None


def prune(times: Iterable[float], now: float, window_s: float) -> tuple[float, ...]:
    """The times within ``(now - window_s, now]`` (a time in the future is kept: fail closed)."""
    return tuple(t for t in times if t > now - window_s)


# -- message limits ---------------------------------------------------------------------------
def message_rates(history: Mapping[str, Iterable[float]], now: float) -> dict[str, int]:
    """Messages of each kind in the last :data:`MESSAGE_WINDOW_S` (per second)."""
    return {k: len(prune(history.get(k, ()), now, MESSAGE_WINDOW_S)) for k in KINDS}


def message_check(
    kind: str,
    strategy: str,
    history: Mapping[str, Iterable[float]],
    now: float,
    limits: Mapping[str, int | None],
) -> tuple[str, str] | None:
    """Whether one more ``kind`` message of ``strategy`` may go: ``None``, or ``(token, detail)``.

    ``limits`` maps a kind to its per-second limit (``None``: no limit); ``history``
    the strategy's own send times per kind. A cancel is never refused (see the module).
    """
    if kind not in KINDS:
        return "risk_message_rate", f"strategy={strategy} kind={kind!r} is not a message kind"
    if kind == "cancel":
        return None
    bad = _finite(now, *(t for k in KINDS for t in history.get(k, ())))
    if bad is not None:
        return "risk_invalid_time", f"{bad}: the message limits cannot count"
    rates = message_rates(history, now)
    for k in (kind, "cancel"):
        limit = limits.get(k)
        if limit is not None and rates[k] >= limit:
            detail = (
                f"strategy={strategy} kind={k} sent_last_1s={rates[k]} >= {LIMIT_KEYS[k]}={limit}"
            )
            if k != kind:
                detail += f" ({kind} refused while the cancel rate is at its limit)"
            return "risk_message_rate", detail
    return None


# -- the collar over a window -----------------------------------------------------------------
def collar_window_check(
    pct: Decimal,
    window_s: float,
    marks: Iterable[tuple[float, Decimal]],
    price: Decimal | None,
    now: float,
    *,
    symbol: str,
) -> tuple[str, str] | None:
    """Whether ``price`` is within ``pct`` percent of the window's reference (its oldest mark).

    ``marks``: ``(time, mark)`` of the symbol as seen, the current one included. No
    usable mark in the window, or no price: refused (no reference, nothing to measure).
    """
    seen = tuple(marks)
    bad = _finite(now, *(t for t, _ in seen))
    if bad is not None:
        return "risk_invalid_time", f"{bad}: the window collar cannot measure"
    usable = sorted(
        (t, m)
        for t, m in seen
        if t > now - window_s and type(m) is Decimal and m.is_finite() and m > 0
    )
    if not usable:
        return "risk_collar_window", f"symbol={symbol}: no mark in the last {window_s:g}s"
    ref_t, ref = usable[0]
    if price is None or type(price) is not Decimal or not price.is_finite() or price <= 0:
        return "risk_collar_window", f"symbol={symbol} price={price!r}: nothing to measure"
    off = abs(price - ref) / ref * _HUNDRED
    if off > pct:
        return (
            "risk_collar_window",
            f"symbol={symbol} price={_n(price)} window_reference={_n(ref)} "
            f"(oldest mark of the last {window_s:g}s, {now - ref_t:.3f}s ago) "
            f"off_pct={off:.4f} > collar_window_pct={_n(pct)}",
        )
    return None


def _n(value: Decimal) -> str:
    return format(value.normalize(), "f")


# -- repeated executions ----------------------------------------------------------------------
def execution_scope(strategy: str, symbol: str, side: str) -> str:
    """The scope string of a strategy/symbol/side (``strategy=grid,symbol=BTCUSDT,side=buy``)."""
    return f"strategy={strategy},symbol={normalize_symbol(symbol)},side={str(side).lower()}"


def repeated_execution(
    fills: Iterable[float], now: float, n: int, window_s: float
) -> tuple[bool, int]:
    """``(disable, count)``: whether the scope's fills within the window reached ``n``.

    A fill time that is not finite counts (fail closed: it may be inside the window).
    """
    count = 0
    for t in fills:
        if _finite(t) is not None or t > now - window_s:
            count += 1
    return count >= n, count


def latch_entry(since: float, executions: int, window_s: float) -> dict[str, Any]:
    """The body of a latch, as the contract has it."""
    return {
        "reason": LATCH_REASON,
        "since": since,
        "executions": executions,
        "window_s": window_s,
    }


def parse_scope(text: object) -> dict[str, str] | None:
    """``kind -> value`` of a scope string, or ``None`` when it is not one.

    Kinds in the fixed order :data:`SCOPE_KINDS`, each once; symbols normalised,
    sides ``buy``/``sell``; ``all`` is the empty scope (every order).
    """
    if not isinstance(text, str):
        return None
    if text.strip() == "all":
        return {}
    out: dict[str, str] = {}
    last = -1
    for part in text.split(","):
        kind, sep, value = part.strip().partition("=")
        value = value.strip()
        if not sep or kind not in SCOPE_KINDS or not value or len(value) > _MAX_VALUE:
            return None
        at = SCOPE_KINDS.index(kind)
        if at <= last:
            return None
        last = at
        if kind == "symbol":
            value = normalize_symbol(value)
        elif kind == "side":
            value = value.lower()
            if value not in ("buy", "sell"):
                return None
        if not value or not all(c.isalnum() or c in "._:/-" for c in value):
            return None
        out[kind] = value
    return out


def canonical_scope(parts: Mapping[str, str]) -> str:
    """The scope string of parsed parts, in the fixed order."""
    if not parts:
        return "all"
    return ",".join(f"{k}={parts[k]}" for k in SCOPE_KINDS if k in parts)


@dataclass(frozen=True, slots=True)
class LatchView:
    """What ``risk_scope_latches.json`` says: the scopes disabled, or why it is garbage."""

    latches: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Not empty: the document cannot be trusted, every order is refused.
    garbage: str = ""


def parse_latches(doc: object) -> LatchView:
    """Read a decoded latch document, failing closed (see the module doc)."""
    if not isinstance(doc, dict) or set(doc) - {"latches"}:
        return LatchView(garbage="not a document with only the key 'latches'")
    raw = doc.get("latches")
    if not isinstance(raw, dict):
        return LatchView(garbage="'latches' is not an object")
    latches: dict[str, Mapping[str, Any]] = {}
    for key, body in raw.items():
        parts = parse_scope(key)
        if parts is None:
            return LatchView(garbage=f"latch key {str(key)[:80]!r} is not a scope")
        entry = (
            body
            if _entry_ok(body)
            else {"reason": LATCH_REASON, "unreadable": str(body)[:_MAX_RAW]}
        )
        latches[canonical_scope(parts)] = entry
    return LatchView(latches)


def _entry_ok(body: object) -> bool:
    if not isinstance(body, dict) or body.get("reason") != LATCH_REASON:
        return False
    since, n, w = body.get("since"), body.get("executions"), body.get("window_s")
    return (
        _finite(since) is None
        and isinstance(n, int)
        and not isinstance(n, bool)
        and _finite(w) is None
    )


def latched_scope(
    view: LatchView,
    *,
    strategy: str | None,
    symbol: str | None,
    side: str,
    venue: str | None = None,
) -> str | None:
    """The latched scope an order falls in (``"all"`` for a garbage document), or ``None``.

    An order is in a scope when every kind the scope names equals the order's; a
    kind the order does not give (``None``: a gate asked without the strategy) matches
    (fail closed: it may be that strategy's order).
    """
    if view.garbage:
        return GARBAGE_SCOPE
    order = {
        "strategy": strategy,
        "symbol": None if symbol is None else normalize_symbol(symbol),
        "side": str(side).lower(),
        "venue": venue,
    }
    for scope in sorted(view.latches):
        parts = parse_scope(scope) or {}
        if all(order[k] is None or order[k] == v for k, v in parts.items()):
            return scope
    return None
