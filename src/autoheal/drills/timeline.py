"""The drill timeline picture: a drill report document in, one self-contained SVG out.

One lane per drill, each with its own time axis in seconds from the fault (a kill
is over in a second, a network cut takes five; one shared axis would squash the
first). From top to bottom a lane shows:

* the fault: a window from its start to its end, or a single line for a kill;
* the daemon's health as the drill polled it: DOR false, DEGRADED and FAILSAFE
  spans, each component's stage while it was not ``OBSERVE``, and a circle for
  every restart;
* one row per time criterion: a bar from the fault to when the event was
  measured, the deadline as a black tick, and the margin between them (green when
  the deadline held, red when it was missed), the margin also as text on the right;
* the count and value criteria as text, expected against observed;
* dashed lines across the lane at detection (blue) and recovery (green).

Pure: :func:`render_svg` takes the JSON document of a
:class:`~autoheal.drills.model.Report` (old reports without a ``timeline``
still draw, with what they have) and returns the SVG text. It is built with
:mod:`xml.etree.ElementTree`, so names and titles from scenario files are always
escaped as text; characters XML cannot hold are dropped. No scripts, no external
fonts or images: the file opens anywhere, offline.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Scale", "nice_ticks", "render_svg"]

WIDTH = 1000
LABEL_W = 200  # the left column: row labels
NOTE_W = 190  # the right column: margins
PLOT_X0 = LABEL_W
PLOT_X1 = WIDTH - NOTE_W
ROW_H = 18
FONT = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif"

COLORS = {
    "fault": "#e53935",
    "not_ready": "#9e9e9e",
    "degraded": "#ffb300",
    "failsafe": "#7b1fa2",
    "stage": "#5c6bc0",
    "RESTART": "#283593",
    "BACKOFF": "#7986cb",
    "restart": "#ef6c00",
    "detect": "#1e88e5",
    "recover": "#2e7d32",
    "measured": "#90caf9",
    "held": "#66bb6a",
    "missed": "#e53935",
    "deadline": "#212121",
    "grid": "#e0e0e0",
    "text": "#212121",
    "muted": "#616161",
    "PASSED": "#2e7d32",
    "FAILED": "#c62828",
    "ABORTED": "#ef6c00",
    "ERROR": "#c62828",
}
SPAN_ROWS = (("not_ready", "DOR false"), ("degraded", "DEGRADED"), ("failsafe", "FAILSAFE"),
             ("stage", "stages"))

# XML 1.0 cannot hold most control characters, even escaped: drop them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: Any) -> str:
    return _NOT_XML.sub("", str(text))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _secs(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") + "s" if value else "0s"


def nice_ticks(upper: float, *, most: int = 8) -> list[float]:
    """Round tick values from 0 to at least ``upper`` (1, 2, 2.5 or 5 times a power of 10).

    Args:
        upper: the largest time to show (seconds, > 0; anything else shows 0..1).
        most: at most this many intervals.

    Returns:
        Ascending ticks, the first 0 and the last ``>= upper``.
    """
    if not upper > 0 or not math.isfinite(upper):
        upper = 1.0
    power = 10.0 ** math.floor(math.log10(upper / most))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if upper / (m * power) <= most)
    count = math.ceil(upper / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


@dataclass(frozen=True)
class Scale:
    """Seconds from the fault to x pixels: 0 at ``x0``, ``upper`` at ``x1``, clipped."""

    upper: float
    x0: float = PLOT_X0
    x1: float = PLOT_X1

    def x(self, t: float) -> float:
        t = min(max(t, 0.0), self.upper)
        return round(self.x0 + (self.x1 - self.x0) * t / self.upper, 2)


class _Svg:
    """A thin builder over ElementTree: every text and attribute goes through ``_clean``."""

    def __init__(self, height: int) -> None:
        self.root = ET.Element("svg", {
            "xmlns": "http://www.w3.org/2000/svg", "width": str(WIDTH), "height": str(height),
            "viewBox": f"0 0 {WIDTH} {height}", "font-family": FONT, "font-size": "12",
            "role": "img"})

    def add(self, tag: str, parent: ET.Element | None = None, text: str | None = None,
            title: str | None = None, **attrs: Any) -> ET.Element:
        el = ET.SubElement(self.root if parent is None else parent, tag,
                           {k.rstrip("_").replace("_", "-"): _clean(v) for k, v in attrs.items()})
        if title:
            ET.SubElement(el, "title").text = _clean(title)
        if text is not None:
            el.text = _clean(text)
        return el

    def text(self, x: float, y: float, text: str, *, title: str | None = None,
             parent: ET.Element | None = None, **attrs: Any) -> ET.Element:
        if title:
            group = self.add("g", parent)
            ET.SubElement(group, "title").text = _clean(title)
            return self.add("text", group, text=text, x=x, y=y, **attrs)
        return self.add("text", parent, text=text, x=x, y=y, **attrs)


@dataclass
class _Lane:
    """One drill's data, read defensively from its JSON document."""

    name: str
    title: str
    status: str
    fault: Mapping[str, Any]
    events: dict[str, float]
    spans: list[Mapping[str, Any]]
    marks: list[Mapping[str, Any]]
    timed: list[Mapping[str, Any]]
    others: list[Mapping[str, Any]]
    detect: float | None
    recover: float | None
    until: float | None

    @classmethod
    def of(cls, drill: Mapping[str, Any]) -> _Lane:
        raw = drill.get("timeline")
        tl: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        events_doc = tl.get("events")
        if not isinstance(events_doc, Mapping):  # an older report: events in the details
            details = drill.get("details") if isinstance(drill.get("details"), Mapping) else {}
            events_doc = details.get("events_after_fault_s", {}) if isinstance(details, Mapping) \
                else {}
        timed_events = ((str(k), _num(v)) for k, v in (events_doc or {}).items())
        events = {k: v for k, v in timed_events if v is not None and v >= 0}
        crits = [c for c in drill.get("criteria", []) if isinstance(c, Mapping)]
        timed = [c for c in crits if _num(c.get("bound_s")) is not None]
        fault = tl.get("fault")
        return cls(
            name=str(drill.get("name", "?")), title=str(drill.get("title", "")),
            status=str(drill.get("status", "?")),
            fault=fault if isinstance(fault, Mapping) else {},
            events=events,
            spans=[s for s in tl.get("spans", []) if isinstance(s, Mapping)],
            marks=[m for m in tl.get("marks", []) if isinstance(m, Mapping)],
            timed=timed, others=[c for c in crits if c not in timed],
            detect=_num(drill.get("time_to_detect_s")),
            recover=_num(drill.get("time_to_recover_s")),
            until=_num(tl.get("observed_until_s")))

    def event_at(self, t: float) -> str | None:
        """The first time criterion's event measured at ``t`` (detection, recovery)."""
        for c in self.timed:
            measured = _num(c.get("measured_s"))
            if measured is not None and abs(measured - t) < 1e-3:
                return str(c.get("name", "")).removeprefix("event:")
        return None

    def span_rows(self) -> list[tuple[str, str]]:
        """``(kind, label)`` of each health row to draw, the restarts last."""
        kinds = {str(s.get("kind")) for s in self.spans}
        rows = [(k, label) for k, label in SPAN_ROWS if k in kinds]
        if self.marks:
            rows.append(("restart", f"restarts: {len(self.marks)}"))
        return rows

    def upper(self) -> float:
        times = [self.detect, self.recover, self.until, _num(self.fault.get("end_s")),
                 *self.events.values()]
        for c in self.timed:
            times += [_num(c.get("bound_s")), _num(c.get("measured_s"))]
        for s in self.spans:
            times += [_num(s.get("start_s")), _num(s.get("end_s"))]
        times += [_num(m.get("at_s")) for m in self.marks]
        found = [t for t in times if t is not None and t > 0]
        return max(found) * 1.04 if found else 1.0

    def other_lines(self) -> list[str]:
        """The count and value criteria, expected against observed, wrapped."""
        items = [f"{'✓' if c.get('held') else '✗'} {c.get('name')}: expected "
                 f"{c.get('expected')}, observed {c.get('observed')}" for c in self.others]
        lines: list[str] = []
        for whole in items:
            item = _short(whole, 110)
            if lines and len(lines[-1]) + len(item) + 5 <= 125:
                lines[-1] += "   ·   " + item
            else:
                lines.append(item)
        return lines

    def height(self) -> int:
        rows = 1 + len(self.span_rows()) + len(self.timed)
        return 40 + rows * (ROW_H + 4) + 30 + 15 * len(self.other_lines()) + 18


