"""Classify a failed exchange call into a category and a stable reason token.

Categories decide what the retry loop does:

=============  ======================================  ==================
category       examples                                retry
=============  ======================================  ==================
``transient``  502/503/504, timeouts, refused or reset  yes, with backoff
``rate_limit`` 429, ``RateLimitExceeded``, DDoS guard   yes, honouring Retry-After
``permanent``  insufficient funds, invalid order, 4xx   no (one attempt)
``auth``       401/403, ``AuthenticationError``          no (one attempt)
=============  ======================================  ==================

Exchange-library exceptions (ccxt and look-alikes) are matched by *class name*
along the exception's MRO, so this module never imports that library and a
subclass such as ``OnMaintenance(ExchangeNotAvailable)`` is classified through
its parent. HTTP client errors (httpx, requests) are matched the same way, and
any exception carrying a status code (``exc.status_code``, ``exc.status`` or
``exc.response.status_code``) is classified by that code.

:func:`classify` never raises: anything it cannot place is ``permanent`` /
``unclassified``, which means "do not retry blindly".
"""

from __future__ import annotations

import errno
import re
import time
from typing import Any, NamedTuple

__all__ = [
    "AUTH",
    "PERMANENT",
    "RATE_LIMIT",
    "RETRYABLE",
    "TRANSIENT",
    "Classification",
    "classify",
    "classify_status",
    "outcome_unknown",
    "retry_after_s",
]

TRANSIENT = "transient"
RATE_LIMIT = "rate_limit"
PERMANENT = "permanent"
AUTH = "auth"
RETRYABLE = frozenset({TRANSIENT, RATE_LIMIT})


class Classification(NamedTuple):
    """``(category, reason_token)``; unpacks like the plain tuple the contract names."""

    category: str
    reason: str


# Most specific names first does not matter: the MRO walk visits the subclass first.
_BY_CLASS_NAME: dict[str, Classification] = {
    # ccxt
    "InsufficientFunds": Classification(PERMANENT, "insufficient_funds"),
    "InvalidOrder": Classification(PERMANENT, "invalid_order"),
    "OrderNotFound": Classification(PERMANENT, "order_not_found"),
    "BadSymbol": Classification(PERMANENT, "invalid_order"),
    "BadRequest": Classification(PERMANENT, "invalid_order"),
    "AuthenticationError": Classification(AUTH, "auth_failed"),
    "PermissionDenied": Classification(AUTH, "auth_failed"),
    "AccountSuspended": Classification(AUTH, "auth_failed"),
    "RateLimitExceeded": Classification(RATE_LIMIT, "rate_limited"),
    "DDoSProtection": Classification(RATE_LIMIT, "rate_limited"),
    "RequestTimeout": Classification(TRANSIENT, "timeout"),
    "ExchangeNotAvailable": Classification(TRANSIENT, "exchange_unavailable"),
    "OnMaintenance": Classification(TRANSIENT, "exchange_unavailable"),
    "InvalidNonce": Classification(TRANSIENT, "invalid_nonce"),
    "NetworkError": Classification(TRANSIENT, "network_error"),
    # ccxt 4's parent of NetworkError: an operation that failed and may be retried
    # (Binance's -1001 "Internal error; unable to process your request").
    "OperationFailed": Classification(TRANSIENT, "exchange_unavailable"),
    "ExchangeError": Classification(PERMANENT, "exchange_error"),
    # httpx / httpcore
    "TimeoutException": Classification(TRANSIENT, "timeout"),
    "ConnectTimeout": Classification(TRANSIENT, "timeout"),
    "ReadTimeout": Classification(TRANSIENT, "timeout"),
    "WriteTimeout": Classification(TRANSIENT, "timeout"),
    "PoolTimeout": Classification(TRANSIENT, "timeout"),
    "ConnectError": Classification(TRANSIENT, "conn_error"),
    "RemoteProtocolError": Classification(TRANSIENT, "conn_reset"),
    "ReadError": Classification(TRANSIENT, "conn_reset"),
    "TransportError": Classification(TRANSIENT, "network_error"),
    # requests / urllib3
    "ConnectionError": Classification(TRANSIENT, "conn_error"),
    "Timeout": Classification(TRANSIENT, "timeout"),
}

_STATUS_IN_TEXT = re.compile(r"\b(5\d\d|429|40[13])\b")
_REFUSED_IN_TEXT = re.compile(r"connection refused|ECONNREFUSED|errno 111", re.IGNORECASE)
_UNKNOWN = Classification(PERMANENT, "unclassified")


