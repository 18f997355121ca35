"""The arithmetic of ``autoheal metrics``: pure functions of journal events (no I/O, no clock).

Every function takes events (anything with the fields of
:class:`autoheal.store.journal.Event`: ``id``, ``ts``, ``kind``, ``component``,
``reason``, ``actor``, ``command_id``, ``data``) in journal order, and ``now`` /
``since`` as unix seconds. The journal's ``ts`` is wall-clock, so every duration
here is as good as the host's clock (a clock step shows up in it).

Definitions (docs/operations.md repeats them for operators):

* **restart**: a ``stage_transition`` into ``RESTART`` (each attempt counts; an
  operator's ``autoheal restart`` is one too, counted apart as ``by_operator``).
* **incident**: one episode of a component, from the failure's evidence to its
  return to ``OBSERVE``. It opens at the first ``stage_transition`` out of
  ``OBSERVE`` and closes at the next transition back into ``OBSERVE`` (``verified``,
  or an operator's stop/clear); one still open is ``ongoing``.
  *Evidence* is the earliest moment a probe of the component started failing
  (the ``probe_changed`` event that turned it from ok to failing) among the probes
  still failing at the transition; when none is (a process exit: the daemon's exit
  watcher acts on the exit itself, event driven) the transition is its own evidence.
* **time to detect**: evidence → first transition out of ``OBSERVE``.
* **time to recover**: evidence → the return to ``OBSERVE`` (the whole outage as
  the journal saw it, so it includes the detection, as the drills measure from
  the fault). Incidents an operator started (reason ``operator``) are listed but
  left out of the p50 / max.
* **time per stage**: the stage each component was in, replayed from its
  transitions, clipped to the window; before its first known transition a
  component is taken to be in ``OBSERVE``. Daemon downtime counts toward the stage
  it resumes (the stage survives the daemon).
* **failsafe entry**: a ``notice`` of kind ``failsafe`` while none is open; it is
  cleared by the next ``notice`` of kind ``failsafe_cleared``. Who entered and who
  cleared: the actor of the ``failsafe_enter`` / ``failsafe_clear`` command just
  before the notice, ``operator (<token>)`` for a kill-switch file edit
  (``operator_kill_switch``), else ``autoheal``.
* **uptime**: now - the component's last ``process_started``, unless a later
  ``process_stopped`` or transition into ``RESTART`` / ``FAILSAFE`` says that
  process is gone (then ``None``).
* **degraded period** of a dependency: from its ``notice`` of kind ``degraded`` to
  its ``notice`` of kind ``recovered``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = [
    "DAY_S",
    "Incident",
    "Period",
    "degraded_periods",
    "failsafe_periods",
    "incidents",
    "p50",
    "restarts",
    "stage_time",
    "summarize",
    "uptime",
]

DAY_S = 86_400.0
OBSERVE = "OBSERVE"
_GONE_STAGES = ("RESTART", "FAILSAFE")
#: How far back a command event may lie from the notice it caused.
_MATCH_S = 60.0


class EventLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def ts(self) -> float: ...
    @property
    def kind(self) -> str: ...
    @property
    def component(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def actor(self) -> str | None: ...
    @property
    def command_id(self) -> str | None: ...
    @property
    def data(self) -> dict[str, Any] | None: ...


def _data(e: EventLike) -> Mapping[str, Any]:
    return e.data if isinstance(e.data, dict) else {}


def _transition(e: EventLike) -> tuple[str, str] | None:
    if e.kind != "stage_transition":
        return None
    d = _data(e)
    src, dst = d.get("from"), d.get("to")
    return (src, dst) if isinstance(src, str) and isinstance(dst, str) else None


def p50(values: Sequence[float]) -> float | None:
    """The median (mean of the middle two for an even count); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


# --------------------------------------------------------------------------- restarts


def restarts(events: Iterable[EventLike], component: str, since: float) -> dict[str, int]:
    """Transitions of ``component`` into RESTART at or after ``since``."""
    total = by_operator = 0
    for e in events:
        t = _transition(e)
        if t is None or e.component != component or t[1] != "RESTART" or e.ts < since:
            continue
        total += 1
        if e.reason == "operator":
            by_operator += 1
    return {"total": total, "by_operator": by_operator}


# --------------------------------------------------------------------------- incidents


@dataclass(frozen=True, slots=True)
class Incident:
    component: str
    started_at: float  # the failure's evidence
    detected_at: float  # the first transition out of OBSERVE
    recovered_at: float | None  # the return to OBSERVE; None while ongoing
    reason: str  # the reason of the first transition
    evidence: str  # the probe whose failure was the evidence, or "transition"
    end_reason: str | None
    restarts: int
    by_operator: bool

    @property
    def time_to_detect_s(self) -> float:
        return max(0.0, self.detected_at - self.started_at)

    @property
    def time_to_recover_s(self) -> float | None:
        if self.recovered_at is None:
            return None
        return max(0.0, self.recovered_at - self.started_at)

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["time_to_detect_s"] = round(self.time_to_detect_s, 4)
        ttr = self.time_to_recover_s
        doc["time_to_recover_s"] = None if ttr is None else round(ttr, 4)
        doc["ongoing"] = self.recovered_at is None
        return doc


