"""``risk_scope_latches.json``: the scopes the repeated-execution throttle disabled.

The shell around :func:`autoheal.guard.throttles.parse_latches` (which decides what a
document means). Written by the guard when a strategy/symbol/side reaches
``max_repeated_executions`` fills within ``repeated_execution_window_s``; an entry is
removed only by an operator (``autoheal risk enable SCOPE``,
:mod:`autoheal.guard.risk_enable`).

* **Tighten-only**: :func:`add_latch` is a read-modify-write under the exclusive
  ``flock`` on ``risk_scope_latches.json.lock`` (:mod:`autoheal.guard._filelock`,
  shared by every trading process of the runtime), then an atomic, durable replace;
  an entry already there is never replaced (it says the same, since earlier), and a
  document that is garbage is never overwritten by the guard (a fresh document would
  drop the garbage, which refuses everything: a loosening). Only the operator's enable
  may rewrite it.
* **Fail closed**: a missing file is no latch; a file that cannot be read, is not a
  JSON object or not the contract's shape refuses every order (``garbage``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoheal.guard._filelock import locked
from autoheal.guard.throttles import LatchView, canonical_scope, parse_latches, parse_scope
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = ["LATCHES_FILENAME", "add_latch", "latches_path", "read_latches", "remove_latch"]

#: In the runtime directory.
LATCHES_FILENAME = "risk_scope_latches.json"


def latches_path(runtime_dir: Path) -> Path:
    return Path(runtime_dir) / LATCHES_FILENAME


def read_latches(runtime_dir: Path) -> LatchView:
    """What the file says now (missing: nothing latched; unreadable: garbage)."""
    result = read_json(latches_path(runtime_dir))
    if result.reason == "missing":
        return LatchView()
    if result.doc is None:
        return LatchView(garbage=f"{result.reason} {result.detail}".strip()[:200])
    return parse_latches(result.doc)


def add_latch(
    runtime_dir: Path, scope: str, entry: dict[str, Any], *, lock_timeout: float = 5.0
) -> str:
    """Add ``scope`` unless it is there: ``"written"``, ``"already"`` or ``"garbage"``.

    Raises:
        OSError: the lock or the write failed (the caller refuses in memory and says so).
        LockTimeout: another process held the lock past ``lock_timeout``.
    """
    path = latches_path(runtime_dir)
    with locked(path, lock_timeout):
        result = read_json(path)
        if result.reason == "missing":
            latches: dict[str, Any] = {}
        else:
            view = (
                LatchView(garbage="unreadable") if result.doc is None else parse_latches(result.doc)
            )
            if view.garbage or result.doc is None:
                return "garbage"
            latches = dict(result.doc["latches"])
        if any(canonical_scope(parse_scope(k) or {}) == scope for k in latches):
            return "already"
        latches[scope] = entry
        write_json_atomic(path, {"latches": latches})
    return "written"


def remove_latch(
    runtime_dir: Path, scope: str, *, lock_timeout: float = 5.0
) -> tuple[bool, dict[str, Any]]:
    """The operator's enable: remove ``scope``'s entry. ``(ok, result)`` for the journal.

    A garbage document is replaced by one without it only when ``scope`` is ``all``
    (the operator re-enables everything it could have covered, knowingly).
    """
    path = latches_path(runtime_dir)
    parts = parse_scope(scope)
    if parts is None:
        return False, {"reason": "bad_scope", "message": f"{scope!r} is not a scope"}
    want = canonical_scope(parts)
    if not path.parent.is_dir():
        return True, {"enabled": None, "message": f"{path} missing: nothing latched"}
    with locked(path, lock_timeout):
        result = read_json(path)
        if result.reason == "missing":
            return True, {"enabled": None, "message": "no latch file: nothing latched"}
        view = parse_latches(result.doc) if result.doc is not None else LatchView(garbage="x")
        if view.garbage:
            if want != "all":
                return False, {
                    "reason": "latches_unreadable",
                    "message": f"{path} is garbage; only 'autoheal risk enable all' replaces it",
                }
            write_json_atomic(path, {"latches": {}})
            return True, {"enabled": "all", "replaced_garbage": True}
        assert result.doc is not None
        raw = dict(result.doc["latches"])
        keys = [k for k in raw if want == "all" or canonical_scope(parse_scope(k) or {}) == want]
        if not keys:
            return True, {"enabled": None, "message": f"{want} was not latched"}
        removed = {k: raw.pop(k) for k in keys}
        write_json_atomic(path, {"latches": raw})
        return True, {"enabled": want, "removed": removed}
