"""``autoheal metrics``: read the journal and the last drill report, print the summary.

The arithmetic is :mod:`autoheal.cli.summary` (pure); this module only reads: the journal
(every event, so that the stage at the window's start is known), and the newest
``<runtime_dir>/drills/*.json``, which is where ``autoheal drill run`` writes its
report by default (``--report PATH`` adds another copy elsewhere, not read here).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

from autoheal.cli.common import EXIT_OK, EXIT_USAGE, Problem, fail, load_config
from autoheal.config import Config

__all__ = ["handle", "last_drill_report", "metrics_command", "parse_since"]

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
    from autoheal.cli.summary import render_text, summarize
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
