"""The ``autoheal`` command line.

``parse_args`` is pure; ``main`` wires real things and returns the exit code:
0 ok, 1 the thing failed or is unhealthy, 2 usage or configuration error,
3 refused by a safety gate. Imports are lazy per command so that
``autoheal status`` starts fast.

Whatever a command prints that came from outside (a reason, a journal row, a key, an
error's text) goes through :mod:`autoheal.terminal` first: no command prints a
control character it did not write (issue 18 A10).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from autoheal.terminal import clean

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3

DEFAULT_CONFIG = "config/autoheal.toml"


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
    """argparse that exits 2 with one line, as every autoheal usage error does.

    Every string argument is free text (a reason, a key, a name) unless declared
    ``type=path_arg``; free text that is not valid UTF-8 is a usage error here, the
    one place argv is parsed, before anything is queued, checksummed or journaled.
    """

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


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        type=path_arg,
        help="config file (default %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="autoheal", description="Keeps a trading-bot runtime alive and safe.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run the daemon in the foreground (for systemd)")
    _add_config(p)
    p.add_argument("--chaos", action="store_true", help="accept fault-injection commands")

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
    p.add_argument(
        "action",
        choices=["enter", "clear", "reduce-only"],
        help="reduce-only: only position-reducing sells (also to unwind inside a failsafe)",
    )
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

    p = sub.add_parser("check", help="run every probe once, now; exit 0 when DOR would be true")
    _add_config(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("metrics", help="restarts, incidents, detect/recover times (journal)")
    _add_config(p)
    p.add_argument("--since", default="7d", help="the window, e.g. 7d, 24h, 90m (default 7d)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("breaker", help="the guard's circuit breakers: status, or reset (journaled)")
    _add_config(p)
    p.add_argument("action", choices=["status", "reset"])
    p.add_argument("keys", nargs="*", help="reset: the keys (symbols; '*' is the global breaker)")
    p.add_argument("--all", action="store_true", help="reset: every key")
    p.add_argument("--reason", default=None, help="reset: why (required, journaled)")
    p.add_argument("--idempotency-key", default=None)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--json", action="store_true", help="status: JSON")

    p = sub.add_parser("fleet", help="the fleet (Redis): every host's status, the fleet switch")
    _add_config(p)
    p.add_argument("action", choices=["status", "halt", "reduce-only", "run"])
    p.add_argument("--reason", default=None, help="halt, reduce-only, run: why (journaled)")
    p.add_argument("--json", action="store_true", help="status: JSON")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` (without the program name); exits 2 on a usage error."""
    return build_parser().parse_args(list(argv))


def _err(message: str) -> None:
    """One line on stderr, cleaned whole: its values came from outside (argv, files, errors)."""
    print(clean(message), file=sys.stderr)


def _load_config(path: str):  # type: ignore[no-untyped-def]
    """Load the config or print one clear line; returns None on error."""
    from autoheal.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as err:  # quotes the file's keys and values
        _err(f"autoheal: config error: {err}")
        return None


def _stop_file_refused(cfg) -> bool:  # type: ignore[no-untyped-def]
    """Print why the stop file cannot be written, if it cannot; True when refused."""
    from autoheal.config._paths import stop_file_problem

    problem = stop_file_problem(cfg)
    if problem is not None:
        _err(f"autoheal: config error: {cfg.path}: {problem}")
    return problem is not None


