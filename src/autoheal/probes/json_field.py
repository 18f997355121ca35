"""Pure judgement of one field of a JSON body: a timestamp's age, or a value it must equal.

The ``http_json`` probe fetches and decodes; what the field *means* is decided here,
from values alone (the field, the settings, both clocks), so the edge cases -- a
boolean where a number belongs, ``1`` against ``true``, an ISO string without an
offset, a timestamp from the future -- are tested without a server or a sleep.

A timestamp is unix seconds as a JSON number (``unit = "ms"``: milliseconds), or an
ISO-8601 string *with* an offset (``2026-12-07 19:00:00+00:00``, ``...Z``): a string
without one names no instant, and guessing the zone would make a stale bot look
fresh or a fresh one stale. As in :mod:`autoheal.probes.freshness`, the age is
``wall - ts`` (the writer's clock is the wall clock) and the deadline handed to the
runner is monotonic. A timestamp ahead of our wall clock counts as age 0 (the
detail says how far ahead): a clock skew between two hosts is not a failure of the
bot, and such a field still turns stale once it stops moving.

``equals`` compares within JSON's types: a string only to a string, a boolean only to
a boolean, a number to a number (``1`` equals ``1.0``; ``true`` never equals ``1``).
A field of another type is ``json_field_type``, a different value of the same type
``json_value_mismatch``.
"""

from __future__ import annotations

import math
from datetime import datetime

from autoheal.core.reasons import JSON_FIELD_TYPE, JSON_STALE, JSON_VALUE_MISMATCH
from autoheal.probes.result import ProbeResult

__all__ = ["Expected", "json_type", "judge_age", "judge_equals", "timestamp_of"]

#: What ``equals`` may be: a TOML string, integer, float or boolean.
Expected = str | int | float | bool

_SHOWN = 60  # characters of a field's value shown in a detail


def json_type(value: object) -> str:
    """JSON's name for a decoded value's type (``number``, not ``int``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def timestamp_of(value: object, unit: str = "s") -> float | str:
    """Unix seconds of a timestamp field, or why it is none.

    Args:
        value: the decoded field.
        unit: ``"s"`` or ``"ms"``, for a number; a string carries its own offset.

    Returns:
        Seconds since the epoch (finite), or a short reason it is not a timestamp.
    """
    if isinstance(value, bool):  # an int subclass; ``true`` is not 1970-01-01T00:00:01
        return "is a boolean, not a timestamp"
    if isinstance(value, int | float):
        try:
            seconds = float(value) / (1000.0 if unit == "ms" else 1.0)
        except OverflowError:  # an int too large for a float
            return "is a number too large for a timestamp"
        return seconds if math.isfinite(seconds) else "is not a finite number"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return f"is the string {_show(value)}, not an ISO-8601 timestamp"
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            return f"is {_show(value)}, an ISO-8601 timestamp without a UTC offset"
        return parsed.timestamp()
    return f"is {json_type(value)}, not a timestamp"


def judge_age(
    value: object,
    *,
    where: str,
    max_age: float,
    unit: str,
    now_wall: float,
    now_mono: float,
) -> ProbeResult:
    """Judge how old the timestamp ``value`` is.

    Args:
        value: the decoded field (already found: a missing one never gets here).
        where: the pointer, for the detail.
        max_age: the oldest acceptable age in seconds.
        unit: ``"s"`` or ``"ms"`` for a numeric timestamp.
        now_wall: the current unix time.
        now_mono: the current monotonic time, for ``recheck_at``.

    Returns:
        ok with the age as ``value`` and ``recheck_at`` at the moment the age passes
        ``max_age``; ``json_stale`` when older; ``json_field_type`` when ``value`` is
        not a timestamp.
    """
    ts = timestamp_of(value, unit)
    if isinstance(ts, str):
        return ProbeResult(False, JSON_FIELD_TYPE, None, max_age, detail=f"{where} {ts}")
    age = now_wall - ts
    shown = max(age, 0.0)
    ahead = f" ({-age:.3f} s in the future, taken as age 0)" if age < 0 else ""
    if shown > max_age:
        detail = f"{where} age {shown:.3f} s > {max_age} s"
        return ProbeResult(False, JSON_STALE, shown, max_age, detail=detail)
    detail = f"{where} age {shown:.3f} s{ahead}"
    return ProbeResult(
        True, "", shown, max_age, recheck_at=now_mono + (max_age - shown), detail=detail
    )


def judge_equals(value: object, expected: Expected, *, where: str) -> ProbeResult:
    """Judge whether the field ``value`` equals ``expected`` within JSON's types.

    Returns:
        ok, ``json_field_type`` (another JSON type than ``expected``'s), or
        ``json_value_mismatch``. ``value`` is the field when it is a finite number.
    """
    measured = _number(value)
    if json_type(value) != json_type(expected):
        detail = f"{where} is {json_type(value)}, expected {json_type(expected)} {_show(expected)}"
        return ProbeResult(False, JSON_FIELD_TYPE, measured, None, detail=detail)
    if value != expected:
        detail = f"{where} is {_show(value)}, expected {_show(expected)}"
        return ProbeResult(False, JSON_VALUE_MISMATCH, measured, None, detail=detail)
    return ProbeResult(True, "", measured, None, detail=f"{where} is {_show(value)}")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _show(value: object) -> str:
    """``repr`` (quotes and escapes a string's control characters), cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
