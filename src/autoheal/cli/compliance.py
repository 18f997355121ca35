"""``autoheal compliance [--json] [--window 24h]``: each RTS 6 / FIA control and its proof.

The rows are :data:`autoheal.core.compliance_matrix.CONTROLS`; the drills' last results
come from the configured runtime's ``drill_history.json`` (written by ``autoheal drill
run --config X``, :mod:`autoheal.drills.history`); :mod:`autoheal.core.compliance`
judges them. Exit 0 when every row's drills passed within the window (``--window``,
else ``[compliance] window``, else 24 h), 1 when a row did not (never run, failed,
stale, or a history that cannot be read), 2 for a usage or configuration error.
docs/compliance.md explains each row and what autoheal does not cover.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from autoheal.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Problem, fail, load_config
from autoheal.core.compliance import DrillVerdict, Matrix, Verdict, judge_matrix
from autoheal.core.compliance_matrix import CONTROLS
from autoheal.terminal import clean, clean_json, clean_lines

__all__ = ["handle", "matrix_doc", "render_text"]

_WORD = {
    Verdict.PASSED: "PASSED",
    Verdict.STALE: "STALE",
    Verdict.FAILED: "FAILED",
    Verdict.NEVER_RUN: "NEVER RUN",
    Verdict.UNKNOWN: "UNKNOWN",
}


def _age(seconds: float | None) -> str:
    """``42s``, ``17m``, ``3h05m``, ``2d04h``: how long ago a drill finished."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86_400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86_400}d{s % 86_400 // 3600:02d}h"


def _span(seconds: float) -> str:
    """The window as written: ``24h``, ``3d``, ``90s``."""
    if seconds % 3600 == 0 and seconds <= 48 * 3600:
        return f"{seconds / 3600:g}h"
    if seconds % 86_400 == 0:
        return f"{seconds / 86_400:g}d"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds:g}s"


def _drill_line(d: DrillVerdict, now: float) -> str:
    parts = [f"    {d.name:<36} {_WORD[d.verdict]:<9}"]
    if d.record is not None:
        parts.append(f" last {d.record.status} {_age(d.age_s)} ago")
        if d.record.margin_pct is not None:
            parts.append(f", margin {d.record.margin_pct:+.0f}%")
        passed_at = d.record.last_passed_at
        if d.verdict is not Verdict.PASSED and passed_at is not None:
            parts.append(f", last passed {_age(max(0.0, now - passed_at))} ago")
    elif d.verdict is Verdict.NEVER_RUN:
        parts.append(f" run: autoheal drill run {d.name} --config CONFIG")
    return "".join(parts)


def render_text(matrix: Matrix, *, history: str, read: str) -> str:
    """The matrix for a terminal: one block per control, one line per drill."""
    lines = [
        f"Compliance matrix (MiFID II RTS 6, FIA 2015): a row is proven when each of its "
        f"drills passed within {_span(matrix.window_s)}",
        f"Drill history: {clean(history)} ({read})",  # a path: one line, whatever it holds
        "",
    ]
    for row in matrix.rows:
        c = row.control
        lines.append(f"{c.article:<24} {_WORD[row.verdict]:<9}  {c.title}")
        lines.append(f"    how: {c.mechanism}")
        if c.config or c.tokens:
            lines.append(
                f"    config: {', '.join(c.config) or '-'}; tokens: {', '.join(c.tokens) or '-'}"
            )
        lines.extend(_drill_line(d, matrix.now) for d in row.drills)
        lines.append("")
    proven = sum(1 for r in matrix.rows if r.passed)
    verdict = "all proven" if matrix.passed else "NOT all proven"
    lines.append(
        f"{proven}/{len(matrix.rows)} controls proven within {_span(matrix.window_s)}: {verdict}"
    )
    return clean_lines("\n".join(lines))


def matrix_doc(matrix: Matrix, *, history: str, read: str) -> dict[str, Any]:
    """The matrix as JSON (``--json``)."""
    return {
        "passed": matrix.passed,
        "window_s": matrix.window_s,
        "now": matrix.now,
        "history": {"path": history, "read": read, "ok": matrix.history_ok},
        "rows": [
            {
                "key": r.control.key,
                "article": r.control.article,
                "title": r.control.title,
                "mechanism": r.control.mechanism,
                "config": list(r.control.config),
                "tokens": list(r.control.tokens),
                "verdict": str(r.verdict),
                "passed": r.passed,
                "drills": [
                    {
                        "name": d.name,
                        "verdict": str(d.verdict),
                        "status": d.status,
                        "age_s": None if d.age_s is None else round(d.age_s, 3),
                        "finished_at": None if d.record is None else d.record.finished_at,
                        "duration_s": None if d.record is None else d.record.duration_s,
                        "margin_pct": None if d.record is None else d.record.margin_pct,
                        "last_passed_at": None if d.record is None else d.record.last_passed_at,
                    }
                    for d in r.drills
                ],
            }
            for r in matrix.rows
        ],
    }


def handle(args: argparse.Namespace) -> int:
    """``autoheal compliance`` from the parsed command line."""
    from autoheal.drills.history import history_path, read_history

    cfg = load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    window = cfg.compliance_window
    if args.window is not None:
        from autoheal.core.durations import parse_duration

        text = args.window.strip()
        try:
            window = float(text[:-1]) * 86_400 if text.endswith("d") else parse_duration(text)
        except ValueError as exc:
            return fail(Problem("usage", f"--window {args.window}: {exc}"))
        if not 0 < window < float("inf"):
            return fail(Problem("usage", f"--window {args.window}: must be more than 0"))
    runtime_dir = cfg.paths.runtime_dir
    records, read = read_history(runtime_dir)
    matrix = judge_matrix(CONTROLS, records, now=time.time(), window_s=window)
    path = str(history_path(runtime_dir))
    if args.json:
        doc = matrix_doc(matrix, history=path, read=read)
        print(clean_json(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()))
    else:
        print(render_text(matrix, history=path, read=read))
    return EXIT_OK if matrix.passed else EXIT_FAILED
