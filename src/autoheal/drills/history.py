"""The drill history: each drill's last result, kept for ``autoheal compliance``.

``autoheal drill run`` writes every JSON report to ``<runtime_dir>/drills/<UTC>.json``;
those pile up and are read by people. This is the one small document a tool reads:
``<runtime_dir>/drill_history.json`` (beside, not among, the reports: ``autoheal
metrics`` reads every ``drills/*.json`` as a report), each drill's last status, when it finished
(unix seconds), its duration and tightest margin, and when it last passed. It lives
with the reports, in the runtime directory of the config ``drill run --config X``
names (``shared_data`` without one), which is the runtime ``autoheal compliance
--config X`` reads: the drills themselves run on their own temporary stacks, but the
proof belongs to the runtime the operator asked about.

Atomic (temp file, fsync, rename) under a ``drill_history.json.lock`` flock, so two drill
runs at once both land; bounded (:data:`~autoheal.core.compliance.MAX_DRILLS` names,
:data:`MAX_BYTES` read). What the document *means* is :mod:`autoheal.core.compliance`:
a corrupt history is unknown (never a pass) and is replaced by the next run's results.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from autoheal.core.compliance import (
    DrillRecord,
    history_doc,
    merge_history,
    parse_history,
)
from autoheal.drills.model import DrillResult
from autoheal.store import layout
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = ["MAX_BYTES", "history_path", "read_history", "record_results", "to_record"]

log = logging.getLogger("autoheal.drills")

#: 500 drills at about 200 bytes each, with room to spare; a larger file is not ours.
MAX_BYTES = 512 * 1024
LOCK_TIMEOUT_S = 10.0


def history_path(runtime_dir: Path) -> Path:
    """``<runtime_dir>/drill_history.json``."""
    return Path(runtime_dir) / layout.DRILL_HISTORY


def to_record(result: DrillResult) -> DrillRecord:
    """A drill's result as the history keeps it (its end: start + duration, unix seconds)."""
    started = datetime.strptime(result.started_at, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    tight = result.tightest
    margin = None if tight is None or tight.margin_pct is None else round(tight.margin_pct, 1)
    return DrillRecord(
        result.name,
        str(result.status),
        round(started + result.duration_s, 3),
        round(result.duration_s, 3),
        margin,
    )


def read_history(runtime_dir: Path) -> tuple[dict[str, DrillRecord] | None, str]:
    """The history's records and a word on how it read.

    Returns:
        ``(records, "ok")``; ``({}, "missing")`` when no drill was ever recorded there;
        ``(None, reason)`` when it cannot be trusted (``invalid``, ``too_large``,
        ``unreadable``, ``not_a_regular_file``, ``not_object``, ``garbled``).
    """
    result = read_json(history_path(runtime_dir), max_bytes=MAX_BYTES)
    if result.reason == "missing":
        return {}, "missing"
    if result.doc is None:
        return None, result.reason or "unreadable"
    records = parse_history(result.doc)
    return (records, "ok") if records is not None else (None, "garbled")


def record_results(runtime_dir: Path, results: Iterable[DrillResult]) -> Path:
    """Fold ``results`` into the history, under its lock; returns the file written.

    Raises:
        OSError: the folder, the lock or the write failed (the caller reports it).
    """
    from autoheal.guard._filelock import locked

    path = history_path(runtime_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path, timeout=LOCK_TIMEOUT_S):
        old, how = read_history(runtime_dir)
        if old is None:
            log.warning("drill_history_unreadable path=%s reason=%s; starting afresh", path, how)
        merged = merge_history(old, (to_record(r) for r in results))
        write_json_atomic(path, history_doc(merged))
    return path
