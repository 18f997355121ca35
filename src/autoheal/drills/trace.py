"""A drill's timeline as data: the health documents it polled, folded into spans and marks.

A ``daemon`` drill polls ``health_v2.json`` every few tens of milliseconds. Each
poll goes through :meth:`HealthTrace.sample`, which keeps only the *changes*:

* spans, each with a start and (once it closed) an end: ``not_ready`` (``dor``
  false), ``degraded``, ``failsafe``, and ``stage`` (a component in any stage but
  ``OBSERVE``, labelled ``"feeder RESTART"``);
* marks: one ``restart`` per increment of a component's ``restarts`` counter.

:func:`timeline_doc` turns that, the fault window and the drill's events into the
``timeline`` of a :class:`~autoheal.drills.model.DrillResult`: every time in
seconds from the fault, the document the SVG timeline
(:mod:`autoheal.drills.timeline`) is drawn from. Pure: the caller passes the
time of each sample; nothing here reads a clock or a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HealthTrace", "timeline_doc"]

OBSERVE = "OBSERVE"


@dataclass
class _Span:
    kind: str
    label: str
    start: float
    end: float | None = None


@dataclass
class HealthTrace:
    """Folds polled health documents into spans and restart marks.

    Attributes:
        spans: every span seen, closed ones with their end.
        marks: ``(kind, label, at)`` for each restart.
        first_at: the time of the first usable sample (``None`` before one).
        last_at: the time of the latest usable sample.
    """

    spans: list[_Span] = field(default_factory=list)
    marks: list[tuple[str, str, float]] = field(default_factory=list)
    first_at: float | None = None
    last_at: float | None = None
    _open: dict[str, _Span] = field(default_factory=dict)
    _restarts: dict[str, int] = field(default_factory=dict)

    def sample(self, at: float, doc: Mapping[str, Any]) -> None:
        """Fold in one health document read at monotonic time ``at``.

        An empty or unreadable document (``{}``, the reader's "unknown") changes nothing.
        """
        if not isinstance(doc, Mapping) or not doc:
            return
        if self.first_at is None:
            self.first_at = at
        self.last_at = at
        active: dict[str, tuple[str, str]] = {}
        if doc.get("dor") is False:
            active["not_ready"] = ("not_ready", "DOR false")
        if doc.get("degraded") is True:
            active["degraded"] = ("degraded", "DEGRADED")
        if doc.get("failsafe") is True:
            active["failsafe"] = ("failsafe", "FAILSAFE")
        comps = doc.get("components")
        for name, comp in (comps.items() if isinstance(comps, Mapping) else ()):
            if not isinstance(comp, Mapping):
                continue
            stage = comp.get("stage")
            if isinstance(stage, str) and stage != OBSERVE:
                # The stage is part of the key: RESTART then BACKOFF are two spans.
                active[f"stage:{name}:{stage}"] = ("stage", f"{name} {stage}")
            restarts = comp.get("restarts")
            if isinstance(restarts, int) and not isinstance(restarts, bool):
                before = self._restarts.get(str(name))
                if before is not None and restarts > before:
                    self.marks.extend(("restart", str(name), at) for _ in range(restarts - before))
                self._restarts[str(name)] = restarts
        for key in [k for k in self._open if k not in active]:
            self._open.pop(key).end = at
        for key, (kind, label) in active.items():
            if key not in self._open:
                span = _Span(kind, label, at)
                self._open[key] = span
                self.spans.append(span)


def _rel(at: float | None, zero: float) -> float | None:
    return None if at is None else round(at - zero, 4)


def timeline_doc(
    trace: HealthTrace,
    *,
    fault_at: float | None,
    fault_ends_at: float | None = None,
    fault_label: str = "fault",
    events: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The ``timeline`` document of a drill result: every time in seconds from the fault.

    Args:
        trace: the folded health samples (empty for drills that poll no daemon).
        fault_at: monotonic time of the fault; ``None`` (never injected) gives ``{}``.
        fault_ends_at: when a fault with a duration ends (``None``: instantaneous).
        fault_label: what the fault was (``"netcut exchange_rest"``).
        events: each recorded event's monotonic time.

    Returns:
        ``{"fault": {...}, "events": {...}, "spans": [...], "marks": [...],
        "observed_until_s": ...}``; spans still open at the last sample have
        ``end_s`` ``None``.
    """
    if fault_at is None:
        return {}
    ev = {name: _rel(at, fault_at) for name, at in (events or {}).items()}
    doc: dict[str, Any] = {
        "fault": {"label": fault_label, "start_s": 0.0, "end_s": _rel(fault_ends_at, fault_at)},
        "events": dict(sorted(ev.items(), key=lambda kv: kv[1] or 0.0)),
        "spans": [{"kind": s.kind, "label": s.label, "start_s": _rel(s.start, fault_at),
                   "end_s": _rel(s.end, fault_at)}
                  for s in trace.spans if s.end is None or s.end >= fault_at],
        "marks": [{"kind": kind, "label": label, "at_s": _rel(at, fault_at)}
                  for kind, label, at in trace.marks],
    }
    ends = [t for t in (*ev.values(), _rel(trace.last_at, fault_at)) if t is not None]
    doc["observed_until_s"] = max(ends) if ends else 0.0
    return doc
