"""``autoheal risk status|enable``: the scopes the guard's repeated-execution throttle disabled.

``status`` reads ``<runtime_dir>/risk_scope_latches.json`` (written atomically by the
guard: no lock needed to read) and lists each disabled scope; a garbage document is
shown as every order refused (exit 1).

``enable SCOPE [--operator NAME]`` is a durable, journaled operator command run by
this process under the guard's file lock (:mod:`autoheal.guard.risk_enable` says why),
with the same idempotency keys, report and exit codes as ``breaker reset``.
"""

from __future__ import annotations

import argparse
import json
import time

from autoheal.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    Problem,
    clean,
    fail,
    load_config,
    os_user,
    say,
    usage_error,
)
from autoheal.cli.submit import Finished, report
from autoheal.config import Config

__all__ = ["handle", "status_command"]


def status_command(cfg: Config, *, as_json: bool) -> int:
    from autoheal.guard.scope_latches import latches_path, read_latches

    runtime_dir = cfg.paths.runtime_dir
    path = latches_path(runtime_dir)
    view = read_latches(runtime_dir)
    if view.garbage:
        return fail(
            Problem(
                "failed",
                f"risk: {path} unreadable ({view.garbage}); the guard refuses every order "
                "until 'autoheal risk enable all'",
            )
        )
    rows = [{"scope": s, **dict(e)} for s, e in sorted(view.latches.items())]
    if as_json:
        print(json.dumps({"path": str(path), "latches": rows}, sort_keys=True))
        return EXIT_OK
    if not rows:
        say(f"no scope disabled in {path}")
        return EXIT_OK
    for r in rows:
        if "unreadable" in r:
            say(f"{clean(r['scope'])}  disabled: its entry is unreadable: {clean(r['unreadable'])}")
            continue
        since = r.get("since")
        when = (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
            if isinstance(since, int | float)
            else "?"
        )
        say(
            f"{clean(r['scope'])}  disabled since {when}: {clean(str(r.get('reason')))} "
            f"executions={clean(str(r.get('executions')))} "
            f"window_s={clean(str(r.get('window_s')))}"
        )
    return EXIT_OK


def handle(args: argparse.Namespace) -> int:
    """``autoheal risk status [--json]`` or ``autoheal risk enable SCOPE [--operator NAME]``."""
    from autoheal.guard.risk_enable import normalize_scope, submit_enable
    from autoheal.store.commands import KeyConflictError

    cfg = load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    if args.action == "status":
        if args.scope is not None or args.operator is not None:
            return usage_error("risk status takes no scope")
        return status_command(cfg, as_json=args.json)
    if not args.scope:
        return usage_error(
            "risk enable needs the SCOPE, e.g. strategy=grid,symbol=BTCUSDT,side=buy"
        )
    scope = normalize_scope(args.scope)
    if scope is None:
        return usage_error(
            f"{args.scope!r} is not a scope: kind=value joined by ',' in the order "
            "strategy, symbol, venue, side (or 'all')"
        )
    operator = (args.operator or "").strip() or os_user()
    try:
        command = submit_enable(
            cfg.paths.runtime_dir,
            scope,
            operator=operator,
            os_user=os_user(),
            timeout=args.timeout,
            idempotency_key=args.idempotency_key,
            on_duplicate=lambda c: say(
                f"duplicate: idempotency key {c.idempotency_key!r} already used by {c.id}"
            ),
        )
    except KeyConflictError as exc:
        return report(Problem("usage", str(exc)))
    return report(Finished(command))
