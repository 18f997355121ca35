"""Reads the guard's money files for the status page: bounded, cached, never raising.

The page, ``/status`` and ``autoheal status --json`` show the risk panel
(:func:`autoheal.core.risk_view.risk_view` says what the files mean). The files are
written by the trading processes at their own pace, not by the daemon, so the panel
is not part of the health document's change tracking: :meth:`RiskFiles.view` is
asked for it when a page or a stream needs it, and

* rebuilds it at most every :data:`REFRESH_S` (a page refreshing itself, ten
  streams, ``/status`` polled by a script: still about one look a second);
* re-reads a file only when its identity (inode, size, mtime) moved: one ``stat``
  per file otherwise;
* reads at most :data:`MAX_BYTES` of a file, never opens one that is not a regular
  file (a FIFO would block), and turns every problem into ``unreadable`` with a
  word on why; an unexpected error costs the panel (logged once), never the daemon.

The same object is returned until something changed, so the page's stream can tell
"new" by identity, as it does for the health document.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoheal.core.risk_view import FileRead, RiskLimitsView, risk_view
from autoheal.store import layout
from autoheal.store.atomic import read_json

if TYPE_CHECKING:
    from autoheal.config import Config
    from autoheal.guard.risk_limits import RiskLimits

__all__ = ["MAX_BYTES", "RECONCILIATION", "REFRESH_S", "SCOPE_LATCHES", "RiskFiles", "limits_view"]

REFRESH_S = 1.0
MAX_BYTES = 256 * 1024
#: The files of issue 24's other parts (their names are the contract).
SCOPE_LATCHES = "risk_scope_latches.json"
RECONCILIATION = "reconciliation.json"

_Identity = tuple[int, int, int, int]


def limits_view(risk: RiskLimits | None) -> RiskLimitsView | None:
    """The ``[risk]`` limits the panel compares against.

    The drawdown and per-kind message limits are read by name when the guard has them
    (issue 24's other parts add them); ``max_orders_per_second`` stands for submits
    until then.
    """
    if risk is None:
        return None

    def limit(name: str) -> Decimal | None:
        value = getattr(risk, name, None)
        return (
            Decimal(value)
            if isinstance(value, int | Decimal) and not isinstance(value, bool)
            else None
        )

    submit = limit("max_submits_per_s") or limit("max_orders_per_second")
    return RiskLimitsView(
        max_daily_loss=risk.max_daily_loss,
        max_drawdown=limit("max_drawdown"),
        max_position=risk.default.max_position,
        max_position_by_symbol={s: lim.max_position for s, lim in risk.symbols.items()},
        max_messages_per_second={
            "submit": submit,
            "modify": limit("max_modifies_per_s"),
            "cancel": limit("max_cancels_per_s"),
        },
    )


def heartbeat_paths(config: Config) -> dict[str, Path]:
    """Each service's heartbeat file: its heartbeat probe's path, else the default name."""
    out: dict[str, Path] = {}
    for name, svc in config.services.items():
        path = next((p.path for p in svc.probes if p.kind == "heartbeat" and p.path), None)
        out[name] = path or config.paths.runtime_dir / f"{name}{layout.HEARTBEAT_SUFFIX}"
    return out


class _CachedFile:
    """One file, re-read only when its identity moved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: _Identity | None = None
        self.read = FileRead("missing")

    def refresh(self) -> bool:
        """Look at the file; True when what it says may have changed."""
        try:
            st = os.stat(self.path)
            seen: _Identity | None = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            seen = None
        except OSError as exc:
            changed = self.read.state != "unreadable"
            self._seen, self.read = None, FileRead("unreadable", None, exc.strerror or str(exc))
            return changed
        if seen is not None and seen == self._seen:
            return False
        self._seen = seen
        if seen is None:
            changed = self.read.state != "missing"
            self.read = FileRead("missing")
            return changed
        result = read_json(self.path, max_bytes=MAX_BYTES)
        if result.doc is None:
            detail = f"{result.reason}: {result.detail}".rstrip(": ")[:200]
            missing = result.reason == "missing"  # removed between the stat and the read
            self.read = FileRead("missing") if missing else FileRead("unreadable", None, detail)
        else:
            self.read = FileRead("ok", result.doc)
        return True


class RiskFiles:
    """The risk panel of one runtime, read from its files.

    Args:
        config: the config in force (a callable: a reload may change it).
        clock: monotonic seconds (when to look again).
        wall: wall-clock seconds (ages and countdowns in the panel).
    """

    def __init__(
        self,
        config: Callable[[], Config],
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self._config = config
        self._clock = clock
        self._wall = wall
        self._files: dict[Path, _CachedFile] = {}
        self._view: dict[str, Any] | None = None
        self._next_at = float("-inf")
        self._failed = False

    def _file(self, path: Path) -> _CachedFile:
        cached = self._files.get(path)
        if cached is None:
            cached = self._files[path] = _CachedFile(path)
        return cached

    def view(self) -> dict[str, Any] | None:
        """The panel (the same object until something in it changed); None if it failed."""
        now = self._clock()
        if now < self._next_at:
            return self._view
        self._next_at = now + REFRESH_S
        try:
            self._view = self._build(force=self._view is None)
            self._failed = False
        except Exception as exc:  # the page is an observer: a bug here costs the panel only
            if not self._failed:
                import logging  # here: ``autoheal status --json`` imports no logging

                logging.getLogger("autoheal").error(
                    "risk_panel_failed error=%s: %s", type(exc).__name__, exc
                )
            self._failed = True
            self._view = None
        return self._view

    def _build(self, *, force: bool) -> dict[str, Any] | None:
        cfg = self._config()
        rt = cfg.paths.runtime_dir
        named = {
            "pnl": rt / layout.RISK_PNL,
            "flags": rt / layout.FLAGS,
            "latches": rt / SCOPE_LATCHES,
            "breakers": rt / layout.BREAKERS,
            "reconciliation": rt / RECONCILIATION,
        }
        beats = heartbeat_paths(cfg)
        files = {k: self._file(p) for k, p in named.items()}
        beat_files = {s: self._file(p) for s, p in beats.items()}
        changed = [f.refresh() for f in (*files.values(), *beat_files.values())]
        # Countdowns and ages move with the clock: rebuilt each look, but the object
        # stays the same when no file changed and nothing counts down.
        if not force and not any(changed) and not self._counting():
            return self._view
        return risk_view(
            now=self._wall(),
            limits=limits_view(cfg.risk),
            pnl=files["pnl"].read,
            flags=files["flags"].read,
            latches=files["latches"].read,
            breakers=files["breakers"].read,
            reconciliation=files["reconciliation"].read,
            heartbeats={s: f.read for s, f in beat_files.items()},
        )

    def _counting(self) -> bool:
        """Whether the panel shows a countdown or an age that moves with the clock."""
        view: Mapping[str, Any] = self._view or {}
        return (
            bool(view.get("deadman", {}).get("rows"))
            or view.get("reconciliation", {}).get("ts") is not None
            or any(r.get("open_for_s") for r in view.get("breakers", {}).get("rows", []))
        )
