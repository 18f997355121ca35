"""ccxt's own exception classes, classified by the guard (by class name: the guard never
imports ccxt). The table in docs/ccxt.md is this test's table."""

from __future__ import annotations

import pytest

import ccxt
from autoheal.guard.classify import classify, outcome_unknown

#: ccxt exception -> (category, reason token, may the order exist?)
TABLE = [
    (ccxt.NetworkError, "transient", "network_error", True),
    (ccxt.RequestTimeout, "transient", "timeout", True),
    (ccxt.ExchangeNotAvailable, "transient", "exchange_unavailable", True),
    (ccxt.OnMaintenance, "transient", "exchange_unavailable", True),
    (ccxt.OperationFailed, "transient", "exchange_unavailable", True),
    (ccxt.InvalidNonce, "transient", "invalid_nonce", True),
    (ccxt.RateLimitExceeded, "rate_limit", "rate_limited", False),
    (ccxt.DDoSProtection, "rate_limit", "rate_limited", False),
    (ccxt.InsufficientFunds, "permanent", "insufficient_funds", False),
    (ccxt.InvalidOrder, "permanent", "invalid_order", False),
    (ccxt.OrderNotFound, "permanent", "order_not_found", False),
    (ccxt.BadSymbol, "permanent", "invalid_order", False),
    (ccxt.BadRequest, "permanent", "invalid_order", False),
    (ccxt.ExchangeError, "permanent", "exchange_error", False),
    (ccxt.AuthenticationError, "auth", "auth_failed", False),
    (ccxt.PermissionDenied, "auth", "auth_failed", False),
    (ccxt.AccountSuspended, "auth", "auth_failed", False),
]


@pytest.mark.parametrize(("error", "category", "reason", "unknown"), TABLE)
def test_each_ccxt_exception_has_its_guard_reason(
    error: type[Exception], category: str, reason: str, unknown: bool
) -> None:
    exc = error('binanceusdm {"code":-1,"msg":"x"}')
    assert tuple(classify(exc)) == (category, reason)
    assert outcome_unknown(exc) is unknown


def test_a_5xx_in_ccxts_message_keeps_its_code() -> None:
    exc = ccxt.ExchangeNotAvailable(
        "binanceusdm POST http://x/fapi/v1/order 503 Service Unavailable"
    )
    assert tuple(classify(exc)) == ("transient", "exchange_503")
