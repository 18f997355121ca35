"""Alert files: ``<runtime_dir>/alerts/<name>.json``, one per open problem.

An alert file exists exactly while its problem lasts: whoever raises it removes
it when the problem is gone. Every alert in the product is written here, so
``autoheal status``, the status page and the tests read one shape::

    {"alert": NAME, "ts": UNIX_SECONDS, ...details}

Raising an alert must never be the thing that fails: a write that fails (the disk
that caused the alert may be the same disk) is returned, not raised.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from autoheal.store import layout as runtime_files
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = ["ALERTS_DIRNAME", "alert_path", "clear_alert", "read_alerts", "write_alert"]

ALERTS_DIRNAME = runtime_files.ALERTS_DIR


def alert_path(runtime_dir: Path, name: str) -> Path:
    return Path(runtime_dir) / ALERTS_DIRNAME / f"{name}.json"


def write_alert(runtime_dir: Path, name: str, *, ts: float, **details: Any) -> OSError | None:
    """Write (or replace) the alert ``name``; returns the ``OSError`` if it could not be."""
    path = alert_path(runtime_dir, name)
    try:
        path.parent.mkdir(mode=0o750, exist_ok=True)
        write_json_atomic(path, {"alert": name, "ts": ts, **details}, mode=0o640)
    except OSError as exc:
        return exc
    return None


def clear_alert(runtime_dir: Path, name: str) -> bool:
    """Remove the alert ``name``; returns whether it was there."""
    path = alert_path(runtime_dir, name)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError:
        return False
    return True


def read_alerts(runtime_dir: Path) -> dict[str, dict[str, Any]]:
    """Every readable alert by name; an unreadable one is reported as such, never dropped."""
    folder = Path(runtime_dir) / ALERTS_DIRNAME
    out: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError):
        for path in sorted(folder.glob("*.json")):
            result = read_json(path)
            out[path.stem] = (
                result.doc
                if result.doc is not None
                else {"alert": path.stem, "unreadable": result.reason}
            )
    return out
