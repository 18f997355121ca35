"""``autoheal metrics``: read the journal and the last drill report, print the summary.

The arithmetic is :mod:`autoheal.cli.summary` (pure); this module reads the journal
(every event, so that the stage at the window's start is known), and the newest
``<runtime_dir>/drills/*.json``, which is where ``autoheal drill run`` writes its
report by default (``--report PATH`` adds another copy elsewhere, not read here), and
prints the summary as JSON or as text (:func:`render_text`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoheal.cli.common import EXIT_OK, EXIT_USAGE, Problem, clean, fail, load_config
from autoheal.config import Config

__all__ = ["handle", "last_drill_report", "metrics_command", "parse_since", "render_text"]

_DAYS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d\s*$")
#: Every event is read; a journal larger than this is cut to its newest events.
MAX_EVENTS = 5_000_000


def parse_since(text: str) -> float:
    """Seconds for ``--since``: ``7d``, ``36h``, ``90m``, ``1h30m``, or plain seconds.

    Raises:
        ValueError: not a positive duration.
    """
    m = _DAYS.match(text)
    if m:
        seconds = float(m.group(1)) * 86_400.0
    else:
        from autoheal.core.durations import parse_duration

        seconds = parse_duration(text)
    if not seconds > 0:
        raise ValueError(f"--since must be positive, got {text!r}")
    return seconds


def last_drill_report(runtime_dir: Path) -> dict[str, Any] | None:
    """The verdicts of the newest readable drill report under ``runtime_dir/drills``."""
    from autoheal.cli.summary import drill_verdicts
    from autoheal.store.atomic import read_json

    folder = runtime_dir / "drills"
    try:
        reports = sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))
    except OSError:
        return None
    for path in reversed(reports):
        found = drill_verdicts(read_json(path, max_bytes=16 * 1024 * 1024).doc, str(path))
        if found is not None:
            return found
    return None


def metrics_command(cfg: Config, *, since: str, as_json: bool) -> int:
    from autoheal.cli.summary import summarize
    from autoheal.store import layout
    from autoheal.store.journal import Journal

    try:
        window = parse_since(since)
    except ValueError as exc:
        return fail(Problem("usage", f"--since: {exc}"))
    path = cfg.paths.runtime_dir / layout.JOURNAL
    if not path.exists():
        return fail(Problem("failed", f"no journal yet at {path}"))
    now = time.time()
    with Journal.open(path) as journal:
        events = journal.events(limit=MAX_EVENTS)
    doc = summarize(
        events,
        components=list(cfg.services),
        dependencies=list(cfg.dependencies),
        now=now,
        since=now - window,
        drill=last_drill_report(cfg.paths.runtime_dir),
    )
    if as_json:
        print(json.dumps(doc, sort_keys=True))
    else:
        print(render_text(doc))
    return EXIT_OK


def handle(args: argparse.Namespace) -> int:
    """``autoheal metrics [--since 7d] [--json]``."""
    cfg = load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    return metrics_command(cfg, since=args.since, as_json=args.json)


# --------------------------------------------------------------------------- text


def _s(value: Any) -> str:
    """Seconds for people; ``-`` for anything that is not a number (a drill report's times
    are read from a file as they are)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    v = float(value)
    if v >= 3600:
        return f"{v / 3600:.1f}h"
    if v >= 120:
        return f"{v / 60:.1f}m"
    return f"{v:.2f}s" if v < 10 else f"{v:.0f}s"


def _when(ts: float | None) -> str:
    """A unix time as ISO 8601 UTC, to the second; ``-`` for none."""
    import datetime as dt

    if ts is None:
        return "-"
    t = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def render_text(doc: Mapping[str, Any]) -> str:
    """The summary (:func:`autoheal.cli.summary.summarize`'s document) for people."""
    lines = [
        f"window: last {_s(doc['window_s'])} (since {_when(doc['since'])}; "
        f"journal from {_when(doc['journal_from'])})",
        "",
    ]
    for name, c in doc["components"].items():
        lines += _component_lines(name, c)
    for name, d in doc["dependencies"].items():
        lines += _dependency_lines(name, d)
    lines += _failsafe_lines(doc["failsafe"])
    lines += _drill_lines(doc.get("last_drill"))
    return "\n".join(lines)


def _component_lines(name: str, c: Mapping[str, Any]) -> list[str]:
    rw = c["restarts_window"]
    ttd, ttr = c["time_to_detect_s"], c["time_to_recover_s"]
    lines = [
        f"{clean(name)}: restarts {c['restarts_24h']} in 24h, {rw['total']} in window "
        f"({rw['by_operator']} by operator); uptime {_s(c['uptime_s'])}",
        f"  incidents {len(c['incidents'])}: detect p50 {_s(ttd['p50'])} max {_s(ttd['max'])}"
        f", recover p50 {_s(ttr['p50'])} max {_s(ttr['max'])}",
    ]
    for i in c["incidents"]:
        end = "ongoing" if i["ongoing"] else f"recovered in {_s(i['time_to_recover_s'])}"
        who = " (operator)" if i["by_operator"] else ""
        lines.append(
            f"    {_when(i['started_at'])} {clean(i['reason'])}{who}: detected in "
            f"{_s(i['time_to_detect_s'])} (evidence {clean(i['evidence'])}), "
            f"{i['restarts']} restart(s), {end}"
        )
    stages = ", ".join(f"{clean(k)} {_s(v)}" for k, v in c["stage_time_s"].items()) or "-"
    lines.append(f"  time per stage: {stages}")
    return lines


def _dependency_lines(name: str, d: Mapping[str, Any]) -> list[str]:
    lines = [
        f"{clean(name)} (dependency): {len(d['degraded_periods'])} degraded period(s), "
        f"{_s(d['degraded_s'])} in window"
    ]
    for p in d["degraded_periods"]:
        end = "ongoing" if p["ongoing"] else f"for {_s(p['duration_s'])}"
        lines.append(f"    {_when(p['started_at'])} {clean(p['reason'])} {end}")
    return lines


def _failsafe_lines(periods: list[Mapping[str, Any]]) -> list[str]:
    lines = [f"failsafe entries: {len(periods)}"]
    for p in periods:
        cleared = (
            "still active"
            if p["ongoing"]
            else f"cleared by {clean(p['ended_by'])} after {_s(p['duration_s'])}"
        )
        lines.append(
            f"    {_when(p['started_at'])} {clean(p['reason'])} by {clean(p['started_by'])}, "
            f"{cleared}"
        )
    return lines


def _drill_lines(drill: Mapping[str, Any] | None) -> list[str]:
    if drill is None:
        return ["last drill: none found"]
    lines = [
        f"last drill: {clean(drill.get('started_at'))} "
        f"{'PASSED' if drill.get('passed') else 'FAILED'} ({clean(drill.get('path'))})"
    ]
    for d in drill["drills"]:
        lines.append(
            f"    {clean(d['name'])}: {clean(d['status'])} detect "
            f"{_s(d['time_to_detect_s'])} recover {_s(d['time_to_recover_s'])}"
        )
    return lines