def _cmd_check_config(args: argparse.Namespace) -> int:
    from autoheal.config import summary

    cfg = _load_config(args.config)
    if cfg is None or _stop_file_refused(cfg):
        return EXIT_USAGE
    print(clean(summary(cfg)))  # names the runtime directory, which may be any path
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``autoheal`` command and return its exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    handler = _HANDLERS.get(args.command)
    if handler is None:
        _err(f"autoheal: {args.command}: not available yet")
        return EXIT_USAGE
    if args.command not in _FAST:
        # Daemon code run in this process (restart with no daemon, drills, probes) logs
        # warnings through Python's last-resort handler: make it a cleaning one.
        from autoheal.logformat import clean_last_resort

        clean_last_resort()
    try:
        return handler(args)
    except KeyboardInterrupt:
        return EXIT_FAILED
    except OSError as exc:
        # An unusable runtime directory, a full disk, a permission: one line, no traceback.
        _err(f"autoheal: {args.command}: {exc}")
        return EXIT_FAILED
    except Exception as exc:
        from autoheal.store.journal import JournalError

        if isinstance(exc, JournalError):
            _err(f"autoheal: {args.command}: {exc}")
            return EXIT_FAILED
        raise


_HANDLERS = {
    "check-config": _cmd_check_config,
}
#: Commands that must start fast (tests/test_import_cost.py): they import no logging.
_FAST = frozenset({"status", "check-config"})


# ---------------------------------------------------------------------- daemon & operator


def _setup_logging(log_file: object = None) -> None:
    import logging

    from autoheal.logformat import CleanFormatter

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        handlers.append(logging.FileHandler(str(log_file)))
    formatter = CleanFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)


