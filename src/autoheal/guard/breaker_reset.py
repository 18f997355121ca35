"""An operator's reset of the guard's circuit breakers: a durable, journaled command.

``autoheal breaker reset`` and the status page's reset button both run it through
:func:`submit_reset`, which executes the command in the calling process:

* The daemon holds no breaker state (the core knows nothing of breakers; the file is
  the guard's), so nothing would be gained by routing the reset through the daemon,
  and the reset must work the same whether a daemon runs or not.
* It still goes through the journal's command queue (:mod:`autoheal.store.commands`),
  so it is durable and audited exactly like ``restart`` or ``failsafe``: submitted with
  an idempotency key, a checksum and an expiry, with ``actor`` = who asked (the OS
  user, or ``web:<address>``) and the events ``started``, ``breaker_reset.started``,
  ``breaker_reset.succeeded|failed``, ``result_written``. The submit and the claim
  happen in one journal transaction, so a running daemon, which claims every
  *pending* command, never sees it pending.
* An idempotency key used again with the same keys and reason returns the recorded
  result and resets nothing again; with different ones the submit raises
  :class:`~autoheal.store.commands.KeyConflictError` and nothing is queued. A caller
  killed half-way leaves a claim that the next waiter or daemon settles as
  ``failed``/``claimer_died``, as for every command.
* The file is changed the way the guard changes it (:class:`autoheal.guard.breaker.
  CircuitBreaker._mutate`): a read-modify-write under the exclusive ``flock`` on
  ``circuit_breaker.json.lock``, then an atomic replace, with the guard's own load and
  save functions and clock conversion. A trader recording a failure at the same moment
  waits for the lock and then reads the reset file: nothing it writes is lost, and
  keys not named are left as they are. The reset waits for the lock at most
  ``timeout`` seconds (a trader stopped while holding it must not hang the
  operator): then the command fails with ``breaker_file_locked`` and changes nothing.

Nothing here prints: the command comes back as it stands, for the caller to show.
The journal is autoheal's (the daemon's distribution): with ``autoheal-guard`` alone,
:func:`reset_breakers` works and the journaled functions raise ``ImportError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoheal.guard import breaker_state as bs
from autoheal.guard._filelock import LockTimeout, locked
from autoheal.guard._symbols import normalize_symbol
from autoheal.guard.breaker import GLOBAL_KEY, load_breaker_keys
from autoheal.store import layout
from autoheal.store.atomic import read_json, write_json_atomic

if TYPE_CHECKING:
    from autoheal.store.commands import Command
    from autoheal.store.journal import Journal

__all__ = [
    "ALL",
    "COMMAND",
    "GLOBAL_KEY",
    "breakers_path",
    "execute_reset",
    "normalize_key",
    "reset_breakers",
    "submit_reset",
]

#: The command's type in the journal's queue.
COMMAND = "breaker_reset"
#: The key list that stands for every key (``--all``).
ALL = "*all*"


def breakers_path(runtime_dir: Path) -> Path:
    """``<runtime_dir>/circuit_breaker.json``, the guard's breaker file."""
    return Path(runtime_dir) / layout.BREAKERS


def normalize_key(key: str) -> str:
    """The key as the guard stores it: ``*`` for the global breaker, else the symbol."""
    if key.strip() == GLOBAL_KEY:
        return GLOBAL_KEY
    return normalize_symbol(key) or GLOBAL_KEY


def reset_breakers(
    runtime_dir: Path, keys: Sequence[str], *, lock_timeout: float = 10.0
) -> tuple[bool, dict[str, Any]]:
    """Close the named keys (``[ALL]``: every key) under the guard's file lock.

    Returns:
        ``(ok, result)``: which keys were reset (with their state before), which were
        not in the file (closed already), or why nothing was done.
    """
    path = breakers_path(runtime_dir)
    if not path.parent.is_dir():
        return True, {"reset": {}, "absent": list(keys), "file": "missing"}
    # The guard's own lock (same file, same flock), waited for at most lock_timeout.
    try:
        with locked(path, lock_timeout):
            return _reset_locked(path, list(keys))
    except LockTimeout as exc:
        return False, {"reason": "breaker_file_locked", "message": str(exc)}


def _reset_locked(path: Path, keys: list[str]) -> tuple[bool, dict[str, Any]]:
    """The read-modify-write, the guard's way; the caller holds the lock."""
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
    journal: Journal, command: Command, runtime_dir: Path, *, lock_timeout: float = 10.0
) -> Command:
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
    runtime_dir: Path,
    keys: Sequence[str],
    *,
    reason: str,
    user: str,
    timeout: float,
    idempotency_key: str | None = None,
    on_duplicate: Callable[[Command], object] | None = None,
) -> Command:
    """Queue, claim (in one transaction) and execute a reset.

    Args:
        runtime_dir: the runtime directory (the journal and the breaker file).
        keys: normalised keys (:func:`normalize_key`), or ``[ALL]``.
        reason: why, journaled.
        user: who asked, the command's actor.
        timeout: how long to wait for the breaker file's lock, or for the earlier
            command with the same key to finish.
        idempotency_key: the caller's key, or None for a new one.
        on_duplicate: called with the earlier command when the key was used before,
            before it is waited for.

    Returns:
        The command as it stands: finished, or still pending or claimed when the
        earlier one did not finish within ``timeout``.

    Raises:
        KeyConflictError: the key names another command; nothing was queued.
    """
    # The queue is the CLI's, not the trading process's: imported only here.
    from autoheal.store.command_here import submit_and_run_here

    runtime_dir = Path(runtime_dir)
    runtime_dir.mkdir(parents=True, exist_ok=True)
    # Who claims here and settles an abandoned claim; "cli:" whoever asked, as journaled
    # since the reset was the CLI's alone.
    settler = f"cli:{user}"
    payload = {"reason": reason, "keys": list(keys)}
    return submit_and_run_here(
        runtime_dir,
        COMMAND,
        payload,
        user,
        settler=settler,
        execute=lambda journal, claimed: execute_reset(
            journal, claimed, runtime_dir, lock_timeout=timeout
        ),
        timeout=timeout,
        idempotency_key=idempotency_key,
        on_duplicate=on_duplicate,
    )
