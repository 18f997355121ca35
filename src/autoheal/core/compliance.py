"""What the drill history means for the compliance matrix: is each control proven, now?

The rules (each a way a stale or broken proof could read as a pass):

* A row passes only when *every* drill it names has its **last** result ``PASSED`` and
  that result is at most ``window_s`` old. An older pass does not cover a newer failure.
* A drill never recorded is ``never_run``; a last result other than ``PASSED`` is
  ``failed``; a pass older than the window is ``stale``.
* A history that cannot be read or parsed (missing keys, wrong types, a non-finite or
  negative time, an unknown schema) is ``unknown`` for every drill: never a pass.
  A missing file is simply an empty history (every drill ``never_run``).
* A result stamped more than :data:`FUTURE_SKEW_S` in the future (a clock stepped
  back) is ``unknown``: its age cannot be trusted.

Ages are wall-clock seconds: a drill history is written by one process (``autoheal
drill run``) and read by another, maybe days later, so no monotonic clock spans them.
``now`` is an argument; nothing here reads a clock or a file.

The history document (``<runtime_dir>/drill_history.json``)::

    {"schema": 1, "drills": {"breaker_trip": {"status": "PASSED", "finished_at": 1.7e9,
     "duration_s": 1.2, "margin_pct": 25.0, "last_passed_at": 1.7e9}}}

:func:`merge_history` folds a run's results into it, bounded to :data:`MAX_DRILLS` names.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from autoheal.core.compliance_matrix import Control

__all__ = [
    "FUTURE_SKEW_S",
    "HISTORY_SCHEMA",
    "MAX_DRILLS",
    "DrillRecord",
    "DrillVerdict",
    "Matrix",
    "RowVerdict",
    "Verdict",
    "history_doc",
    "judge_drill",
    "judge_matrix",
    "merge_history",
    "parse_history",
]

HISTORY_SCHEMA = 1
#: At most this many drill names are kept (the least recently run go first).
MAX_DRILLS = 500
#: A result this far in the future is not trusted (its age would be negative).
FUTURE_SKEW_S = 60.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_STATUSES = ("PASSED", "FAILED", "ABORTED", "ERROR")


class Verdict(enum.StrEnum):
    """A drill's or a row's standing, from best to worst."""

    PASSED = "passed"
    STALE = "stale"
    FAILED = "failed"
    NEVER_RUN = "never_run"
    UNKNOWN = "unknown"


_RANK = {v: i for i, v in enumerate(Verdict)}


@dataclass(frozen=True, slots=True)
class DrillRecord:
    """A drill's last result, as the history holds it."""

    name: str
    status: str
    finished_at: float
    duration_s: float
    margin_pct: float | None = None
    last_passed_at: float | None = None


@dataclass(frozen=True, slots=True)
class DrillVerdict:
    """One drill judged: its verdict, last status and age (None when there is none)."""

    name: str
    verdict: Verdict
    status: str | None
    age_s: float | None
    record: DrillRecord | None


@dataclass(frozen=True, slots=True)
class RowVerdict:
    """One control judged: the worst of its drills' verdicts."""

    control: Control
    verdict: Verdict
    drills: tuple[DrillVerdict, ...]

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED


@dataclass(frozen=True, slots=True)
class Matrix:
    """Every row judged, with the window and the moment it was judged at."""

    rows: tuple[RowVerdict, ...]
    window_s: float
    now: float
    history_ok: bool

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)