def _legend(svg: _Svg, y: float) -> None:
    x = 20.0
    items: Sequence[tuple[str, str]] = (
        ("fault", "fault window"), ("not_ready", "DOR false"), ("degraded", "DEGRADED"),
        ("failsafe", "FAILSAFE"), ("RESTART", "RESTART"), ("BACKOFF", "BACKOFF"),
        ("restart", "restart"),
        ("detect", "detection"), ("recover", "recovery"), ("measured", "measured"),
        ("deadline", "deadline"), ("held", "margin"), ("missed", "missed by"))
    for key, label in items:
        if x + 22 + 7.4 * len(label) > WIDTH - 10:
            x, y = 20.0, y + 20
        color = COLORS[key]
        if key == "restart":
            svg.add("circle", cx=x + 6, cy=y - 4, r=5, fill=color, stroke="#ffffff")
        elif key in ("detect", "recover"):
            svg.add("line", x1=x + 6, y1=y - 12, x2=x + 6, y2=y + 3, stroke=color,
                    stroke_width=2, stroke_dasharray="4 2")
        elif key == "deadline":
            svg.add("rect", x=x + 4, y=y - 13, width=4, height=16, fill=color)
        else:
            opacity = "0.35" if key == "fault" else "1"
            svg.add("rect", x=x, y=y - 10, width=12, height=12, fill=color,
                    fill_opacity=opacity, stroke=color if key == "fault" else "none")
        svg.add("text", text=label, x=x + 16, y=y, fill=COLORS["text"])
        x += 22 + 7.4 * len(label) + 8


