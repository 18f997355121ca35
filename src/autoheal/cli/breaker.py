"""``autoheal breaker status|reset``: the guard's persisted circuit breakers, for an operator.

``status`` reads ``<runtime_dir>/circuit_breaker.json`` (written atomically by the
guard, so no lock is needed to read it) and shows each key: its state *now* (an open
breaker whose cooldown is over shows ``half_open``, as the guard would see it), its
consecutive failures, the failures it remembers, when it opened and when it turns
half-open, in wall-clock UTC.

``reset KEY ... | --all --reason TEXT`` is a durable, journaled operator command that
this process executes itself, under the guard's file lock
(:mod:`autoheal.guard.breaker_reset` says why and how); it goes through the durable
commands' one path (:mod:`autoheal.cli.submit`): the same idempotency keys, the same
report and exit codes as ``restart`` or ``failsafe``. ``--timeout`` bounds both the
wait for the file's lock and the wait for an earlier command with the same key.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from autoheal.cli.submit import Request, report, submit_and_wait
from autoheal.config import Config
from autoheal.guard.breaker_reset import ALL, COMMAND, breakers_path, normalize_key

__all__ = ["breaker_rows", "handle", "parse_keys", "status_command"]


# --------------------------------------------------------------------------- status


def breaker_rows(runtime_dir: Path) -> tuple[list[dict[str, Any]] | None, str]:
    """Every key of the breaker file with its state now and wall-clock times.

    Returns:
        ``(rows, "")``; ``([], "missing")`` with no file; ``(None, why)`` when unreadable.
    """
    from autoheal.guard import breaker_state as bs
    from autoheal.store.atomic import read_json

    result = read_json(breakers_path(runtime_dir))
    if result.reason == "missing":
        return [], "missing"
    mono, wall = time.monotonic(), time.time()
    keys = bs.keys_from_doc(result.doc, mono, wall)
    if keys is None:
        return None, f"{result.reason or 'not a breaker document'} {result.detail}".strip()
    offset = wall - mono

    def w(t: float | None) -> float | None:
        return None if t is None else round(t + offset, 3)

    rows = []
    for key in sorted(keys):
        ks = keys[key]
        state = ks.state
        if state == bs.OPEN and not bs.still_open(ks.open_until, mono):
            state = bs.HALF_OPEN
        rows.append(
            {
                "key": key,
                "state": state,
                "stored_state": ks.state,
                "consecutive_failures": ks.consecutive_failures,
                "recorded_failures": len(ks.failure_times),
                "last_failure_at": w(ks.failure_times[-1]) if ks.failure_times else None,
                "opened_at": w(ks.opened_at) if ks.state != bs.CLOSED else None,
                "half_open_at": w(ks.open_until) if ks.state != bs.CLOSED else None,
                "half_open_successes": ks.half_open_successes,
                "last_reason": ks.last_reason,
                "trips": ks.trips,
            }
        )
    return rows, ""


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def status_command(cfg: Config, *, as_json: bool) -> int:
    rows, why = breaker_rows(cfg.paths.runtime_dir)
    path = breakers_path(cfg.paths.runtime_dir)
    if rows is None:
        text = (
            f"breaker: {path} unreadable ({why}); the guard treats every key as "
            "closed; 'autoheal breaker reset --all' writes a fresh file"
        )
        return fail(Problem("failed", text))
    if as_json:
        print(json.dumps({"path": str(path), "keys": rows}, sort_keys=True))
        return EXIT_OK
    if not rows:
        say(f"no breaker recorded in {path}: every key is closed")
        return EXIT_OK
    table = [["KEY", "STATE", "FAILURES", "OPENED AT", "HALF-OPEN AT", "TRIPS", "LAST REASON"]]
    for r in rows:
        table.append(
            [
                clean(r["key"]),
                clean(r["state"]),
                f"{r['consecutive_failures']} ({r['recorded_failures']} recorded)",
                _when(r["opened_at"]),
                _when(r["half_open_at"]),
                str(r["trips"]),
                clean(r["last_reason"]),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:  # every cell cleaned above; the padding stays
        print("  ".join(c.ljust(wd) for c, wd in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def parse_keys(keys: Sequence[str], all_keys: bool) -> list[str] | str:
    """The normalised key list, or a usage error message."""
    if all_keys and keys:
        return "give KEY ... or --all, not both"
    if all_keys:
        return [ALL]
    if not keys:
        return "name the keys to reset (e.g. BTCUSDT, '*' for the global breaker) or --all"
    return sorted({normalize_key(k) for k in keys})


def handle(args: argparse.Namespace) -> int:
    """``autoheal breaker status [--json]`` or ``autoheal breaker reset KEY...|--all --reason``."""
    cfg = load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    if args.action == "status":
        if args.keys or args.all or args.reason is not None:
            return usage_error("breaker status takes no keys")
        return status_command(cfg, as_json=args.json)
    keys = parse_keys(args.keys, args.all)
    if isinstance(keys, str) or not (args.reason or "").strip():
        return usage_error(keys if isinstance(keys, str) else "breaker reset needs --reason TEXT")
    payload = {"reason": args.reason, "keys": keys}
    request = Request(COMMAND, "", payload, args.idempotency_key, args.timeout)
    return report(submit_and_wait(cfg, request, user=os_user()))
