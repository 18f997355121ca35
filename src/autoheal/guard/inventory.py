"""The inventory gate: never send a sell for more than the position we hold.

Positions come from ``<runtime_dir>/positions_snapshot.json``, either
``{"positions": {"BTCUSDT": 0.5}, "ts": ...}`` or a flat ``{"BTCUSDT": 0.5}``;
``{}`` means no positions. A missing or corrupt snapshot blocks every sell (fail
closed: without knowing the inventory we cannot know a sell is covered), while buys
are not the inventory gate's business. The check runs before any exchange call, so
a sell without a position costs nothing and leaves no failed order at the exchange.

The decision is the pure :func:`check_inventory`; :class:`InventoryGate` only reads
the snapshot, re-parsing it when its ``stat`` signature changes.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoheal.guard._symbols import normalize_action, normalize_symbol
from autoheal.guard.kill_switch import PathArg, runtime_dir_from_env
from autoheal.store import layout as runtime_files
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = [
    "POSITIONS_FILENAME",
    "InventoryGate",
    "check_inventory",
    "parse_positions",
    "write_positions_snapshot",
]

POSITIONS_FILENAME = runtime_files.POSITIONS
SKIP_NO_POSITION = "SKIP_NO_POSITION"
SKIP_INSUFFICIENT_POSITION = "SKIP_INSUFFICIENT_POSITION"
SKIP_INVALID_ORDER = "SKIP_INVALID_ORDER"
SKIP_SNAPSHOT_MISSING = "SKIP_POSITIONS_SNAPSHOT_MISSING"
SKIP_SNAPSHOT_INVALID = "SKIP_POSITIONS_SNAPSHOT_INVALID"

log = logging.getLogger("autoheal.guard.inventory")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_positions(doc: Mapping[str, Any]) -> dict[str, float] | None:
    """The held quantity per normalised symbol, or ``None`` if the document is not a snapshot."""
    inner = doc.get("positions", doc) if isinstance(doc.get("positions"), dict) else doc
    positions: dict[str, float] = {}
    for symbol, qty in inner.items():
        if inner is doc and symbol in ("ts", "schema", "updated_at"):
            continue  # metadata beside a flat map
        if not _is_number(qty) or qty < 0:
            return None
        key = normalize_symbol(symbol)
        if key in positions:
            return None  # "BTC/USDT" and "BTCUSDT" both listed: ambiguous, so fail closed
        positions[key] = float(qty)
    return positions


def check_inventory(
    positions: Mapping[str, float] | None,
    symbol: str,
    side: str,
    qty: float,
    *,
    unavailable_reason: str = SKIP_SNAPSHOT_MISSING,
) -> tuple[bool, str]:
    """Decide an order against known positions.

    Args:
        positions: held quantity per normalised symbol; ``None`` when unknown.
        symbol: the market, in any spelling (``BTC/USDT``, ``BTCUSDT``).
        side: ``buy`` or ``sell`` (any case).
        qty: the order quantity.
        unavailable_reason: the reason given when ``positions`` is ``None``.

    Returns:
        ``(True, "ok")`` or ``(False, SKIP_...)``; a sell is allowed only if ``qty <= held``.
    """
    act = normalize_action(side)
    if act not in ("buy", "sell") or not _is_number(qty) or qty <= 0:
        return False, SKIP_INVALID_ORDER
    if act == "buy":
        return True, "ok"
    if positions is None:
        return False, unavailable_reason
    held = positions.get(normalize_symbol(symbol), 0.0)
    if not _is_number(held) or held <= 0:  # NaN compares False both ways: refuse it first
        return False, SKIP_NO_POSITION
    if not qty <= held:  # written positively, so any odd value falls on the refusing side
        return False, SKIP_INSUFFICIENT_POSITION
    return True, "ok"


class InventoryGate:
    """Checks orders against ``positions_snapshot.json`` in ``runtime_dir``.

    Args:
        runtime_dir: default ``AUTOHEAL_RUNTIME_DIR``.

    Raises:
        ValueError: neither is set.
    """

    def __init__(self, runtime_dir: PathArg | None = None) -> None:
        self.path = runtime_dir_from_env(runtime_dir, what="InventoryGate") / POSITIONS_FILENAME
        self._sig: tuple[int, int, int, int] | None = None
        self._positions: dict[str, float] | None = None
        self._reason = SKIP_SNAPSHOT_MISSING

    def validate_order(self, symbol: str, side: str, qty: float) -> tuple[bool, str]:
        """``(allowed, reason)`` for an order; logs every skipped sell once per call."""
        self._refresh()
        allowed, reason = check_inventory(
            self._positions, symbol, side, qty, unavailable_reason=self._reason
        )
        if not allowed:
            log.warning(
                "[inventory] %s %s qty=%s skipped: %s",
                str(side).upper(),
                normalize_symbol(symbol),
                qty,
                reason,
            )
        return allowed, reason

    def positions(self) -> dict[str, float] | None:
        """The current snapshot (``None`` when missing or corrupt)."""
        self._refresh()
        return None if self._positions is None else dict(self._positions)

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            sig: tuple[int, int, int, int] | None = (
                st.st_ino,
                st.st_mtime_ns,
                st.st_ctime_ns,
                st.st_size,
            )
        except OSError:
            sig = None
        if sig is not None and sig == self._sig:
            return
        self._sig = sig
        result = read_json(self.path)
        if result.doc is None:
            self._positions = None
            self._reason = (
                SKIP_SNAPSHOT_MISSING if result.reason == "missing" else SKIP_SNAPSHOT_INVALID
            )
            if result.reason != "missing":
                log.warning("[inventory] %s %s: %s", self.path, result.reason, result.detail)
            return
        self._positions = parse_positions(result.doc)
        self._reason = SKIP_SNAPSHOT_INVALID
        if self._positions is None:
            log.warning("[inventory] %s is not a positions snapshot", self.path)


def write_positions_snapshot(
    runtime_dir: Path, positions: Mapping[str, float], *, now: float | None = None
) -> None:
    """Write ``{"positions": {...}, "ts": <unix>}`` atomically (``ts`` is a label only)."""
    doc = {
        "positions": {normalize_symbol(k): float(v) for k, v in positions.items()},
        "ts": time.time() if now is None else now,
    }
    write_json_atomic(Path(runtime_dir) / POSITIONS_FILENAME, doc)