def _cmd_run(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
    if cfg is None or _stop_file_refused(cfg):
        return EXIT_USAGE
    if args.chaos and cfg.environment == "live":
        _err(
            f'autoheal: refused: --chaos with environment = "live" in {cfg.path}; '
            "fault injection runs only against testnet or paper"
        )
        return EXIT_REFUSED
    injector = None
    if args.chaos:
        from autoheal.chaos.handler import ChaosError, ChaosHandler, establish_stop_conditions

        injector = ChaosHandler
        try:
            establish_stop_conditions(cfg.chaos.protected_files)
        except ChaosError as exc:
            _err(f"autoheal: refused: --chaos: {exc} (chaos.protected_files in {cfg.path})")
            return EXIT_REFUSED
    import os

    # What systemd's UMask=0027 does, for a daemon started by hand: nothing the daemon or
    # its services create is open to "other" (a stricter umask is kept as it is).
    os.umask(os.umask(0o027) | 0o027)
    _setup_logging(cfg.daemon.log_file)
    from autoheal.daemon.loop import run_daemon

    return run_daemon(cfg, chaos=injector)


def _cmd_status(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.runtime_dir is not None:
        from autoheal.cli.status import status_command

        runtime_dir = Path(args.runtime_dir)
        stop = Path(args.stop_file) if args.stop_file else runtime_dir.parent / "STOP.TXT"
        return status_command(runtime_dir, stop, as_json=args.json)
    cfg = _load_config(args.config)
    if cfg is None:
        _err(
            "autoheal: the daemon keeps running its last valid config; "
            "'autoheal status --runtime-dir DIR' reads its files without the config"
        )
        return EXIT_USAGE
    from autoheal.cli.status import status_command

    return status_command(
        cfg.paths.runtime_dir,
        cfg.paths.stop_file,
        as_json=args.json,
        heartbeat_interval_s=cfg.daemon.heartbeat_interval,
    )


def _os_user() -> str:
    import os
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid:{os.geteuid()}"


def _print_result(command) -> int:  # type: ignore[no-untyped-def]
    """The command's outcome in one line (its fields come from the journal: cleaned)."""
    import json

    result = command.result or {}
    if command.status == "succeeded":
        print(clean(f"{command.describe()} succeeded: {json.dumps(result, sort_keys=True)}"))
        return EXIT_OK
    if command.status in ("pending", "claimed"):
        # Not done is not success: exit 1, whatever may still happen to it.
        by = f" by {command.claimed_by}" if command.status == "claimed" else ""
        _err(
            f"autoheal: {command.describe()}: no result yet: command {command.id} is still "
            f"{command.status}{by}"
        )
        return EXIT_FAILED
    message = result.get("message") or result.get("reason") or command.status
    _err(f"autoheal: {command.describe()} {command.status}: {message}")
    return EXIT_REFUSED if result.get("refused") else EXIT_FAILED


def _submit(args: argparse.Namespace, ctype: str, target: str, payload: dict) -> int:  # type: ignore[type-arg]
    cfg = _load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    if target and ctype in ("restart", "stop", "start") and target not in cfg.services:
        known = ", ".join(cfg.services)
        _err(f"autoheal: usage error: unknown service {target!r} (known: {known})")
        return EXIT_USAGE
    from autoheal.store import commands as queue
    from autoheal.store.journal import Journal
    from autoheal.store.lock import lock_holder

    user = _os_user()
    settler = f"cli:{user}"  # who settles a claim whose claimer is gone, for the journal
    cfg.paths.runtime_dir.mkdir(parents=True, exist_ok=True)
    with Journal.open(cfg.paths.runtime_dir) as journal:
        try:
            submitted = queue.submit(
                journal,
                ctype,
                target,
                payload,
                user,
                idempotency_key=args.idempotency_key,
                ttl=max(60.0, args.timeout * 2),
            )
        except queue.KeyConflictError as exc:
            _err(f"autoheal: usage error: {exc}")
            return EXIT_USAGE
        command = submitted.command
        if submitted.duplicate:
            print(
                clean(
                    f"duplicate: idempotency key {command.idempotency_key!r} already used by "
                    f"{command.id} ({command.status})"
                )
            )
            # Its claimer may have died: then nobody will ever finish it.
            command = queue.settle_if_claimer_gone(journal, command, settled_by=settler) or command
            if command.status in queue.TERMINAL_STATUSES:
                return _print_result(command)  # the recorded result, the original's exit code
            if command.status == "claimed" or lock_holder(cfg.paths.runtime_dir) is not None:
                if args.no_wait:
                    print(clean(f"queued command {command.id} ({command.status}); not waiting"))
                    return EXIT_OK
                return _print_result(
                    queue.wait_result(journal, command.id, args.timeout, settled_by=settler)
                )
            # pending and no daemon: act on it directly, as for a new command
        if lock_holder(cfg.paths.runtime_dir) is None and ctype.startswith("chaos_"):
            queue.claim(journal, command.id, "cli")
            queue.finish(journal, command.id, False, {"reason": "no_daemon"})
            _err("autoheal: no daemon running: chaos faults need 'autoheal run --chaos'")
            return EXIT_FAILED
        if lock_holder(cfg.paths.runtime_dir) is None:
            _err("no daemon running (its lock is free): executing directly")
            from autoheal.daemon.direct import execute_directly

            command = execute_directly(cfg, journal, command)
            if command.status not in queue.TERMINAL_STATUSES:
                # Another CLI claimed it first (same key, racing): wait for its result.
                command = queue.wait_result(journal, command.id, args.timeout, settled_by=settler)
            return _print_result(command)
        if args.no_wait:
            # Exit 0 here means "durably queued", not "done": the caller chose not to wait.
            print(clean(f"queued command {command.id}; not waiting for its result"))
            return EXIT_OK
        command = queue.wait_result(journal, command.id, args.timeout, settled_by=settler)
        return _print_result(command)


def _cmd_service(args: argparse.Namespace) -> int:
    return _submit(args, args.command, args.name, {"reason": args.reason or "manual"})


def _cmd_failsafe(args: argparse.Namespace) -> int:
    ctype = "failsafe_" + args.action.replace("-", "_")
    return _submit(args, ctype, "", {"reason": args.reason})


def _cmd_chaos(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    if cfg.environment == "live":
        _err(f'autoheal: refused: chaos against environment = "live" ({cfg.path})')
        return EXIT_REFUSED
    if args.fault != "heal" and not args.target:
        _err(f"autoheal: usage error: chaos {args.fault} needs a target")
        return EXIT_USAGE
    payload = {"duration": args.duration, "ms": args.ms, "mode": args.mode, "reason": "chaos"}
    args.idempotency_key = None
    return _submit(args, f"chaos_{args.fault}", args.target, payload)


def _cmd_drill(args: argparse.Namespace) -> int:
    from pathlib import Path

    from autoheal.cli.drill import drill_command

    return drill_command(
        args.action,
        list(args.names),
        target=args.target,
        config=args.config,
        fmt=args.format,
        report=args.report,
        runtime_dir=None,
        scenario_dirs=[Path(d) for d in args.scenarios],
        time_scale=args.time_scale,
        wait=args.wait,
    )


def _cmd_events(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
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
            _err(f"autoheal: usage error: --since: {exc}")
            return EXIT_USAGE
    from autoheal.store import layout as runtime_files

    path = cfg.paths.runtime_dir / runtime_files.JOURNAL
    if not path.exists():
        _err(f"autoheal: no journal yet at {path}")
        return EXIT_FAILED
    with Journal.open(path) as journal:
        events = journal.events(since=since, component=args.component, limit=args.limit)
    if args.json:
        import json

        for e in events:
            print(json.dumps(e.to_doc(), sort_keys=True))
    else:
        for e in events:
            print(format_event(e))
    return EXIT_OK


_HANDLERS.update(
    {
        "run": _cmd_run,
        "status": _cmd_status,
        "restart": _cmd_service,
        "stop": _cmd_service,
        "start": _cmd_service,
        "failsafe": _cmd_failsafe,
        "events": _cmd_events,
        "chaos": _cmd_chaos,
        "drill": _cmd_drill,
    }
)


# ---------------------------------------------------------------------- check, metrics, breaker


def _cmd_check(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    from autoheal.cli.check import check_command

    return check_command(cfg, as_json=args.json)


_HANDLERS["check"] = _cmd_check


def _cmd_metrics(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    from autoheal.cli.metrics import metrics_command

    return metrics_command(cfg, since=args.since, as_json=args.json)


_HANDLERS["metrics"] = _cmd_metrics


def _cmd_breaker(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    from autoheal.cli import breaker as breaker_cli

    if args.action == "status":
        if args.keys or args.all or args.reason is not None:
            _err("autoheal: usage error: breaker status takes no keys")
            return EXIT_USAGE
        return breaker_cli.status_command(cfg, as_json=args.json)
    keys = breaker_cli.parse_keys(args.keys, args.all)
    if isinstance(keys, str) or not (args.reason or "").strip():
        problem = keys if isinstance(keys, str) else "breaker reset needs --reason TEXT"
        _err(f"autoheal: usage error: {problem}")
        return EXIT_USAGE
    from autoheal.guard.breaker_reset import submit_reset
    from autoheal.store.commands import KeyConflictError

    def duplicate(command) -> None:  # type: ignore[no-untyped-def]
        print(
            clean(
                f"duplicate: idempotency key {command.idempotency_key!r} already used by "
                f"{command.id} ({command.status})"
            )
        )

    try:
        command = submit_reset(
            cfg.paths.runtime_dir,
            keys,
            reason=args.reason,
            user=_os_user(),
            idempotency_key=args.idempotency_key,
            timeout=args.timeout,
            on_duplicate=duplicate,
        )
    except KeyConflictError as exc:
        _err(f"autoheal: usage error: {exc}")
        return EXIT_USAGE
    return _print_result(command)


_HANDLERS["breaker"] = _cmd_breaker


def _cmd_fleet(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    from autoheal.cli import fleet as fleet_cli  # imports redis only now

    if args.action == "status":
        return fleet_cli.status_command(cfg, as_json=args.json)
    if not (args.reason or "").strip():
        _err(f"autoheal: usage error: fleet {args.action} needs --reason TEXT")
        return EXIT_USAGE
    return fleet_cli.set_command(cfg, args.action, reason=args.reason, user=_os_user())


_HANDLERS["fleet"] = _cmd_fleet
