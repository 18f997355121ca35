"""The ``autoheal`` command line.

``parse_args`` is pure; ``main`` wires real things and returns the exit code:
0 ok, 1 the thing failed or is unhealthy, 2 usage or configuration error,
3 refused by a safety gate. Imports are lazy per command so that
``autoheal status`` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3

DEFAULT_CONFIG = "config/autoheal.toml"


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, as every autoheal usage error does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"autoheal: usage error: {message}\n")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, help="config file (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="autoheal", description="Keeps a trading-bot runtime alive and safe.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run the daemon in the foreground (for systemd)")
    _add_config(p)
    p.add_argument("--chaos", action="store_true", help="accept fault-injection commands")

    p = sub.add_parser("status", help="DOR, failsafe and a line per component")
    _add_config(p)
    p.add_argument("--json", action="store_true")

    for verb in ("restart", "stop", "start"):
        p = sub.add_parser(verb, help=f"{verb} a supervised service through the daemon")
        _add_config(p)
        p.add_argument("name")
        p.add_argument("--reason", default="")
        p.add_argument("--idempotency-key", default=None)
        p.add_argument("--no-wait", action="store_true")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the result")

    p = sub.add_parser("failsafe", help="enter or clear the failsafe (kill switch)")
    _add_config(p)
    p.add_argument("action", choices=["enter", "clear"])
    p.add_argument("--reason", required=True)
    p.add_argument("--idempotency-key", default=None)
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--timeout", type=float, default=30.0)

    p = sub.add_parser("events", help="the audit journal")
    _add_config(p)
    p.add_argument("--since", default=None, help="e.g. 1h, 30m, 90s")
    p.add_argument("--component", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=200)

    p = sub.add_parser("check-config", help="validate the config file")
    _add_config(p)

    p = sub.add_parser("chaos", help="inject a real fault (daemon must run with --chaos)")
    _add_config(p)
    p.add_argument("fault", choices=["kill", "stall", "corrupt", "latency", "netcut", "heal"])
    p.add_argument("target", nargs="?", default="")
    p.add_argument("--for", dest="duration", default=None)
    p.add_argument("--ms", type=float, default=None)
    p.add_argument("--mode", choices=["blackhole", "refuse"], default="blackhole")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--timeout", type=float, default=30.0)

    p = sub.add_parser("drill", help="list or run the safety drills")
    p.add_argument("action", choices=["list", "run"])
    p.add_argument("names", nargs="*")
    p.add_argument("--config", default=None, help="a testnet config to run against (--target)")
    p.add_argument("--target", default=None)
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--report", default=None)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` (without the program name); exits 2 on a usage error."""
    return build_parser().parse_args(list(argv))


def _load_config(path: str):  # type: ignore[no-untyped-def]
    """Load the config or print one clear line; returns None on error."""
    from autoheal.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as err:
        print(f"autoheal: config error: {err}", file=sys.stderr)
        return None


def _cmd_check_config(args: argparse.Namespace) -> int:
    from autoheal.config import summary

    cfg = _load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    print(summary(cfg))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``autoheal`` command and return its exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    handler = _HANDLERS.get(args.command)
    if handler is None:
        print(f"autoheal: {args.command}: not available yet", file=sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except KeyboardInterrupt:
        return EXIT_FAILED


_HANDLERS = {
    "check-config": _cmd_check_config,
}