def incidents(events: Iterable[EventLike], component: str) -> list[Incident]:
    """Every incident of ``component`` in the journal, oldest first (see the module doc)."""
    failing_since: dict[str, float] = {}  # probe -> when it turned from ok to failing
    out: list[Incident] = []
    current: dict[str, Any] | None = None
    for e in events:
        if e.component != component:
            continue
        if e.kind == "probe_changed":
            d = _data(e)
            probe = d.get("probe")
            if not isinstance(probe, str):
                continue
            if d.get("ok") is True:
                failing_since.pop(probe, None)
            elif d.get("ok") is False:
                failing_since.setdefault(probe, e.ts)
            continue
        t = _transition(e)
        if t is None:
            continue
        src, dst = t
        if current is None and src == OBSERVE and dst != OBSERVE:
            if failing_since:
                probe = min(failing_since, key=lambda p: failing_since[p])
                start, evidence = min(failing_since[probe], e.ts), probe
            else:
                start, evidence = e.ts, "transition"
            current = {
                "started_at": start,
                "detected_at": e.ts,
                "reason": e.reason or "",
                "evidence": evidence,
                "restarts": 0,
                "by_operator": e.reason == "operator",
            }
        if current is None:
            continue
        if dst == "RESTART":
            current["restarts"] += 1
        if dst == OBSERVE:
            out.append(Incident(component, recovered_at=e.ts, end_reason=e.reason, **current))
            current = None
    if current is not None:
        out.append(Incident(component, recovered_at=None, end_reason=None, **current))
    return out


def _in_window(start: float, end: float | None, since: float, now: float) -> bool:
    return start <= now and (end is None or end >= since)


# --------------------------------------------------------------------------- stages


def stage_time(
    events: Iterable[EventLike],
    component: str,
    since: float,
    now: float,
    known_from: float = -math.inf,
) -> dict[str, float]:
    """Seconds ``component`` spent in each stage within ``[since, now]``.

    Nothing is counted before ``known_from`` (the journal's first event: before it,
    the journal knows nothing).
    """
    out: dict[str, float] = {}
    since = max(since, known_from)
    stage, entered = OBSERVE, -math.inf
    for e in events:
        t = _transition(e)
        if t is None or e.component != component or e.ts > now:
            continue
        _add_span(out, stage, (entered, e.ts), (since, now))
        stage, entered = t[1], e.ts
    _add_span(out, stage, (entered, now), (since, now))
    return {k: round(v, 4) for k, v in sorted(out.items()) if v > 0}


def _add_span(
    out: dict[str, float], stage: str, span: tuple[float, float], window: tuple[float, float]
) -> None:
    lo, hi = max(span[0], window[0]), min(span[1], window[1])
    if hi > lo:
        out[stage] = out.get(stage, 0.0) + (hi - lo)


# --------------------------------------------------------------------------- uptime


def uptime(events: Iterable[EventLike], component: str, now: float) -> float | None:
    """Seconds since the component's current process started, as the journal knows it."""
    started: float | None = None
    for e in events:
        if e.component != component or e.ts > now:
            continue
        t = _transition(e)
        if e.kind == "process_started":
            started = e.ts
        elif e.kind == "process_stopped" or (t is not None and t[1] in _GONE_STAGES):
            started = None
    return None if started is None else round(max(0.0, now - started), 4)


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True, slots=True)
class Period:
    target: str
    started_at: float
    ended_at: float | None
    reason: str
    started_by: str = ""
    ended_by: str | None = None

    def duration_s(self, now: float) -> float:
        return max(0.0, (self.ended_at if self.ended_at is not None else now) - self.started_at)

    def to_doc(self, now: float) -> dict[str, Any]:
        doc = asdict(self)
        doc["duration_s"] = round(self.duration_s(now), 4)
        doc["ongoing"] = self.ended_at is None
        return doc


def degraded_periods(events: Iterable[EventLike], dependency: str) -> list[Period]:
    """The dependency's degraded periods: ``degraded`` notice to ``recovered`` notice."""
    out: list[Period] = []
    open_at: tuple[float, str] | None = None
    for e in events:
        if e.kind != "notice" or e.component != dependency:
            continue
        kind = _data(e).get("kind")
        if kind == "degraded" and open_at is None:
            open_at = (e.ts, e.reason or "")
        elif kind == "recovered" and open_at is not None:
            out.append(Period(dependency, open_at[0], e.ts, open_at[1], "autoheal", "autoheal"))
            open_at = None
    if open_at is not None:
        out.append(Period(dependency, open_at[0], None, open_at[1], "autoheal"))
    return out


