"""The daemon's own files: ``autoheal_state.json``, ``health_v2.json``, its heartbeat.

Deadlines in the state file are wall-clock seconds (the core keeps them on the
monotonic clock), so a daemon that restarts keeps each backoff deadline at the
same moment of real time. A write that fails is logged; the daemon keeps going.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from autoheal.core.policy import Policy
from autoheal.core.state import RuntimeState, shift_deadlines, state_from_dict, state_to_dict
from autoheal.daemon.health import HEALTH_FILENAME
from autoheal.store import layout
from autoheal.store.atomic import read_json, write_json_atomic

log = logging.getLogger("autoheal")

STATE_FILENAME = layout.STATE
DAEMON_HEARTBEAT = layout.DAEMON_HEARTBEAT


def load_state(runtime_dir: Path, policy: Policy, *, to_wall: float) -> RuntimeState | None:
    """The state a previous daemon saved, on this daemon's monotonic clock; None if none.

    A damaged file is a logged reason, never an exception; the damaged parts start fresh.
    """
    result = read_json(runtime_dir / STATE_FILENAME)
    if result.doc is None:
        if result.reason != "missing":
            log.warning(
                "state_file_unreadable reason=%s detail=%s; starting fresh",
                result.reason,
                result.detail,
            )
        return None
    state = shift_deadlines(state_from_dict(result.doc, policy), -to_wall)
    for name, cs in state.components.items():
        log.info(
            "state_resumed component=%s stage=%s attempts=%d restarts=%d",
            name,
            cs.stage,
            cs.attempts,
            cs.restarts,
        )
    return state


def save_state(runtime_dir: Path, state: RuntimeState, *, to_wall: float, now_wall: float) -> bool:
    """``autoheal_state.json``, durable; False when the write failed (logged; retry later)."""
    doc = state_to_dict(shift_deadlines(state, to_wall))
    doc["written_at_unix"] = now_wall
    try:
        write_json_atomic(runtime_dir / STATE_FILENAME, doc)
    except OSError as exc:
        log.error("state_write_failed error=%s", exc)
        return False
    return True


def write_health(runtime_dir: Path, doc: dict[str, Any]) -> bool:
    """``health_v2.json``, fsynced only when its name is new.

    Rewritten every second, so an older document after a crash is harmless. But a
    rename to a fresh name whose bytes were never synced can survive a power loss as
    an empty file (ext4 flushes the data of a rename over an existing file, not of a
    new name, once something fsyncs the folder): the first write is durable.
    """
    path = runtime_dir / HEALTH_FILENAME
    try:
        write_json_atomic(path, doc, durable=not path.exists())
    except OSError as exc:
        log.error("health_write_failed error=%s", exc)
        return False
    return True


def remove_stale_temp_files(directory: Path, *, now_wall: float, older_than_s: float = 60.0) -> int:
    """Remove temp files that writers killed mid-write left behind (``.<name>.<rand>.tmp``).

    Only hidden ``*.tmp`` files directly in ``directory``, and only when older than
    ``older_than_s``: a live writer's temp file is younger than a second.

    Returns:
        How many were removed.
    """
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if now_wall - entry.stat(follow_symlinks=False).st_mtime < older_than_s:
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed += 1
        log.info("stale_temp_file_removed path=%s", entry.path)
    return removed


def write_daemon_heartbeat(
    runtime_dir: Path, *, seq: int, loop_lag: float, now_wall: float
) -> None:
    try:
        write_json_atomic(
            runtime_dir / DAEMON_HEARTBEAT,
            {
                "component": "auto_heal",
                "pid": os.getpid(),
                "ts": now_wall,
                "seq": seq,
                "loop_lag_s": round(loop_lag, 6),
            },
            durable=False,
        )
    except OSError as exc:
        log.error("heartbeat_write_failed error=%s", exc)
