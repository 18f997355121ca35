"""The money side of the status page: what the guard's files say about risk, as one document.

The status page, ``/status`` and ``autoheal status --json`` show the risk headroom
(the day's loss and the drawdown used against their limits, each position against
``max_position``, each strategy's message rate against its limit), the scoped halts,
the repeated-execution latches, the breakers, each venue's dead man's switch
countdown and the last reconciliation. The shell (:mod:`autoheal.daemon.risk_files`)
reads the files; this module says what they mean for an operator. Pure: the files
come in as :class:`FileRead` values, ``now`` (wall seconds) as an argument.

The rules, each a way a panel could reassure wrongly:

* A file that cannot be read or parsed is ``unreadable`` with a short why, never an
  empty list: "no halts" and "cannot tell" must not look alike. A missing file is
  ``missing`` (a runtime without that part), shown as "—".
* A number that is not a finite Decimal makes its part ``unreadable``; a used amount
  without a limit is shown with ``no_limit``, never as headroom.
* Headroom: ``ok`` below :data:`NEAR_PCT` of the limit, ``near`` from there,
  ``breach`` at or past it.
* Lists are bounded (:data:`MAX_ROWS`, the rest counted in ``more``) and every text
  from a file is cut to :data:`MAX_TEXT` characters: a huge or hostile file cannot
  make the page large.

The fields the other parts of issue 24 write (``scoped_halts``, the latches, the
drawdown, message rates, reconciliation) are read by the contract in the issue's
notes; the deadman countdown comes from a trader heartbeat's ``deadman`` object:
``{venue: {"phase": "armed", "expires_at": unix_s, "countdown_s": s}}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

__all__ = [
    "MAX_ROWS",
    "MAX_TEXT",
    "NEAR_PCT",
    "FileRead",
    "RiskLimitsView",
    "headroom",
    "risk_view",
]

NEAR_PCT = 80
MAX_ROWS = 50
MAX_TEXT = 200
_MAX_ABS = Decimal("1e30")
_KINDS = ("submit", "modify", "cancel")

ReadState = Literal["ok", "missing", "unreadable"]


@dataclass(frozen=True, slots=True)
class FileRead:
    """One file as the shell found it: ``ok`` with its document, ``missing``, or ``unreadable``."""

    state: ReadState
    doc: Mapping[str, Any] | None = None
    detail: str = ""


MISSING = FileRead("missing")


@dataclass(frozen=True, slots=True)
class RiskLimitsView:
    """The ``[risk]`` limits the panel compares against (``None``: no limit)."""

    max_daily_loss: Decimal | None = None
    max_drawdown: Decimal | None = None
    max_position: Decimal | None = None
    max_position_by_symbol: Mapping[str, Decimal | None] = field(default_factory=dict)
    max_messages_per_second: Mapping[str, Decimal | None] = field(default_factory=dict)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a string or a number (not a bool), within a sane range."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(value) if not isinstance(value, float) else Decimal(repr(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number.copy_abs() > _MAX_ABS:
        return None
    return number


def _time(value: Any) -> float | None:
    number = _decimal(value)
    return None if number is None or number < 0 else float(number)


def headroom(used: Decimal | None, limit: Decimal | None) -> dict[str, Any]:
    """``used`` against ``limit``: the amounts as strings, the percentage and a state."""
    doc: dict[str, Any] = {
        "used": None if used is None else str(used),
        "limit": None if limit is None else str(limit),
        "used_pct": None,
    }
    if used is None:
        doc["state"] = "unknown"
    elif limit is None:
        doc["state"] = "no_limit"
    elif limit <= 0:
        doc["state"] = "breach" if used > 0 else "ok"
    else:
        pct = float(used / limit * 100)
        doc["used_pct"] = round(pct, 1)
        doc["state"] = "breach" if pct >= 100 else "near" if pct >= NEAR_PCT else "ok"
    return doc


def _bounded(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"rows": rows[:MAX_ROWS], "more": max(0, len(rows) - MAX_ROWS)}


def _part(read: FileRead) -> dict[str, Any] | None:
    """The state of a part whose file is not ``ok``; None when it is."""
    if read.state == "ok" and read.doc is not None:
        return None
    return {"state": read.state, "detail": _text(read.detail), "rows": [], "more": 0}


def _loss(read: FileRead, today: str, limit: Decimal | None) -> dict[str, Any]:
    if read.state != "ok" or read.doc is None:
        return {**headroom(None, limit), "state": read.state, "detail": _text(read.detail)}
    doc = read.doc
    day, realized = doc.get("day"), _decimal(doc.get("realized_pnl"))
    if not isinstance(day, str) or realized is None:
        return {**headroom(None, limit), "state": "unreadable", "detail": "realized_pnl"}
    # An earlier day's document: today starts at zero (the guard rolls it the same way).
    loss = max(Decimal(0), -realized) if day >= today else Decimal(0)
    view = headroom(loss, limit)
    return {
        **view,
        "day": _text(day),
        "realized_pnl": str(realized),
        "latched": doc.get("loss_latched") is True,
        "file": "ok",
    }


def _drawdown(read: FileRead, limit: Decimal | None) -> dict[str, Any]:
    if read.state != "ok" or read.doc is None:
        return {**headroom(None, limit), "state": read.state}
    doc = read.doc
    if "drawdown" not in doc:
        return {**headroom(None, limit), "state": "absent"}  # not written by this guard yet
    values = {k: _decimal(doc.get(k)) for k in ("peak_equity", "equity", "drawdown")}
    reads = doc.get("breach_reads", 0)
    if values["drawdown"] is None or isinstance(reads, bool) or not isinstance(reads, int):
        return {**headroom(None, limit), "state": "unreadable", "detail": "drawdown"}
    view = headroom(values["drawdown"].copy_abs(), limit)
    return {
        **view,
        **{k: None if v is None else str(v) for k, v in values.items()},
        "breach_reads": reads,
    }


def _positions(read: FileRead, limits: RiskLimitsView) -> dict[str, Any]:
    bad = _part(read)
    if bad is not None:
        return bad
    basis = (read.doc or {}).get("cost_basis", {})
    if not isinstance(basis, Mapping):
        return {"state": "unreadable", "detail": "cost_basis", "rows": [], "more": 0}
    rows = []
    for symbol, body in sorted(basis.items(), key=lambda kv: str(kv[0])):
        pos = _decimal(body.get("position")) if isinstance(body, Mapping) else None
        limit = limits.max_position_by_symbol.get(str(symbol), limits.max_position)
        rows.append(
            {
                "symbol": _text(symbol),
                "position": None if pos is None else str(pos),
                **headroom(None if pos is None else pos.copy_abs(), limit),
            }
        )
    return {"state": "ok", **_bounded(rows)}


def _rates(heartbeats: Mapping[str, FileRead], limits: RiskLimitsView) -> dict[str, Any]:
    rows = []
    for service, read in sorted(heartbeats.items()):
        risk = (read.doc or {}).get("risk") if read.state == "ok" else None
        rates = risk.get("message_rates") if isinstance(risk, Mapping) else None
        if not isinstance(rates, Mapping):
            continue
        for strategy, kinds in sorted(rates.items(), key=lambda kv: str(kv[0])):
            for kind in _KINDS:
                rate = _decimal(kinds.get(kind)) if isinstance(kinds, Mapping) else None
                rows.append(
                    {
                        "service": _text(service),
                        "strategy": _text(strategy),
                        "kind": kind,
                        **headroom(rate, limits.max_messages_per_second.get(kind)),
                    }
                )
    return {"state": "ok" if rows else "missing", **_bounded(rows)}


def _scoped(read: FileRead, key: str, fields: Iterable[str]) -> dict[str, Any]:
    """``{scope: {...}}`` under ``key``: one row per scope with ``fields`` kept."""
    bad = _part(read)
    if bad is not None:
        return bad
    entries = (read.doc or {}).get(key, {})
    if not isinstance(entries, Mapping):
        return {"state": "unreadable", "detail": key, "rows": [], "more": 0}
    rows = []
    for scope, raw in sorted(entries.items(), key=lambda kv: str(kv[0])):
        body = raw if isinstance(raw, Mapping) else {}
        row: dict[str, Any] = {"scope": _text(scope)}
        for name in fields:
            value = body.get(name)
            row[name] = (
                value
                if isinstance(value, int | float) and not isinstance(value, bool)
                else _text(value)
            )
        rows.append(row)
    return {"state": "ok", **_bounded(rows)}


def _breakers(read: FileRead, now: float) -> dict[str, Any]:
    bad = _part(read)
    if bad is not None:
        return bad
    keys = (read.doc or {}).get("keys")
    if not isinstance(keys, Mapping):
        return {"state": "unreadable", "detail": "keys", "rows": [], "more": 0}
    rows = []
    for key, raw in sorted(keys.items(), key=lambda kv: str(kv[0])):
        body = raw if isinstance(raw, Mapping) else {}
        state = body.get("state")
        until = _time(body.get("open_until"))
        rows.append(
            {
                "key": _text(key),
                "state": state if state in ("closed", "open", "half_open") else "unreadable",
                "open_for_s": None
                if until is None or state != "open"
                else round(max(0.0, until - now), 1),
                "last_reason": _text(body.get("last_reason")),
                "trips": body.get("trips") if isinstance(body.get("trips"), int) else None,
            }
        )
    return {"state": "ok", **_bounded(rows)}


def _deadman(heartbeats: Mapping[str, FileRead], now: float) -> dict[str, Any]:
    rows = []
    for service, read in sorted(heartbeats.items()):
        venues = (read.doc or {}).get("deadman") if read.state == "ok" else None
        if not isinstance(venues, Mapping):
            continue
        for venue, raw in sorted(venues.items(), key=lambda kv: str(kv[0])):
            body = raw if isinstance(raw, Mapping) else {}
            expires = _time(body.get("expires_at"))
            rows.append(
                {
                    "service": _text(service),
                    "venue": _text(venue),
                    "phase": _text(body.get("phase")) or "unknown",
                    "expires_at": expires,
                    "left_s": None if expires is None else round(expires - now, 1),
                    "countdown_s": _time(body.get("countdown_s")),
                }
            )
    return {"state": "ok" if rows else "missing", **_bounded(rows)}


def _reconciliation(read: FileRead, now: float) -> dict[str, Any]:
    bad = _part(read)
    if bad is not None:
        return {"state": read.state, "detail": _text(read.detail)}
    doc = read.doc or {}
    ts, ok = _time(doc.get("ts")), doc.get("ok")
    unknown, missing = doc.get("unknown_at_venue"), doc.get("missing_at_venue")
    if (
        ts is None
        or not isinstance(ok, bool)
        or not isinstance(unknown, list)
        or not isinstance(missing, list)
    ):
        return {"state": "unreadable", "detail": "ts, ok, unknown_at_venue, missing_at_venue"}
    if ok and not unknown and not missing:
        state = "ok"
    elif doc.get("status") == "unknown" or (not ok and not unknown and not missing):
        # A pass that could not be done (a venue error, an unreadable ledger): not "ok",
        # and not "differences" with nothing in them either; its problem says why.
        state = "unknown"
    else:
        state = "differences"
    problem = doc.get("problem")
    return {
        "state": state,
        "problem": _text(problem) if isinstance(problem, str) and problem else None,
        "venue": _text(doc.get("venue")),
        "ts": ts,
        "age_s": round(max(0.0, now - ts), 1),
        "unknown_at_venue": len(unknown),
        "missing_at_venue": len(missing),
        "sample": [_text(x) for x in (unknown + missing)[:5]],
    }


def risk_view(
    *,
    now: float,
    limits: RiskLimitsView | None,
    pnl: FileRead = MISSING,
    flags: FileRead = MISSING,
    latches: FileRead = MISSING,
    breakers: FileRead = MISSING,
    reconciliation: FileRead = MISSING,
    heartbeats: Mapping[str, FileRead] | None = None,
) -> dict[str, Any]:
    """The ``risk`` document the page, ``/status`` and ``autoheal status --json`` show.

    Args:
        now: wall-clock seconds (ages, countdowns, today's UTC date).
        limits: the ``[risk]`` limits; None when the config has no ``[risk]``.
        pnl: ``risk_pnl.json`` (the day's realized P&L, cost basis, drawdown).
        flags: ``global_flags.json`` (``scoped_halts``).
        latches: ``risk_scope_latches.json``.
        breakers: ``circuit_breaker.json``.
        reconciliation: ``reconciliation.json``.
        heartbeats: each service's heartbeat (``risk.message_rates``, ``deadman``).
    """
    lim = limits or RiskLimitsView()
    beats = heartbeats or {}
    try:
        today = datetime.fromtimestamp(now, UTC).date().isoformat()
    except (OverflowError, ValueError, OSError):  # a NaN or absurd clock: no day rolls
        today = ""
    return {
        "ts": now,
        "limits_configured": limits is not None,
        "daily_loss": _loss(pnl, today, lim.max_daily_loss),
        "drawdown": _drawdown(pnl, lim.max_drawdown),
        "positions": _positions(pnl, lim),
        "message_rates": _rates(beats, lim),
        "scoped_halts": _scoped(flags, "scoped_halts", ("reason", "since", "set_by")),
        "latches": _scoped(latches, "latches", ("reason", "since", "executions", "window_s")),
        "breakers": _breakers(breakers, now),
        "deadman": _deadman(beats, now),
        "reconciliation": _reconciliation(reconciliation, now),
    }
