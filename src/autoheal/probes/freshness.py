"""Pure judgement of a timestamp field in a heartbeat document.

The heartbeat probes read a file and then ask :func:`judge_timestamp` whether
the unix timestamp in it is fresh. Keeping the judgement pure (read result and
both clocks passed in) lets the edge cases -- a ``ts`` that is a string, a
boolean, NaN, far in the future -- be tested without files or sleeps.

Two clocks meet here on purpose. The writer's ``ts`` is wall-clock (unix
seconds), so the *age* must be ``wall - ts``; but the deadline we hand to the
runner is *monotonic* (``mono + max_age - age``), because the runner's timers
must not jump when NTP steps the wall clock.
"""

from __future__ import annotations

import math
from typing import Any

from autoheal.probes.result import HEARTBEAT_INVALID, HEARTBEAT_MISSING, ProbeResult
from autoheal.store.atomic import ReadResult

__all__ = ["DEFAULT_FUTURE_TOLERANCE", "judge_timestamp"]

#: A ``ts`` this far ahead of our wall clock is not clock jitter but a broken writer.
DEFAULT_FUTURE_TOLERANCE = 5.0


def _bad(detail: str, threshold: float) -> ProbeResult:
    return ProbeResult(False, HEARTBEAT_INVALID, None, threshold, detail=detail)


def judge_timestamp(
    read: ReadResult,
    *,
    field: str,
    max_age: float,
    stale_reason: str,
    now_wall: float,
    now_mono: float,
    future_tolerance: float = DEFAULT_FUTURE_TOLERANCE,
) -> ProbeResult:
    """Judge how old the unix timestamp ``read.doc[field]`` is.

    Args:
        read: the outcome of reading the heartbeat file.
        field: the key holding unix seconds (``ts``, ``ws_last_msg_ts``, ...).
        max_age: the oldest acceptable age in seconds; older is stale.
        stale_reason: the token for "too old" (``heartbeat_stale`` or ``ws_stale``).
        now_wall: the current unix time.
        now_mono: the current monotonic time, for ``recheck_at``.
        future_tolerance: how far ahead of ``now_wall`` a timestamp may lie.

    Returns:
        A ``ProbeResult`` whose ``value`` is the age (never below 0) when the field is
        valid. ``heartbeat_missing`` for a missing file; ``heartbeat_invalid`` for an
        unreadable, oversized, corrupt or non-object file, and for a field that is
        absent, not a finite number, or too far in the future. A fresh result carries
        ``recheck_at``: the monotonic moment its age passes ``max_age``.
    """
    if read.doc is None:
        if read.reason == "missing":
            return ProbeResult(False, HEARTBEAT_MISSING, None, max_age, detail="no file")
        return _bad(f"{read.reason}: {read.detail}".rstrip(": "), max_age)
    raw: Any = read.doc.get(field)
    if raw is None:
        return _bad(f"field {field!r} missing", max_age)
    # bool is an int subclass; ``"ts": true`` is a broken writer, not 1970-01-01T00:00:01.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return _bad(f"field {field!r} is {type(raw).__name__}, not a number", max_age)
    try:
        ts = float(raw)
    except OverflowError:  # an int too large for a float; orjson refuses these, others may not
        ts = math.inf
    if not math.isfinite(ts):
        return _bad(f"field {field!r} is not finite", max_age)
    age = now_wall - ts
    if age < -future_tolerance:
        return _bad(f"field {field!r} is {-age:.3f} s in the future", max_age)
    shown_age = max(age, 0.0)
    if age > max_age:
        return ProbeResult(
            False, stale_reason, shown_age, max_age, detail=f"{field} age {age:.3f} s > {max_age} s"
        )
    return ProbeResult(True, "", shown_age, max_age, recheck_at=now_mono + (max_age - age))