def _axis(svg: _Svg, g: ET.Element, scale: Scale, top: float, bottom: float) -> None:
    ticks = nice_ticks(scale.upper)
    for t in ticks:
        x = scale.x(t)
        svg.add("line", g, x1=x, y1=top, x2=x, y2=bottom, stroke=COLORS["grid"])
        svg.add("line", g, x1=x, y1=bottom, x2=x, y2=bottom + 4, stroke=COLORS["muted"])
        svg.text(x, bottom + 16, _secs(t), parent=g, text_anchor="middle",
                 fill=COLORS["muted"], font_size="11")
    svg.add("line", g, x1=PLOT_X0, y1=bottom, x2=PLOT_X1, y2=bottom, stroke=COLORS["muted"])
    svg.text(PLOT_X1 + 24, bottom + 16, "seconds after the fault", parent=g, fill=COLORS["muted"],
             font_size="11")


def _fault_row(svg: _Svg, g: ET.Element, lane: _Lane, scale: Scale, y: float) -> None:
    label = str(lane.fault.get("label") or "fault")
    svg.text(12, y + 13, _short(f"fault: {label}", 30), parent=g, title=f"fault: {label}",
             fill=COLORS["text"])
    end = _num(lane.fault.get("end_s"))
    color = COLORS["fault"]
    if not lane.fault:
        svg.text(PLOT_X0 + 4, y + 13, "no fault was injected", parent=g, fill=COLORS["muted"])
        return
    if end is not None and end > 0:
        svg.add("rect", g, title=f"{label}: 0s to {_secs(end)}", x=scale.x(0), y=y + 1,
                width=max(scale.x(end) - scale.x(0), 1), height=ROW_H - 2, fill=color,
                fill_opacity="0.3", stroke=color, class_="fault-window",
                data_start_s=0, data_end_s=end)
        svg.text(scale.x(0) + 4, y + 13, f"{label} until {end:.2f}s", parent=g,
                 fill="#b71c1c", font_size="11")
    else:
        svg.add("rect", g, title=f"{label} at 0s", x=scale.x(0), y=y, width=3, height=ROW_H,
                fill=color, class_="fault-window", data_start_s=0, data_end_s=0)
        svg.text(scale.x(0) + 7, y + 13, f"{label} at 0s", parent=g, fill="#b71c1c",
                 font_size="11")


def _span_color(kind: str, label: str) -> str:
    """A component stage by its stage (``"feeder BACKOFF"``), the others by their kind."""
    if kind == "stage":
        stage = label.rsplit(" ", 1)[-1]
        return COLORS.get(stage, COLORS["failsafe" if stage in ("FAILSAFE", "NOTIFY")
                                     else "stage"])
    return COLORS.get(kind, COLORS["stage"])


