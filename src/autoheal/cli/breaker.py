"""``autoheal breaker status|reset``: the guard's persisted circuit breakers, for an operator.

``status`` reads ``<runtime_dir>/circuit_breaker.json`` (written atomically by the
guard, so no lock is needed to read it) and shows each key: its state *now* (an open
breaker whose cooldown is over shows ``half_open``, as the guard would see it), its
consecutive failures, the failures it remembers, when it opened and when it turns
half-open, in wall-clock UTC.

``reset`` is a durable, journaled operator command, executed by the CLI itself:

* The daemon holds no breaker state (the core knows nothing of breakers; the file is
  the guard's), so nothing would be gained by routing the reset through the daemon,
  and the reset must work the same whether a daemon runs or not.
* It still goes through the journal's command queue (:mod:`autoheal.store.commands`),
  so it is durable and audited exactly like ``restart`` or ``failsafe``: submitted with
  an idempotency key, a checksum and an expiry, with ``actor`` = the OS user and the
  events ``started``, ``breaker_reset.started``, ``breaker_reset.succeeded|failed``,
  ``result_written``. The submit and the claim happen in one journal transaction, so
  a running daemon, which claims every *pending* command, never sees it pending.
* ``--idempotency-key``: the same key with the same keys and reason returns the
  recorded result and resets nothing again; with different ones it is refused (exit 2).
  A CLI killed half-way leaves a claim that the next waiter or daemon settles as
  ``failed``/``claimer_died``, as for every command.
* The file is changed the way the guard changes it (:class:`autoheal.guard.breaker.
  CircuitBreaker._mutate`): a read-modify-write under the exclusive ``flock`` on
  ``circuit_breaker.json.lock``, then an atomic replace, with the guard's own load and
  save functions and clock conversion. A trader recording a failure at the same moment
  waits for the lock and then reads the reset file: nothing it writes is lost, and
  keys not named are left as they are. The reset waits for the lock at most
  ``--timeout`` seconds (a trader stopped while holding it must not hang the
  operator): then the command fails with ``breaker_file_locked`` and changes nothing.

:func:`execute_reset` is the executor of a claimed ``breaker_reset`` command, so that
another front end (the status page's buttons) can run the same command the same way.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autoheal.config import Config
from autoheal.terminal import clean

__all__ = [
    "ALL",
    "COMMAND",
    "breaker_rows",
    "execute_reset",
    "reset_breakers",
    "status_command",
    "submit_reset",
]

COMMAND = "breaker_reset"
#: The key list that stands for ``--all``.
ALL = "*all*"
#: The guard's global breaker key (the exchange as a whole).
GLOBAL_KEY = "*"


def _path(runtime_dir: Path) -> Path:
    from autoheal.store import layout as runtime_files

    return Path(runtime_dir) / runtime_files.BREAKERS


def normalize_key(key: str) -> str:
    """The key as the guard stores it: ``*`` for the global breaker, else the symbol."""
    from autoheal.guard._symbols import normalize_symbol

    if key.strip() == GLOBAL_KEY:
        return GLOBAL_KEY
    return normalize_symbol(key) or GLOBAL_KEY


# --------------------------------------------------------------------------- status


def breaker_rows(runtime_dir: Path) -> tuple[list[dict[str, Any]] | None, str]:
    """Every key of the breaker file with its state now and wall-clock times.

    Returns:
        ``(rows, "")``; ``([], "missing")`` with no file; ``(None, why)`` when unreadable.
    """
    from autoheal.guard import breaker_state as bs
    from autoheal.store.atomic import read_json

    result = read_json(_path(runtime_dir))
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
    path = _path(cfg.paths.runtime_dir)
    if rows is None:
        message = (
            f"autoheal: breaker: {path} unreadable ({why}); the guard treats every key as "
            "closed; 'autoheal breaker reset --all' writes a fresh file"
        )
        print(clean(message), file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"path": str(path), "keys": rows}, sort_keys=True))
        return 0
    if not rows:
        print(clean(f"no breaker recorded in {path}: every key is closed"))
        return 0
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
    for row in table:
        print("  ".join(c.ljust(wd) for c, wd in zip(row, widths, strict=True)).rstrip())
    return 0


# --------------------------------------------------------------------------- reset


def reset_breakers(
    runtime_dir: Path, keys: Sequence[str], *, lock_timeout: float = 10.0
) -> tuple[bool, dict[str, Any]]:
    """Close the named keys (``[ALL]``: every key) under the guard's file lock.

    Returns:
        ``(ok, result)``: which keys were reset (with their state before), which were
        not in the file (closed already), or why nothing was done.
    """
    path = _path(runtime_dir)
    if not path.parent.is_dir():
        return True, {"reset": {}, "absent": list(keys), "file": "missing"}
    # The guard's own lock (same file, same flock), waited for at most lock_timeout.
    from autoheal.guard._filelock import LockTimeout, locked

    try:
        with locked(path, lock_timeout):
            return _reset_locked(path, list(keys))
    except LockTimeout as exc:
        return False, {"reason": "breaker_file_locked", "message": str(exc)}


def _reset_locked(path: Path, keys: list[str]) -> tuple[bool, dict[str, Any]]:
    """The read-modify-write, the guard's way; the caller holds the lock."""
    from autoheal.guard import breaker_state as bs
    from autoheal.guard.breaker import load_breaker_keys
    from autoheal.store.atomic import read_json, write_json_atomic

    mono, wall = time.monotonic(), time.time()
    current = load_breaker_keys(path, mono, wall)
    if current is None:
        if read_json(path).reason != "missing" and keys != [ALL]:
            return False, {
                "reason": "breaker_file_unreadable",
                "message": f"{path} is unreadable; only --all replaces it",
            }
        current = {}
    new: dict[str, bs.KeyState]
    if keys == [ALL]:
        before = {k: v.state for k, v in current.items()}
        new, absent = {}, []
    else:
        before = {k: current[k].state for k in keys if k in current}
        absent = [k for k in keys if k not in current]
        new = dict(current)
        for k in before:
            new[k] = bs.KeyState()
    if before or (keys == [ALL] and path.exists()):
        write_json_atomic(path, bs.keys_to_doc(new, mono, wall))
    return True, {"reset": before, "absent": absent}


