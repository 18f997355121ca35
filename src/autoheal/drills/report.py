"""The drill report as text (for a human, shaped like the reference's) and as JSON (for tools).

Both are for a terminal, and a report quotes what came from outside -- a scenario's
title and expectations from its TOML file, observed values, error text -- so every
such value goes through :mod:`autoheal.terminal` (issue 18 A10). The JSON file
written beside it keeps the values as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from autoheal.drills.model import Criterion, DrillResult, Report, Status
from autoheal.drills.timeline import render_svg
from autoheal.store.atomic import write_bytes_atomic
from autoheal.terminal import clean, clean_json

__all__ = ["margin_text", "render", "render_text", "svg_path_for", "write_json_report"]

WIDE = "=" * 70
THIN = "─" * 70
OK, BAD = "✓", "✗"


def write_json_report(report: Report, target: Path) -> Path:
    """Write the JSON report atomically; a directory gets ``<UTC timestamp>.json`` inside.

    The timeline picture (:func:`~autoheal.drills.timeline.render_svg`) goes
    beside it, same name with ``.svg`` (:func:`svg_path_for`), written after the JSON.

    Returns:
        The JSON file written.
    """
    if target.suffix != ".json":
        target.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = target / f"{stamp}.json"
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    doc = report.to_doc()
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    write_bytes_atomic(target, data + b"\n")
    write_bytes_atomic(svg_path_for(target), render_svg(doc).encode())
    return target


def svg_path_for(json_path: Path) -> Path:
    """``r.json`` -> ``r.svg``: where the timeline picture of a JSON report goes."""
    return json_path.with_suffix(".svg")


def render(report: Report, fmt: str) -> str:
    """``text`` or ``json``."""
    if fmt == "json":
        return clean_json(orjson.dumps(report.to_doc(), option=orjson.OPT_INDENT_2).decode())
    return render_text(report)


def _row(label: str, value: Any) -> str:
    """``Label:   value``; the value is cleaned (it may come from a scenario or a probe)."""
    return f"{label + ':':<25}{clean(value, empty='')}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def margin_text(c: Criterion) -> str:
    """``margin 0.82s (82%)`` for a time criterion; ``""`` for the others or one never seen."""
    if c.margin_s is None or c.margin_pct is None:
        return ""
    return f"margin {c.margin_s:+.2f}s ({c.margin_pct:+.0f}% of {c.bound_s:.2f}s)"


def _margin(c: Criterion) -> str:
    text = margin_text(c)
    return f", {text}" if text else ""


def _drill(result: DrillResult) -> list[str]:
    mark = OK if result.status is Status.PASSED else BAD
    lines = [THIN, f"Drill: {clean(result.name)} - {clean(result.title)}", THIN,
             _row("Status", f"{mark} {result.status}"),
             _row("Time to detect", _secs(result.time_to_detect_s)),
             _row("Time to recover", _secs(result.time_to_recover_s)),
             _row("Duration", f"{result.duration_s:.2f}s (seed {result.seed}, "
                              f"time scale {result.details.get('time_scale', '1/1')})"),
             _row("Time basis", result.details.get("time_basis", "-"))]
    if result.details.get("error"):
        lines.append(_row("Error", result.details["error"]))
    lines.append("Criteria:")
    for c in result.criteria:
        lines.append(f"  {OK if c.held else BAD} {clean(c.name)}: expected {clean(c.expected)}, "
                     f"observed {clean(c.observed)}{_margin(c)}")
    if not result.criteria:
        lines.append("  (none evaluated)")
    tight = result.tightest
    if tight is not None:
        lines.append(_row("Tightest margin", f"{clean(tight.name)} {margin_text(tight)}"))
    if result.details.get("skipped_criteria"):
        why = result.details.get("skipped_why") or {}
        lines.extend(f"  - {clean(name)}: skipped ({clean(why.get(name, 'not checked'))})"
                     for name in result.details["skipped_criteria"])
    lines.append(_row("Gates/limits fired", ", ".join(result.gates_fired) or "none"))
    lines.append(_row("Violations", "none" if not result.violations else ""))
    lines.extend(f"  • {clean(v)}" for v in result.violations)
    rollback = result.details.get("rollback") or []
    if rollback:
        lines.append(_row("Rollback", "; ".join(rollback)))
    shown = {k: v for k, v in result.details.items()
             if k not in ("rollback", "error", "time_scale", "protected", "skipped_criteria",
                          "skipped_why", "time_basis")}
    if shown:
        lines.append("Details:")
        lines.extend(f"  • {clean(k)}: {clean(v)}" for k, v in shown.items())
    return lines


def render_text(report: Report) -> str:
    """The human report: a summary, then each drill with its measured times and criteria."""
    counts = report.counts()
    lines = [WIDE, "autoheal - drill report", WIDE,
             f"Time scale {clean(report.time_scale)} (runbook seconds are scaled; criteria give "
             "both)",
             f"Time basis {clean(report.time_basis)}",
             f"Started {clean(report.started_at)}, took {report.duration_s:.1f}s", "",
             THIN, "Summary", THIN,
             _row("Drills", len(report.results)),
             _row("Passed", f"{counts['PASSED']} {OK}"),
             _row("Failed", f"{counts['FAILED']} {BAD}"),
             _row("Aborted", counts["ABORTED"]),
             _row("Errors", counts["ERROR"])]
    if report.target is not None:
        lines.append(_row("Target", f"{report.target} "
                                    f"({', '.join(report.on_target) or 'no drill ran on it'})"))
    lines.append("")
    for result in report.results:
        lines.extend(_drill(result))
        lines.append("")
    lines.append(WIDE)
    verdict = "all drills passed" if report.passed else "NOT all drills passed"
    if report.on_target:
        others = (", the others on their own runtime directories"
                  if len(report.on_target) < len(report.results) else "")
        lines.append(clean(f"{verdict}; {', '.join(report.on_target)} ran against the target "
                           f"{report.target}{others}."))
    else:
        lines.append(f"{verdict}; drills ran on their own runtime directories.")
    for path in report.files or ((report.json_path,) if report.json_path else ()):
        label = "Timeline picture" if path.endswith(".svg") else "JSON report"
        lines.append(f"{label}: {clean(path)}")
    lines.append(WIDE)
    return "\n".join(lines)
