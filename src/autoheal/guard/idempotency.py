"""Order idempotency: one order per signal, across processes, and never a blind resend.

A signal's *signature* is a hash of its normalised symbol, side, quantity and price.
:meth:`OrderLedger.check_and_record` records it in ``<runtime_dir>/runtime/order_sigs.json``
under an exclusive ``flock``, so when several processes submit the same signal at
once exactly one of them gets ``is_dup=False``. Records expire after ``ttl_s``
(120 s) and are pruned on the next write.

Statuses of a record::

    recorded ──place ok──▶ placed        (a duplicate until the TTL ends)
       │  └──definite failure──▶ (removed: a later signal may try again)
       └──timeout / reset / 5xx on placement──▶ pending

A placement that timed out has an *unknown* outcome: the exchange may have filled
it. Such a record is ``pending``; it never expires and blocks every resend until a
caller-supplied reconcile function (checking open orders, fills or the balance)
answers ``"placed"`` (keep blocking until the TTL) or ``"absent"`` (forget it).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Generic, TypeVar

from autoheal.guard._filelock import locked
from autoheal.guard._symbols import normalize_action, normalize_symbol
from autoheal.guard.classify import classify, outcome_unknown
from autoheal.guard.errors import OrderOutcomeUnknownError
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = ["ORDER_SIGS_RELPATH", "OrderLedger", "PlaceResult", "order_signature"]

ORDER_SIGS_RELPATH = Path("runtime") / "order_sigs.json"
RECORDED, PLACED, PENDING = "recorded", "placed", "pending"

T = TypeVar("T")
log = logging.getLogger("autoheal.guard.idempotency")


def _canonical_number(value: float | int | str | Decimal | None, *, what: str) -> str:
    if value is None:
        return "market"
    try:
        # str(float) is the shortest round-trip form: 0.1 signs as "0.1", not 0.1000000000000000055.
        dec = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"{what} {value!r} is not a number") from exc
    if not dec.is_finite() or dec <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")
    return format(dec.normalize(), "f")


def order_signature(
    symbol: str, side: str, qty: float | str | Decimal, price: float | str | Decimal | None = None
) -> str:
    """The signature of an order over normalised values.

    ``("btc/usdt", "BUY", 0.0010)`` and ``("BTCUSDT", "buy", 0.001)`` sign the same.

    Raises:
        ValueError: unknown side, or a quantity/price that is not a positive finite number.
    """
    act = normalize_action(side)
    if act not in ("buy", "sell"):
        raise ValueError(f"side must be buy or sell, got {side!r}")
    canonical = "|".join(
        (
            normalize_symbol(symbol),
            act,
            _canonical_number(qty, what="qty"),
            _canonical_number(price, what="price"),
        )
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PlaceResult(Generic[T]):
    """What :meth:`OrderLedger.place` did: ``placed``, ``duplicate`` or ``pending``.

    ``result`` is what the placement returned (``None`` unless placed).
    """

    status: str
    sig: str
    result: T | None = None


class OrderLedger:
    """The shared record of recent order signatures.

    Args:
        runtime_dir: the runtime directory; the file is ``runtime/order_sigs.json`` inside it.
        ttl_s: how long a recorded or placed signature blocks duplicates.
        time_fn: monotonic seconds (system-wide on Linux, so processes agree); tests pass a fake.
    """

    def __init__(
        self,
        runtime_dir: Path,
        *,
        ttl_s: float = 120.0,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(runtime_dir) / ORDER_SIGS_RELPATH
        self.ttl_s = ttl_s
        self._time_fn = time_fn

    def check_and_record(
        self,
        symbol: str,
        side: str,
        qty: float | str | Decimal,
        price: float | str | Decimal | None = None,
    ) -> tuple[bool, str]:
        """Record this order's signature unless a live record exists.

        Returns:
            ``(is_dup, sig)``: ``is_dup`` is False for exactly one caller per TTL.
        """
        sig = order_signature(symbol, side, qty, price)
        with self._locked_sigs() as sigs:
            if sig in sigs:
                return True, sig
            sigs[sig] = {
                "symbol": normalize_symbol(symbol),
                "side": normalize_action(side),
                "qty": str(qty),
                "price": None if price is None else str(price),
                "ts": self._time_fn(),
                "status": RECORDED,
            }
        return False, sig

    def status(self, sig: str) -> str | None:
        """``recorded``, ``placed``, ``pending`` or ``None`` (unknown or expired)."""
        entry = self._live(self._read(), self._time_fn()).get(sig)
        return None if entry is None else str(entry.get("status"))

    def mark_placed(self, sig: str) -> None:
        """The exchange accepted the order: keep blocking duplicates until the TTL ends."""
        self._set(sig, PLACED)

    def mark_pending(self, sig: str, reason: str = "timeout") -> None:
        """The outcome is unknown: block every resend until :meth:`reconcile` settles it."""
        self._set(sig, PENDING, reason=reason)
        log.warning(
            "[idempotency] order %s pending reason=%s (not resent until reconciled)", sig, reason
        )

    def release(self, sig: str) -> None:
        """The order certainly did not reach the exchange: forget its signature."""
        with self._locked_sigs() as sigs:
            sigs.pop(sig, None)

    def reconcile(self, sig: str, reconcile_fn: Callable[[dict[str, Any]], str]) -> str | None:
        """Settle a pending order: ``reconcile_fn(entry)`` says ``"placed"``, ``"absent"`` or else.

        The reconcile function runs without the lock held (it talks to the exchange).

        Returns:
            The record's status afterwards (``None`` if it was forgotten).
        """
        entry = self._read().get(sig)
        if entry is None or entry.get("status") != PENDING:
            return None if entry is None else str(entry.get("status"))
        verdict = reconcile_fn(dict(entry, sig=sig))
        log.warning("[idempotency] order %s reconciled verdict=%s", sig, verdict)
        if verdict == "placed":
            self._set(sig, PLACED)
            return PLACED
        if verdict == "absent":
            self.release(sig)
            return None
        return PENDING

    def place(
        self,
        symbol: str,
        side: str,
        qty: float | str | Decimal,
        price: float | str | Decimal | None,
        place_fn: Callable[[], T],
        *,
        reconcile_fn: Callable[[dict[str, Any]], str] | None = None,
    ) -> PlaceResult[T]:
        """Place an order at most once: record, call ``place_fn`` once, settle the record.

        A pending earlier attempt is reconciled first (when ``reconcile_fn`` is given);
        only an ``"absent"`` verdict lets this signal be placed again.

        Raises:
            OrderOutcomeUnknownError: the placement raised an error after which the order
                may exist (timeout, reset, 5xx); the record is now ``pending``.
            Exception: any other error of ``place_fn``, unchanged; the record is released.
        """
        is_dup, sig = self.check_and_record(symbol, side, qty, price)
        pending = is_dup and self.status(sig) == PENDING
        if pending and reconcile_fn is not None and self.reconcile(sig, reconcile_fn) is None:
            is_dup, sig = self.check_and_record(symbol, side, qty, price)
        if is_dup:
            return PlaceResult(PENDING if self.status(sig) == PENDING else "duplicate", sig)
        try:
            result = place_fn()
        except Exception as exc:
            if outcome_unknown(exc):
                reason = classify(exc).reason
                self.mark_pending(sig, reason)
                raise OrderOutcomeUnknownError(sig, reason=reason) from exc
            self.release(sig)
            raise
        self.mark_placed(sig)
        return PlaceResult(PLACED, sig, result)

    # -- internals -----------------------------------------------------------------------

    def _set(self, sig: str, status: str, **extra: Any) -> None:
        with self._locked_sigs() as sigs:
            entry = sigs.get(sig, {"ts": self._time_fn()})
            entry.update(extra, status=status)
            if status == PLACED:
                entry["ts"] = self._time_fn()  # the TTL runs from the confirmed placement
            sigs[sig] = entry

    def _read(self) -> dict[str, dict[str, Any]]:
        result = read_json(self.path)
        sigs = (result.doc or {}).get("sigs")
        if result.doc is not None and isinstance(sigs, dict):
            return {k: v for k, v in sigs.items() if isinstance(v, dict)}
        if result.reason not in (None, "missing"):
            log.warning(
                "[idempotency] %s unreadable (%s); starting a fresh ledger",
                self.path,
                result.reason,
            )
        return {}

    def _live(self, sigs: dict[str, dict[str, Any]], now: float) -> dict[str, dict[str, Any]]:
        def alive(entry: dict[str, Any]) -> bool:
            if entry.get("status") == PENDING:
                return True  # unknown outcomes never expire
            ts = entry.get("ts")
            if isinstance(ts, bool) or not isinstance(ts, int | float):
                return False
            # A stamp from the future comes from before a reboot (the monotonic clock restarted).
            return ts <= now + 1.0 and now - ts < self.ttl_s

        return {sig: entry for sig, entry in sigs.items() if alive(entry)}

    @contextmanager
    def _locked_sigs(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Live records under the lock; written back (pruned) if the body changed them."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path):
            raw = self._read()
            sigs = {k: dict(v) for k, v in self._live(raw, self._time_fn()).items()}
            yield sigs
            if sigs != raw:
                write_json_atomic(self.path, {"schema": 1, "clock": "monotonic", "sigs": sigs})
