"""``autoheal events [--since 1h] [--component NAME] [--json] [--limit N]``: the audit journal.

One line per event, oldest first (:func:`autoheal.store.journal.format_event`, which
cleans every field), or one JSON object per line with ``--json``. Reads the journal
only: it works with or without a daemon, and exits 1 when there is no journal yet.
"""

from __future__ import annotations

import argparse

from autoheal.cli.common import EXIT_OK, EXIT_USAGE, Problem, fail, load_config

__all__ = ["handle"]


def handle(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    import time

    from autoheal.store.journal import Journal, format_event

    since = None
    if args.since:
        from autoheal.core.durations import parse_duration

        try:
            since = time.time() - parse_duration(args.since)
        except ValueError as exc:
            return fail(Problem("usage", f"--since: {exc}"))
    from autoheal.store import layout

    path = cfg.paths.runtime_dir / layout.JOURNAL
    if not path.exists():
        return fail(Problem("failed", f"no journal yet at {path}"))
    with Journal.open(path) as journal:
        events = journal.events(since=since, component=args.component, limit=args.limit)
    if args.json:
        import json

        for e in events:
            print(json.dumps(e.to_doc(), sort_keys=True))
    else:
        for e in events:
            print(format_event(e))  # cleaned field by field; the padding stays
    return EXIT_OK