def classify_status(status: int) -> Classification:
    """Classify an HTTP status code (``exchange_<code>`` for 5xx, ``http_status_<code>`` else)."""
    if status in {429, 418}:  # 418: Binance's "IP banned for hammering"
        return Classification(RATE_LIMIT, "rate_limited")
    if status in (401, 403):
        return Classification(AUTH, "auth_failed")
    if status == 408:
        return Classification(TRANSIENT, "timeout")
    if 500 <= status <= 599:
        return Classification(TRANSIENT, f"exchange_{status}")
    if 400 <= status <= 499:
        return Classification(
            PERMANENT, "invalid_order" if status in (400, 422) else f"http_status_{status}"
        )
    return Classification(PERMANENT, f"http_status_{status}")


def classify(exc: BaseException | int) -> Classification:
    """Classify an exception (or a bare HTTP status code).

    Args:
        exc: the exception a call raised, or an HTTP status code.

    Returns:
        ``Classification(category, reason)``; never raises.
    """
    try:
        return _classify(exc)
    except Exception:  # a hostile __str__ or property must not break the retry loop
        return _UNKNOWN


def _classify(exc: BaseException | int) -> Classification:
    if isinstance(exc, bool) or not isinstance(exc, BaseException | int):
        return _UNKNOWN
    if isinstance(exc, int):
        return classify_status(exc)
    status = _status_of(exc)
    if status is not None:
        return classify_status(status)
    for cls in type(exc).__mro__:
        if cls.__module__ == "builtins":
            continue  # builtin ConnectionError etc. are handled with their subclasses below
        found = _BY_CLASS_NAME.get(cls.__name__)
        if found is None:
            continue
        if found.reason in (
            "exchange_unavailable",
            "network_error",
            "conn_error",
            "exchange_error",
        ):
            return _refine_from_text(found, str(exc))
        return found
    return _classify_builtin(exc)


def _classify_builtin(exc: BaseException) -> Classification:
    # TimeoutError covers socket.timeout and asyncio.TimeoutError (aliases since 3.10/3.11).
    if isinstance(exc, TimeoutError):
        return Classification(TRANSIENT, "timeout")
    if isinstance(exc, ConnectionRefusedError):
        return Classification(TRANSIENT, "conn_refused")
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return Classification(TRANSIENT, "conn_reset")
    if isinstance(exc, OSError) and exc.errno in (
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.ETIMEDOUT,
    ):
        return Classification(TRANSIENT, "network_unreachable")
    if isinstance(exc, ConnectionError):
        return Classification(TRANSIENT, "conn_error")
    return _UNKNOWN


def _refine_from_text(found: Classification, text: str) -> Classification:
    """``ExchangeNotAvailable("502 Bad Gateway")`` → ``exchange_502``: keep the code visible."""
    match = _STATUS_IN_TEXT.search(text)
    if match:
        by_status = classify_status(int(match.group(1)))
        if by_status.category == TRANSIENT or found.category == PERMANENT:
            return by_status
    if _REFUSED_IN_TEXT.search(text):
        return Classification(TRANSIENT, "conn_refused")
    return found


def _status_of(exc: BaseException) -> int | None:
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for attr in ("status_code", "status", "http_status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
    return None


def outcome_unknown(exc: BaseException) -> bool:
    """Whether an order request that raised ``exc`` may still have reached the exchange.

    A refused connection or a rate-limit rejection never placed anything; a timeout,
    a reset or a gateway error after sending might have (the exchange may have filled
    it). The idempotency ledger keeps such orders ``pending`` instead of resending.
    """
    category, reason = classify(exc)
    if category != TRANSIENT:
        return False
    return reason not in ("conn_refused", "network_unreachable")


def retry_after_s(exc: BaseException, *, now: float | None = None) -> float | None:
    """The server's ``Retry-After`` hint in seconds, if the exception carries one.

    Looks at ``exc.retry_after`` and at ``exc.response.headers["Retry-After"]``
    (delta seconds or an HTTP date). Never raises.
    """
    try:
        value: Any = getattr(exc, "retry_after", None)
        if value is None:
            headers = getattr(getattr(exc, "response", None), "headers", None)
            if headers is not None:
                value = headers.get("Retry-After") or headers.get("retry-after")
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return max(0.0, float(value))
        text = str(value).strip()
        try:
            return max(0.0, float(text))
        except ValueError:
            # Imported here, for the rare HTTP date: importing autoheal.guard (the config
            # loader does, for [risk]) stays free of the email package (~10 ms).
            import email.utils

            when = email.utils.parsedate_to_datetime(text)
            # Wall clock only to turn an HTTP date into a delay; the wait itself is monotonic.
            return max(0.0, when.timestamp() - (time.time() if now is None else now))
    except Exception:
        return None
