"""classify(): exact tokens for the outage drill, and never a raise (hypothesis)."""

from __future__ import annotations

import errno
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.guard import classify
from autoheal.guard.classify import outcome_unknown, retry_after_s


# Stand-ins named like ccxt's hierarchy: classify matches class names along the MRO.
class BaseError(Exception): ...


class ExchangeError(BaseError): ...


class AuthenticationError(ExchangeError): ...


class InsufficientFunds(ExchangeError): ...


class InvalidOrder(ExchangeError): ...


class NetworkError(BaseError): ...


class DDoSProtection(NetworkError): ...


class RateLimitExceeded(DDoSProtection): ...


class ExchangeNotAvailable(NetworkError): ...


class OnMaintenance(ExchangeNotAvailable): ...


class RequestTimeout(NetworkError): ...


class _Response:
    def __init__(self, status_code, headers=None):
        self.status_code = status_code
        self.headers = headers or {}


class HTTPStatusError(Exception):
    def __init__(self, status_code, headers=None):
        super().__init__(f"status {status_code}")
        self.response = _Response(status_code, headers)


class ReadTimeout(Exception): ...  # httpx-like name


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ExchangeNotAvailable("502 Bad Gateway"), ("transient", "exchange_502")),
        (ExchangeNotAvailable("binance 503 Service Unavailable"), ("transient", "exchange_503")),
        (ExchangeNotAvailable("down"), ("transient", "exchange_unavailable")),
        (OnMaintenance("maintenance"), ("transient", "exchange_unavailable")),
        (RequestTimeout("timed out"), ("transient", "timeout")),
        (RateLimitExceeded("slow down"), ("rate_limit", "rate_limited")),
        (DDoSProtection("ddos"), ("rate_limit", "rate_limited")),
        (AuthenticationError("bad key"), ("auth", "auth_failed")),
        (
            InsufficientFunds("Account has insufficient balance"),
            ("permanent", "insufficient_funds"),
        ),
        (InvalidOrder("LOT_SIZE"), ("permanent", "invalid_order")),
        (NetworkError("boom"), ("transient", "network_error")),
        (TimeoutError(), ("transient", "timeout")),
        (socket.timeout(), ("transient", "timeout")),  # noqa: UP041 - the alias on purpose
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ("transient", "conn_refused")),
        (ConnectionResetError(), ("transient", "conn_reset")),
        (OSError(errno.ENETUNREACH, "unreachable"), ("transient", "network_unreachable")),
        (HTTPStatusError(502), ("transient", "exchange_502")),
        (HTTPStatusError(429), ("rate_limit", "rate_limited")),
        (HTTPStatusError(401), ("auth", "auth_failed")),
        (HTTPStatusError(404), ("permanent", "http_status_404")),
        (ReadTimeout(), ("transient", "timeout")),
        (ValueError("what"), ("permanent", "unclassified")),
        (503, ("transient", "exchange_503")),
        (400, ("permanent", "invalid_order")),
    ],
)
def test_classify_exact_tokens(exc, expected):
    assert classify(exc) == expected


def test_classify_returns_a_tuple_that_unpacks():
    category, reason = classify(ExchangeNotAvailable("502"))
    assert (category, reason) == ("transient", "exchange_502")


class _Hostile(Exception):
    def __str__(self):
        raise RuntimeError("no")

    @property
    def response(self):
        raise RuntimeError("no")


def test_classify_survives_hostile_exceptions():
    assert classify(_Hostile()) == ("permanent", "unclassified")


_EXC_TYPES = [
    ValueError,
    KeyError,
    OSError,
    TimeoutError,
    ConnectionError,
    RuntimeError,
    ExchangeNotAvailable,
    InsufficientFunds,
    RateLimitExceeded,
    AuthenticationError,
]


@given(
    st.one_of(
        st.integers(),
        st.booleans(),
        st.builds(lambda cls, msg: cls(msg), st.sampled_from(_EXC_TYPES), st.text()),
        st.builds(HTTPStatusError, st.integers()),
        st.builds(OSError, st.integers(), st.text()),
        st.none(),
        st.text(),
        st.floats(),
    )
)
def test_classify_never_raises(value):
    category, reason = classify(value)
    assert category in {"transient", "rate_limit", "permanent", "auth"}
    assert isinstance(reason, str)
    assert reason


def test_outcome_unknown_only_for_maybe_sent_requests():
    assert outcome_unknown(RequestTimeout("t"))
    assert outcome_unknown(ExchangeNotAvailable("502"))
    assert not outcome_unknown(ConnectionRefusedError())
    assert not outcome_unknown(RateLimitExceeded("x"))
    assert not outcome_unknown(InsufficientFunds("x"))


def test_retry_after_from_attribute_and_header():
    exc = RateLimitExceeded("x")
    exc.retry_after = 7
    assert retry_after_s(exc) == 7.0
    assert retry_after_s(HTTPStatusError(429, {"Retry-After": "3"})) == 3.0
    http_date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert retry_after_s(HTTPStatusError(429, {"Retry-After": http_date}), now=1445412480.0) == 10.0
    assert retry_after_s(HTTPStatusError(429, {"Retry-After": "soon"})) is None
    assert retry_after_s(ValueError()) is None
