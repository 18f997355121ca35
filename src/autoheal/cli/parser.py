"""The ``autoheal`` command line's grammar: argv in, an ``argparse.Namespace`` out, nothing else.

Pure: :func:`parse_args` reads no file and touches no process; a usage error is one
line on stderr and exit 2 (``SystemExit``), the only thing it does to the world.

One ``_add_*`` function per command family, in the order ``autoheal --help`` lists
them; :data:`autoheal.cli.HANDLERS` names the code that runs each command, and
``tests/cli/test_main.py`` keeps the two in step.

Every string argument is free text (a reason, a key, a name) unless declared
``type=path_arg``; free text that is not valid UTF-8 is a usage error here, the one
place argv is parsed, before anything is queued, checksummed or journaled (issue 18 A9).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TypeAlias

from autoheal.cli.common import DEFAULT_CONFIG, EXIT_USAGE, clean

__all__ = ["SERVICE_VERBS", "build_parser", "parse_args", "path_arg", "text_problem"]

#: The commands that act on one supervised service (``autoheal restart NAME``).
SERVICE_VERBS = ("restart", "stop", "start")


def path_arg(text: str) -> str:
    """Marks an argument as a file-system path (``type=path_arg``): it is opened, never
    stored or shown as text, so it may hold any bytes a Linux path can."""
    return text


def text_problem(value: str) -> str | None:
    """Why ``value`` is not text we can store, checksum, journal and print; None if it is.

    Python hands argv bytes that are not UTF-8 over as lone surrogates
    (``$'\\xff'`` is ``'\\udcff'``), which no UTF-8 writer (orjson, SQLite, a terminal)
    accepts.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(value[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        return f"not valid UTF-8 text ({what} at position {exc.start})"
    return None


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, as every autoheal usage error does, and refuses
    free text that is not UTF-8 (see the module doc)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # The message may quote the command line (unrecognized arguments: ...).
        self.exit(EXIT_USAGE, f"autoheal: usage error: {clean(message)}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            if action.type is path_arg or isinstance(action, argparse._SubParsersAction):
                continue
            value = getattr(parsed, action.dest, None)
            for item in value if isinstance(value, list) else [value]:
                problem = text_problem(item) if isinstance(item, str) else None
                if problem is not None:
                    name = "/".join(action.option_strings) or action.dest
                    self.error(f"argument {name}: {problem}")
        return parsed, extras


class _DrillParser(_Parser):
    """``autoheal drill``: drill names may come after options (``run --config X kill_feeder``).

    argparse binds ``names`` (``nargs="*"``) with the first run of positionals, so names
    after an option would be "unrecognized arguments"; intermixed parsing takes them.
    """

    _inside = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        if self._inside:  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


_Sub: TypeAlias = "argparse._SubParsersAction[_Parser]"


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        type=path_arg,
        help="config file (default %(default)s)",
    )


def _add_run(sub: _Sub) -> None:
    p = sub.add_parser("run", help="run the daemon in the foreground (for systemd)")
    _add_config(p)
    p.add_argument("--chaos", action="store_true", help="accept fault-injection commands")


def _add_status(sub: _Sub) -> None:
    p = sub.add_parser("status", help="DOR, failsafe and a line per component")
    _add_config(p)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--runtime-dir",
        default=None,
        type=path_arg,
        help="read this runtime directory without loading the config (e.g. while it is broken)",
    )
    p.add_argument(
        "--stop-file", default=None, type=path_arg, help="with --runtime-dir (default: beside it)"
    )


def _add_services(sub: _Sub) -> None:
    for verb in SERVICE_VERBS:
        p = sub.add_parser(verb, help=f"{verb} a supervised service through the daemon")
        _add_config(p)
        p.add_argument("name")
        p.add_argument("--reason", default="")
        p.add_argument("--idempotency-key", default=None)
        p.add_argument("--no-wait", action="store_true")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the result")


def _add_failsafe(sub: _Sub) -> None:
    p = sub.add_parser("failsafe", help="enter or clear the failsafe (kill switch)")
    _add_config(p)
    p.add_argument(
        "action",
        choices=["enter", "clear", "reduce-only"],
        help="reduce-only: only position-reducing sells (also to unwind inside a failsafe)",
    )
    p.add_argument("--reason", required=True)
    p.add_argument(
        "--scope",
        default=None,
        help="halt (enter) or lift (clear) only a subset: kind=value[,...] with kinds "
        "strategy, symbol, venue, side (e.g. symbol=BTCUSDT); default: the whole runtime",
    )
    p.add_argument("--idempotency-key", default=None)
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--timeout", type=float, default=30.0)


def _add_events(sub: _Sub) -> None:
    p = sub.add_parser("events", help="the audit journal")
    _add_config(p)
    p.add_argument("--since", default=None, help="e.g. 1h, 30m, 90s")
    p.add_argument("--component", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=200)


def _add_check_config(sub: _Sub) -> None:
    p = sub.add_parser("check-config", help="validate the config file")
    _add_config(p)


def _add_chaos(sub: _Sub) -> None:
    p = sub.add_parser("chaos", help="inject a real fault (daemon must run with --chaos)")
    _add_config(p)
    p.add_argument("fault", choices=["kill", "stall", "corrupt", "latency", "netcut", "heal"])
    p.add_argument("target", nargs="?", default="")
    p.add_argument("--for", dest="duration", default=None)
    p.add_argument("--ms", type=float, default=None)
    p.add_argument("--mode", choices=["blackhole", "refuse"], default="blackhole")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--timeout", type=float, default=30.0)


def _add_drill(sub: _Sub) -> None:
    p = sub.add_parser("drill", help="list or run the safety drills")
    p.__class__ = _DrillParser  # add_parser builds every subparser with one class
    p.add_argument("action", choices=["list", "run"])
    p.add_argument("names", nargs="*")
    p.add_argument(
        "--config",
        default=None,
        type=path_arg,
        help="which config (report location, files to protect); never a target: "
        "the drills still run on their own stacks",
    )
    p.add_argument(
        "--target",
        default=None,
        type=path_arg,
        metavar="CONFIG",
        help="a testnet/paper config whose daemon runs with --chaos: the daemon drills "
        "inject their faults into it",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--report", default=None, type=path_arg)
    p.add_argument(
        "--scenarios",
        action="append",
        default=[],
        type=path_arg,
        metavar="DIR",
        help="a folder of your own scenario files (repeatable)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=None,
        metavar="X",
        help="with --target: the runbook's timings times X (1: real timings) instead of "
        "timings computed from the target's own probe and policy settings",
    )
    p.add_argument(
        "--wait",
        default=None,
        metavar="DURATION",
        help="with --target: how long a drill waits for the drill lock and its "
        "preconditions (DOR, no episode, no failsafe) before it is refused (exit 3)",
    )


def _add_check(sub: _Sub) -> None:
    p = sub.add_parser("check", help="run every probe once, now; exit 0 when DOR would be true")
    _add_config(p)
    p.add_argument("--json", action="store_true")


def _add_metrics(sub: _Sub) -> None:
    p = sub.add_parser("metrics", help="restarts, incidents, detect/recover times (journal)")
    _add_config(p)
    p.add_argument("--since", default="7d", help="the window, e.g. 7d, 24h, 90m (default 7d)")
    p.add_argument("--json", action="store_true")


def _add_breaker(sub: _Sub) -> None:
    p = sub.add_parser("breaker", help="the guard's circuit breakers: status, or reset (journaled)")
    _add_config(p)
    p.add_argument("action", choices=["status", "reset"])
    p.add_argument("keys", nargs="*", help="reset: the keys (symbols; '*' is the global breaker)")
    p.add_argument("--all", action="store_true", help="reset: every key")
    p.add_argument("--reason", default=None, help="reset: why (required, journaled)")
    p.add_argument("--idempotency-key", default=None)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--json", action="store_true", help="status: JSON")


def _add_fleet(sub: _Sub) -> None:
    p = sub.add_parser("fleet", help="the fleet (Redis): every host's status, the fleet switch")
    _add_config(p)
    p.add_argument("action", choices=["status", "halt", "reduce-only", "run"])
    p.add_argument("--reason", default=None, help="halt, reduce-only, run: why (journaled)")
    p.add_argument("--json", action="store_true", help="status: JSON")
    p.add_argument(
        "--scope",
        default=None,
        help="halt, run: halt (or resume) only this scope on every host, e.g. symbol=BTCUSDT",
    )


def _add_compliance(sub: _Sub) -> None:
    p = sub.add_parser(
        "compliance", help="each RTS 6 / FIA control, the drill that proves it, its last result"
    )
    _add_config(p)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--window",
        default=None,
        help="how old a drill's pass may be, e.g. 24h, 7d (default: [compliance] window, 24h)",
    )


def _add_risk(sub: _Sub) -> None:
    p = sub.add_parser("risk", help="scopes the guard disabled: status, or enable one (journaled)")
    _add_config(p)
    p.add_argument("action", choices=["status", "enable"])
    p.add_argument("scope", nargs="?", default=None,
                   help="enable: the scope, e.g. strategy=grid,symbol=BTCUSDT,side=buy (or all)")
    p.add_argument("--operator", default=None,
                   help="enable: who re-enables it (journaled; default the OS user)")
    p.add_argument("--idempotency-key", default=None)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--json", action="store_true", help="status: JSON")


#: Every command family's subparsers, in the order ``autoheal --help`` lists them.
_FAMILIES = (
    _add_run,
    _add_status,
    _add_services,
    _add_failsafe,
    _add_events,
    _add_check_config,
    _add_chaos,
    _add_drill,
    _add_check,
    _add_metrics,
    _add_breaker,
    _add_fleet,
    _add_compliance,
    _add_risk,
)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``autoheal`` parser (a new one each call)."""
    parser = _Parser(prog="autoheal", description="Keeps a trading-bot runtime alive and safe.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in _FAMILIES:
        add(sub)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` (without the program name); exits 2 on a usage error."""
    return build_parser().parse_args(list(argv))