def execute_reset(
    journal: Any, command: Any, runtime_dir: Path, *, lock_timeout: float = 10.0
) -> Any:
    """Run a claimed ``breaker_reset`` command and journal it; returns the finished command."""
    from autoheal.store import commands as queue

    keys = [str(k) for k in command.payload.get("keys") or []]
    queue.record_started(journal, command)
    queue.record_action(journal, command, "started", data={"keys": keys})
    try:
        ok, result = reset_breakers(runtime_dir, keys, lock_timeout=lock_timeout)
    except Exception as exc:  # an unwritable file: a failed command, never a stuck claim
        ok, result = False, {"reason": type(exc).__name__, "message": str(exc)[:300]}
    queue.record_action(journal, command, "succeeded" if ok else "failed", data=result)
    return queue.finish(journal, command.id, ok, result)


def submit_reset(
    cfg: Config,
    keys: Sequence[str],
    *,
    reason: str,
    user: str,
    idempotency_key: str | None,
    timeout: float,
) -> tuple[int, Any]:
    """Queue, claim (atomically) and execute a reset; returns (exit code, command)."""
    from autoheal.store import commands as queue
    from autoheal.store.journal import Journal

    runtime_dir = cfg.paths.runtime_dir
    runtime_dir.mkdir(parents=True, exist_ok=True)
    settler = f"cli:{user}"
    payload = {"reason": reason, "keys": list(keys)}
    with Journal.open(runtime_dir) as journal:
        try:
            with journal.transaction():
                submitted = queue.submit(
                    journal,
                    COMMAND,
                    "",
                    payload,
                    user,
                    idempotency_key=idempotency_key,
                    ttl=max(60.0, timeout * 2),
                )
                claimed = None
                if submitted.command.status == "pending":
                    claimed = queue.claim(journal, submitted.command.id, f"cli:{user}")
        except queue.KeyConflictError as exc:
            print(clean(f"autoheal: usage error: {exc}"), file=sys.stderr)
            return 2, None
        command = submitted.command
        if submitted.duplicate:
            print(
                clean(
                    f"duplicate: idempotency key {command.idempotency_key!r} already used by "
                    f"{command.id} ({command.status})"
                )
            )
        if claimed is not None:
            return -1, execute_reset(journal, claimed, runtime_dir, lock_timeout=timeout)
        command = queue.settle_if_claimer_gone(journal, command, settled_by=settler) or command
        if command.status not in queue.TERMINAL_STATUSES:
            command = queue.wait_result(journal, command.id, timeout, settled_by=settler)
        return -1, command


def parse_keys(keys: Sequence[str], all_keys: bool) -> list[str] | str:
    """The normalised key list, or a usage error message."""
    if all_keys and keys:
        return "give KEY ... or --all, not both"
    if all_keys:
        return [ALL]
    if not keys:
        return "name the keys to reset (e.g. BTCUSDT, '*' for the global breaker) or --all"
    return sorted({normalize_key(k) for k in keys})
