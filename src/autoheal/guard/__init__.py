"""autoheal.guard: what a trading process imports to obey the kill switch and survive outages.

A small library in the manner of watchfiles: the standard library and a few modules of
``autoheal.store`` only (orjson when installed; watchfiles for ``TradingGate.start``),
never the core or the daemon, so that it ships alone as ``autoheal-guard``. Importing it
has no side effects, it holds no global state and starts no thread unless asked
(``TradingGate.start``).

Typical use on every order (under the daemon the paths may be left out: they come
from ``AUTOHEAL_RUNTIME_DIR`` / ``AUTOHEAL_STOP_FILE``). Paths are absolute; when the
gate cannot find the kill switch (no paths, a relative one, no runtime directory or
``global_flags.json``) it refuses everything with ``kill_switch_unknown``::

    gate = TradingGate(runtime_dir, stop_file)
    breaker = CircuitBreaker(runtime_dir)
    ledger = OrderLedger(runtime_dir)
    inventory = InventoryGate(runtime_dir)

    ok, reason = gate.allowed("buy", symbol="BTCUSDT")
    ok, reason = inventory.validate_order("BTCUSDT", "sell", 0.01)
    balance = call_with_retry(ex.fetch_balance, op_label="fetch_balance", breaker=breaker)
    result = ledger.place("BTCUSDT", "buy", 0.01, None, place_fn, reconcile_fn=check_open_orders)

Pre-trade risk limits (``[risk]``, see :mod:`autoheal.guard.risk`)::

    risk = RiskGuard(parse_limits(toml["risk"]), runtime_dir)
    ok, reasons = risk.check(RiskOrder("BTCUSDT", "buy", Decimal("0.01"), Decimal("65000")),
                             RiskBook(positions=..., open_orders=..., marks=...))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# ``classify`` is both a module and its function: bound eagerly, or the first import of
# the module ``autoheal.guard.classify`` would leave the module where the function belongs.
from autoheal.guard.classify import classify

if TYPE_CHECKING:
    from autoheal.guard.breaker import CircuitBreaker
    from autoheal.guard.breaker_state import BreakerPolicy
    from autoheal.guard.classify import Classification
    from autoheal.guard.deadman import CountdownPort, DeadmanPolicy, DeadmanSwitch
    from autoheal.guard.errors import (
        BreakerOpenError,
        CallFailedError,
        GuardError,
        LedgerUnreadableError,
        NonRetryableError,
        OrderOutcomeUnknownError,
        RetriesExhaustedError,
        StateBusValidationError,
    )
    from autoheal.guard.gate import GateStatus, TradingGate
    from autoheal.guard.heartbeat import Heartbeat
    from autoheal.guard.idempotency import OrderLedger, PlaceResult, order_signature
    from autoheal.guard.inventory import InventoryGate, check_inventory
    from autoheal.guard.live_gating import LiveEnv, hash_confirm_token, is_live_execution_allowed
    from autoheal.guard.retry import Backoff, acall_with_retry, call_with_retry
    from autoheal.guard.risk import (
        OpenOrder,
        RiskBook,
        RiskConfigError,
        RiskGuard,
        RiskLimits,
        RiskOrder,
        check_order,
        parse_limits,
    )
    from autoheal.guard.state_bus import BusRead, StateBus, StateSchema

#: Where each public name lives: imported on first use, so that importing one guard
#: module (e.g. ``autoheal.guard.risk`` from the config) does not load all of them.
_EXPORTS = {
    "Backoff": "autoheal.guard.retry",
    "BreakerOpenError": "autoheal.guard.errors",
    "BreakerPolicy": "autoheal.guard.breaker_state",
    "BusRead": "autoheal.guard.state_bus",
    "CallFailedError": "autoheal.guard.errors",
    "CircuitBreaker": "autoheal.guard.breaker",
    "Classification": "autoheal.guard.classify",
    "CountdownPort": "autoheal.guard.deadman",
    "DeadmanPolicy": "autoheal.guard.deadman",
    "DeadmanSwitch": "autoheal.guard.deadman",
    "GateStatus": "autoheal.guard.gate",
    "GuardError": "autoheal.guard.errors",
    "Heartbeat": "autoheal.guard.heartbeat",
    "InventoryGate": "autoheal.guard.inventory",
    "LedgerUnreadableError": "autoheal.guard.errors",
    "LiveEnv": "autoheal.guard.live_gating",
    "NonRetryableError": "autoheal.guard.errors",
    "OpenOrder": "autoheal.guard.risk",
    "OrderLedger": "autoheal.guard.idempotency",
    "OrderOutcomeUnknownError": "autoheal.guard.errors",
    "PlaceResult": "autoheal.guard.idempotency",
    "RetriesExhaustedError": "autoheal.guard.errors",
    "RiskBook": "autoheal.guard.risk",
    "RiskConfigError": "autoheal.guard.risk_limits",
    "RiskGuard": "autoheal.guard.risk",
    "RiskLimits": "autoheal.guard.risk_limits",
    "RiskOrder": "autoheal.guard.risk",
    "StateBus": "autoheal.guard.state_bus",
    "StateBusValidationError": "autoheal.guard.errors",
    "StateSchema": "autoheal.guard.state_bus",
    "TradingGate": "autoheal.guard.gate",
    "acall_with_retry": "autoheal.guard.retry",
    "call_with_retry": "autoheal.guard.retry",
    "check_inventory": "autoheal.guard.inventory",
    "check_order": "autoheal.guard.risk",
    "hash_confirm_token": "autoheal.guard.live_gating",
    "is_live_execution_allowed": "autoheal.guard.live_gating",
    "order_signature": "autoheal.guard.idempotency",
    "parse_limits": "autoheal.guard.risk_limits",
}

__all__ = [
    "Backoff",
    "BreakerOpenError",
    "BreakerPolicy",
    "BusRead",
    "CallFailedError",
    "CircuitBreaker",
    "Classification",
    "CountdownPort",
    "DeadmanPolicy",
    "DeadmanSwitch",
    "GateStatus",
    "GuardError",
    "Heartbeat",
    "InventoryGate",
    "LedgerUnreadableError",
    "LiveEnv",
    "NonRetryableError",
    "OpenOrder",
    "OrderLedger",
    "OrderOutcomeUnknownError",
    "PlaceResult",
    "RetriesExhaustedError",
    "RiskBook",
    "RiskConfigError",
    "RiskGuard",
    "RiskLimits",
    "RiskOrder",
    "StateBus",
    "StateBusValidationError",
    "StateSchema",
    "TradingGate",
    "acall_with_retry",
    "call_with_retry",
    "check_inventory",
    "check_order",
    "classify",
    "hash_confirm_token",
    "is_live_execution_allowed",
    "order_signature",
    "parse_limits",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'autoheal.guard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