def _who(recent: Sequence[EventLike], command: str, ts: float) -> str:
    """The actor of the latest ``command`` event or kill-switch edit shortly before ``ts``."""
    for e in reversed(recent):
        if ts - e.ts > _MATCH_S:
            break
        if e.kind in (f"{command}.started", f"{command}.succeeded") and e.actor:
            return e.actor
        if e.kind == "operator_kill_switch":
            return f"{e.actor or 'operator'} ({e.reason or 'file'})"
    return "autoheal"


def failsafe_periods(events: Iterable[EventLike]) -> list[Period]:
    """Failsafe entries with who entered, who cleared, and when (see the module doc)."""
    out: list[Period] = []
    seen: list[EventLike] = []
    open_: dict[str, Any] | None = None
    for e in events:
        if e.kind == "notice":
            kind = _data(e).get("kind")
            if kind == "failsafe" and open_ is None:
                by = _who(seen, "failsafe_enter", e.ts)
                if e.reason != "operator":
                    by = "autoheal"
                open_ = {"started_at": e.ts, "reason": f"{e.component}: {e.reason}", "by": by}
            elif kind == "failsafe_cleared" and open_ is not None:
                out.append(
                    Period(
                        "runtime",
                        open_["started_at"],
                        e.ts,
                        open_["reason"],
                        open_["by"],
                        _who(seen, "failsafe_clear", e.ts),
                    )
                )
                open_ = None
        seen.append(e)
        if len(seen) > 256:
            del seen[:128]
    if open_ is not None:
        out.append(Period("runtime", open_["started_at"], None, open_["reason"], open_["by"]))
    return out


# --------------------------------------------------------------------------- the summary


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    m = p50(values)
    return {
        "p50": None if m is None else round(m, 4),
        "max": round(max(values), 4) if values else None,
    }


def summarize(
    events: Sequence[EventLike],
    *,
    components: Sequence[str],
    dependencies: Sequence[str],
    now: float,
    since: float,
    drill: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole ``autoheal metrics`` document (JSON-ready)."""
    names = list(components) + sorted(
        {e.component for e in events if _transition(e) is not None and e.component}
        - set(components)
    )
    known_from = events[0].ts if events else now
    comps: dict[str, Any] = {}
    for name in names:
        found = [
            i
            for i in incidents(events, name)
            if _in_window(i.started_at, i.recovered_at, since, now)
        ]
        counted = [i for i in found if not i.by_operator]
        ttr = [i.time_to_recover_s for i in counted if i.time_to_recover_s is not None]
        comps[name] = {
            "restarts_24h": restarts(events, name, now - DAY_S)["total"],
            "restarts_window": restarts(events, name, since),
            "incidents": [i.to_doc() for i in found],
            "time_to_detect_s": _stats([i.time_to_detect_s for i in counted]),
            "time_to_recover_s": _stats(ttr),
            "stage_time_s": stage_time(events, name, since, now, known_from),
            "uptime_s": uptime(events, name, now),
        }
    deps: dict[str, Any] = {}
    for name in dependencies:
        periods = [
            p
            for p in degraded_periods(events, name)
            if _in_window(p.started_at, p.ended_at, since, now)
        ]
        deps[name] = {
            "degraded_periods": [p.to_doc(now) for p in periods],
            "degraded_s": round(sum((_clipped(p, since, now) for p in periods), 0.0), 4),
        }
    failsafes = [
        p.to_doc(now)
        for p in failsafe_periods(events)
        if _in_window(p.started_at, p.ended_at, since, now)
    ]
    return {
        "schema": 1,
        "now": now,
        "since": since,
        "window_s": round(now - since, 3),
        "journal_from": known_from,
        "components": comps,
        "dependencies": deps,
        "failsafe": failsafes,
        "last_drill": None if drill is None else dict(drill),
    }


def _clipped(p: Period, since: float, now: float) -> float:
    end = p.ended_at if p.ended_at is not None else now
    return max(0.0, min(end, now) - max(p.started_at, since))


def drill_verdicts(doc: Any, path: str) -> dict[str, Any] | None:
    """The verdicts of a drill report document (``autoheal drill run``'s JSON)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("drills"), list):
        return None
    drills = []
    for d in doc["drills"]:
        if isinstance(d, dict):
            drills.append(
                {
                    "name": d.get("name"),
                    "status": d.get("status"),
                    "time_to_detect_s": d.get("time_to_detect_s"),
                    "time_to_recover_s": d.get("time_to_recover_s"),
                }
            )
    return {
        "path": path,
        "started_at": doc.get("started_at"),
        "passed": doc.get("passed"),
        "counts": doc.get("counts"),
        "drills": drills,
    }