def _span_rows(svg: _Svg, g: ET.Element, lane: _Lane, scale: Scale, y: float) -> float:
    last = lane.until if lane.until is not None else scale.upper
    for kind, label in lane.span_rows():
        svg.text(12, y + 13, label, parent=g, fill=COLORS["text"])
        for s in (s for s in lane.spans if s.get("kind") == kind):
            start = _num(s.get("start_s")) or 0.0
            end = _num(s.get("end_s"))
            open_end = end is None
            # Still on when the drill stopped watching: drawn on to the axis end, dashed.
            stop = scale.upper if end is None else end
            x0, x1 = scale.x(start), scale.x(stop)
            text = str(s.get("label", kind))
            end_text = (f"the last sample at {_secs(last)}, still on" if open_end
                        else _secs(stop))
            tip = f"{text}: {_secs(max(start, 0))} to {end_text}"
            svg.add("rect", g, title=tip, x=x0, y=y + 2, width=max(x1 - x0, 2),
                    height=ROW_H - 4, fill=_span_color(kind, text),
                    fill_opacity="0.85", rx=2, class_=f"span span-{kind}",
                    stroke_dasharray="3 2" if open_end else "none",
                    stroke=COLORS["text"] if open_end else "none")
            if kind == "stage" and x1 - x0 > 7 * len(text):
                svg.text(x0 + 3, y + 13, text, parent=g, fill="#ffffff", font_size="10")
            elif open_end and x1 - scale.x(last) > 90:
                svg.text(scale.x(last) + 4, y + 13, "still on at the end", parent=g,
                         fill="#ffffff" if kind != "degraded" else COLORS["text"],
                         font_size="10")
        if kind == "restart":
            for n, m in enumerate(lane.marks, 1):
                at = _num(m.get("at_s"))
                if at is None:
                    continue
                x = scale.x(at)
                svg.add("circle", g, title=f"restart {n} of {m.get('label')} at {_secs(at)}",
                        cx=x, cy=y + ROW_H / 2, r=7, fill=COLORS["restart"], stroke="#ffffff",
                        class_="restart")
                svg.text(x, y + ROW_H / 2 + 3.5, str(n), parent=g, fill="#ffffff",
                         font_size="9", font_weight="bold", text_anchor="middle")
        y += ROW_H + 4
    return y


def _criterion_row(svg: _Svg, g: ET.Element, c: Mapping[str, Any], scale: Scale,
                   y: float) -> None:
    name = str(c.get("name", "?")).removeprefix("event:")
    bound = _num(c.get("bound_s")) or 0.0
    measured = _num(c.get("measured_s"))
    held = bool(c.get("held"))
    label = f"{name} ≤ {_secs(round(bound, 2))}"
    svg.text(12, y + 13, _short(label, 30), parent=g, title=f"{c.get('name')}: expected "
             f"{c.get('expected')}, observed {c.get('observed')}", fill=COLORS["text"])
    mid = y + ROW_H / 2
    if measured is not None:
        xm = scale.x(measured)
        svg.add("rect", g, x=scale.x(0), y=mid - 2, width=max(xm - scale.x(0), 0), height=4,
                fill=COLORS["measured"])
        lo, hi = sorted((measured, bound))
        svg.add("rect", g, title=f"margin {_secs(round(bound - measured, 3))}",
                x=scale.x(lo), y=mid - 5, width=max(scale.x(hi) - scale.x(lo), 1), height=10,
                fill=COLORS["held" if measured <= bound else "missed"], fill_opacity="0.75",
                class_="margin")
        svg.add("circle", g, title=f"{name} measured at {_secs(round(measured, 3))}", cx=xm,
                cy=mid, r=4, fill=COLORS["detect"], class_="measured", data_t_s=measured)
    else:
        svg.add("rect", g, x=scale.x(0), y=mid - 2, width=scale.x(scale.upper) - scale.x(0),
                height=4, fill=COLORS["missed"], fill_opacity="0.3")
    svg.add("rect", g, title=f"deadline {_secs(round(bound, 3))}", x=scale.x(bound) - 2,
            y=y, width=4, height=ROW_H, fill=COLORS["deadline"], class_="deadline",
            data_t_s=bound)
    margin, pct = _num(c.get("margin_s")), _num(c.get("margin_pct"))
    if measured is None:
        note, color = "never observed", COLORS["missed"]
    elif margin is not None:
        pct_text = "" if pct is None else f" ({pct:+.0f}%)"
        note = f"margin {margin:+.2f}s{pct_text}"
        color = COLORS["recover"] if held else COLORS["missed"]
    else:
        note, color = ("held" if held else "missed"), COLORS["muted"]
    svg.text(PLOT_X1 + 10, y + 13, note, parent=g, fill=color, font_weight="bold")


