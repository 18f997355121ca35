"""The ``autoheal`` command: the only place that parses argv, prints and picks exit codes.

``parse_args`` (:mod:`autoheal.cli.parser`) is pure; :func:`main` looks the command up
in :data:`HANDLERS`, the one handler table, imports that family's module only then
(so that ``autoheal status`` starts fast: ``tests/test_import_cost.py``,
``benchmarks/cli_startup.py``) and returns the handler's exit code: 0 ok, 1 the thing
failed or is unhealthy, 2 usage or configuration error, 3 refused by a safety gate
(:mod:`autoheal.cli.common`).

The families: ``run`` (the daemon; ``check-config``), ``operator`` (restart, stop,
start, failsafe, chaos: durable commands, on the one path of :mod:`autoheal.cli.submit`),
``status``, ``check``, ``events``, ``metrics``, ``breaker``, ``fleet``, ``drill``,
``compliance``, ``risk``.
Nothing outside this package imports it but ``autoheal.__main__`` (and the console
script); ``tests/cli/test_main.py`` holds both to that.

Whatever a command prints that came from outside goes through
:func:`autoheal.cli.common.clean`: no command prints a control character it did not
write (issue 18 A10).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from autoheal.cli.common import EXIT_FAILED, EXIT_USAGE, err
from autoheal.cli.parser import build_parser, parse_args, path_arg, text_problem

__all__ = [
    "FAST",
    "HANDLERS",
    "build_parser",
    "handler_for",
    "main",
    "parse_args",
    "path_arg",
    "text_problem",
]

#: The one handler table: command -> ``module:function`` in this package, imported when run.
HANDLERS: dict[str, str] = {
    "run": "run:run",
    "status": "status:handle",
    "restart": "operator:handle",
    "stop": "operator:handle",
    "start": "operator:handle",
    "failsafe": "operator:handle",
    "events": "events:handle",
    "check-config": "run:check_config",
    "chaos": "operator:handle",
    "drill": "drill:handle",
    "check": "check:handle",
    "metrics": "metrics:handle",
    "breaker": "breaker:handle",
    "fleet": "fleet:handle",
    "compliance": "compliance:handle",
    "risk": "risk:handle",
}
#: Commands that must start fast (tests/test_import_cost.py): they import no logging.
FAST = frozenset({"status", "check-config"})

Handler = Callable[[argparse.Namespace], int]


def handler_for(command: str) -> Handler | None:
    """The function that runs ``command`` (its module imported now); None if there is none."""
    entry = HANDLERS.get(command)
    if entry is None:
        return None
    module, function = entry.split(":")
    handler: Handler = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``autoheal`` command and return its exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command not in FAST:
        # Daemon code run in this process (restart with no daemon, drills, probes) logs
        # warnings through Python's last-resort handler: make it a cleaning one.
        from autoheal.logformat import clean_last_resort

        clean_last_resort()
    try:
        handler = handler_for(args.command)
        if handler is None:
            err(f"autoheal: {args.command}: not available yet")
            return EXIT_USAGE
        return handler(args)
    except KeyboardInterrupt:
        return EXIT_FAILED
    except OSError as exc:
        # An unusable runtime directory, a full disk, a permission: one line, no traceback.
        err(f"autoheal: {args.command}: {exc}")
        return EXIT_FAILED
    except Exception as exc:
        import sqlite3

        from autoheal.store.journal import JournalError

        if isinstance(exc, JournalError):
            err(f"autoheal: {args.command}: {exc}")
            return EXIT_FAILED
        if isinstance(exc, sqlite3.Error):
            # The journal's lock held past its busy timeout ("database is locked"), a
            # corrupt or full journal: one line; the operator may retry the same key.
            err(f"autoheal: {args.command}: the journal refused: {exc}")
            return EXIT_FAILED
        raise