def _time(value: object) -> float | None:
    """A finite, non-negative number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _record(name: object, body: object) -> DrillRecord | None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or not isinstance(body, Mapping):
        return None
    status = body.get("status")
    finished = _time(body.get("finished_at"))
    duration = _time(body.get("duration_s"))
    if status not in _STATUSES or finished is None or duration is None:
        return None
    margin = body.get("margin_pct")
    if margin is not None and (
        isinstance(margin, bool) or not isinstance(margin, int | float) or not math.isfinite(margin)
    ):
        return None
    passed_at = body.get("last_passed_at")
    if passed_at is not None and _time(passed_at) is None:
        return None
    return DrillRecord(
        name,
        str(status),
        finished,
        duration,
        None if margin is None else float(margin),
        _time(passed_at),
    )


def parse_history(doc: object) -> dict[str, DrillRecord] | None:
    """The records of a history document; None when any part of it is not as written.

    ``None`` (unknown) is for the whole document: one garbled entry means the file is
    not what the writer wrote, so no entry in it is trusted.
    """
    if not isinstance(doc, Mapping) or doc.get("schema") != HISTORY_SCHEMA:
        return None
    drills = doc.get("drills")
    if not isinstance(drills, Mapping) or len(drills) > MAX_DRILLS:
        return None
    out: dict[str, DrillRecord] = {}
    for name, body in drills.items():
        record = _record(name, body)
        if record is None:
            return None
        out[record.name] = record
    return out


def history_doc(records: Mapping[str, DrillRecord]) -> dict[str, object]:
    """The document for ``records`` (what :func:`parse_history` reads back)."""
    drills: dict[str, object] = {}
    for name in sorted(records):
        r = records[name]
        drills[name] = {
            "status": r.status,
            "finished_at": r.finished_at,
            "duration_s": r.duration_s,
            "margin_pct": r.margin_pct,
            "last_passed_at": r.last_passed_at,
        }
    return {"schema": HISTORY_SCHEMA, "drills": drills}


def merge_history(
    old: Mapping[str, DrillRecord] | None, results: Iterable[DrillRecord]
) -> dict[str, DrillRecord]:
    """Fold a run's results into the history (``old`` None: unreadable, start afresh).

    Each result replaces its drill's record; ``last_passed_at`` carries over from the
    old record when the new result is not a pass. Bounded: past :data:`MAX_DRILLS`
    names, those finished longest ago are dropped.
    """
    merged = dict(old or {})
    for r in results:
        if not _NAME.fullmatch(r.name):
            continue
        previous = merged.get(r.name)
        passed_at = (
            r.finished_at
            if r.status == "PASSED"
            else (previous.last_passed_at if previous is not None else None)
        )
        merged[r.name] = DrillRecord(
            r.name, r.status, r.finished_at, r.duration_s, r.margin_pct, passed_at
        )
    if len(merged) > MAX_DRILLS:
        keep = sorted(merged.values(), key=lambda r: (r.finished_at, r.name))[-MAX_DRILLS:]
        merged = {r.name: r for r in keep}
    return merged


def judge_drill(
    name: str,
    history: Mapping[str, DrillRecord] | None,
    *,
    now: float,
    window_s: float,
) -> DrillVerdict:
    """One drill's verdict at ``now`` (wall seconds) for a window of ``window_s``."""
    if history is None or not math.isfinite(now):
        return DrillVerdict(name, Verdict.UNKNOWN, None, None, None)
    record = history.get(name)
    if record is None:
        return DrillVerdict(name, Verdict.NEVER_RUN, None, None, None)
    age = now - record.finished_at
    if age < -FUTURE_SKEW_S:
        return DrillVerdict(name, Verdict.UNKNOWN, record.status, age, record)
    if record.status != "PASSED":
        verdict = Verdict.FAILED
    elif not age <= window_s:  # also a NaN window: never a pass
        verdict = Verdict.STALE
    else:
        verdict = Verdict.PASSED
    return DrillVerdict(name, verdict, record.status, max(0.0, age), record)


def judge_matrix(
    controls: Iterable[Control],
    history: Mapping[str, DrillRecord] | None,
    *,
    now: float,
    window_s: float,
) -> Matrix:
    """Every control judged by its drills; a row with no drill is ``never_run``.

    Args:
        controls: the rows (:data:`autoheal.core.compliance_matrix.CONTROLS`).
        history: the parsed history, or None when it could not be read (unknown).
        now: wall-clock seconds.
        window_s: how old a pass may be.
    """
    rows = []
    for control in controls:
        drills = tuple(judge_drill(d, history, now=now, window_s=window_s) for d in control.drills)
        worst = max((d.verdict for d in drills), key=_RANK.__getitem__, default=Verdict.NEVER_RUN)
        rows.append(RowVerdict(control, worst, drills))
    return Matrix(tuple(rows), window_s, now, history is not None)