def _marker(svg: _Svg, g: ET.Element, scale: Scale, t: float, kind: str, *, top: float,
            bottom: float, event: str | None) -> None:
    x = scale.x(t)
    word = "detected" if kind == "detect" else "recovered"
    # Which event counts as recovery is the scenario's choice (FAILSAFE, for a feeder
    # that cannot start): name it.
    word = word if event in (None, word) else f"{word} ({event})"
    svg.add("line", g, title=f"{word} at {_secs(round(t, 3))}", x1=x, y1=top, x2=x, y2=bottom,
            stroke=COLORS[kind], stroke_width=1.5, stroke_dasharray="5 3", class_=kind,
            data_t_s=t)
    left = kind == "detect"
    svg.text(x - 3 if left else x + 3, top + 9, f"{word} {t:.2f}s", parent=g,
             fill=COLORS[kind], font_size="10", text_anchor="end" if left else "start")


def _lane(svg: _Svg, lane: _Lane, index: int, top: float) -> float:
    height = lane.height()
    g = svg.add("g", class_="lane", data_drill=lane.name, id=f"lane-{index}")
    svg.add("rect", g, x=4, y=top, width=WIDTH - 8, height=height - 6,
            fill="#fafafa" if index % 2 else "#ffffff", stroke=COLORS["grid"], rx=4)
    color = COLORS.get(lane.status, COLORS["muted"])
    mark = "✓" if lane.status == "PASSED" else "✗"
    head = svg.text(12, top + 18, "", parent=g, fill=COLORS["text"])
    ET.SubElement(head, "tspan", {"font-weight": "bold", "fill": color}).text = \
        _clean(f"{mark} {lane.status}")
    ET.SubElement(head, "tspan", {"font-weight": "bold", "dx": "8"}).text = _clean(lane.name)
    ET.SubElement(head, "tspan", {"dx": "8", "fill": COLORS["muted"]}).text = \
        _clean(_short(lane.title, 95))
    scale = Scale(nice_ticks(lane.upper())[-1])
    marks_top = top + 26  # a strip for the detected / recovered labels
    body_top = marks_top + 14
    y = body_top
    rows = 1 + len(lane.span_rows()) + len(lane.timed)
    bottom = body_top + rows * (ROW_H + 4)
    _axis(svg, g, scale, body_top - 4, bottom)
    _fault_row(svg, g, lane, scale, y)
    y = _span_rows(svg, g, lane, scale, y + ROW_H + 4)
    for c in lane.timed:
        _criterion_row(svg, g, c, scale, y)
        y += ROW_H + 4
    for t, kind in ((lane.detect, "detect"), (lane.recover, "recover")):
        if t is not None and t >= 0:
            _marker(svg, g, scale, t, kind, top=marks_top, bottom=bottom,
                    event=lane.event_at(t))
    y = bottom + 34
    for line in lane.other_lines():
        svg.text(12, y, line, parent=g, fill=COLORS["muted"], font_size="11")
        y += 15
    return top + height


def render_svg(report: Mapping[str, Any]) -> str:
    """Draw a drill report as one self-contained SVG document.

    Args:
        report: the report's JSON document (:meth:`Report.to_doc`), read defensively:
            missing or wrongly typed fields draw less, never raise.

    Returns:
        The SVG text, with an XML declaration; valid XML whatever the names contain.
    """
    drills = [d for d in report.get("drills", []) if isinstance(d, Mapping)]
    lanes = [_Lane.of(d) for d in drills]
    header = 120  # the legend may take two rows
    height = header + sum(lane.height() for lane in lanes) + 24
    svg = _Svg(int(height))
    svg.add("title", text="autoheal drill timeline")
    svg.add("rect", x=0, y=0, width=WIDTH, height=height, fill="#ffffff")
    svg.text(20, 30, "autoheal drill timeline", font_size="20", font_weight="bold",
             fill=COLORS["text"])
    counts = report.get("counts") if isinstance(report.get("counts"), Mapping) else {}
    summary = ", ".join(f"{v} {k}" for k, v in (counts or {}).items() if v)
    svg.text(20, 52, f"started {report.get('started_at', '?')} · took "
             f"{_num(report.get('duration_s')) or 0:.1f}s · time scale "
             f"{report.get('time_scale', '?')} · {summary or 'no drills'} · "
             "each lane: seconds from its fault", fill=COLORS["muted"])
    _legend(svg, 80)
    top = float(header)
    for i, lane in enumerate(lanes):
        top = _lane(svg, lane, i, top)
    if not lanes:
        svg.text(20, header + 10, "no drills in this report", fill=COLORS["muted"])
    ET.indent(svg.root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(svg.root, "unicode") + "\n"
