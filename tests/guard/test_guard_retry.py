"""call_with_retry: call counts, exact log lines (caplog), backoff bounds, breaker feeding."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import re

import pytest

from autoheal.guard import (
    Backoff,
    BreakerOpenError,
    BreakerPolicy,
    CircuitBreaker,
    NonRetryableError,
    RetriesExhaustedError,
    acall_with_retry,
    call_with_retry,
)


class ExchangeNotAvailable(Exception): ...  # ccxt's name


class InsufficientFunds(Exception): ...


class RateLimitExceeded(Exception):
    def __init__(self, retry_after):
        super().__init__("429")
        self.retry_after = retry_after


class Flaky:
    """Fails ``failures`` times with ``exc``, then returns ``result``."""

    def __init__(self, failures, exc, result="ok"):
        self.failures, self.exc, self.result, self.calls = failures, exc, result, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return self.result


def _messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "autoheal.guard.retry"]


def test_retry_always_502_calls_five_times_and_logs_exactly(caplog):
    caplog.set_level(logging.INFO)
    fn = Flaky(99, ExchangeNotAvailable("502 Bad Gateway"))
    delays = []
    with pytest.raises(RetriesExhaustedError) as info:
        call_with_retry(
            fn,
            op_label="fetch_balance.buy_pre",
            attempts=5,
            sleep_fn=delays.append,
            rng=random.Random(1),
        )
    assert fn.calls == 5
    assert (info.value.category, info.value.reason, info.value.attempts) == (
        "transient",
        "exchange_502",
        5,
    )
    assert isinstance(info.value.__cause__, ExchangeNotAvailable)
    lines = _messages(caplog)
    assert len(lines) == 5
    for i, (line, delay) in enumerate(zip(lines[:4], delays, strict=True), start=1):
        assert line == (
            f"[outage-retry] fetch_balance.buy_pre attempt {i}/5 failed "
            f"category=transient reason=exchange_502 backoff={delay:.2f}s"
        )
        assert re.fullmatch(
            r"\[outage-retry\] \S+ attempt \d/5 failed category=\w+ reason=\w+ "
            r"backoff=\d+\.\d\ds",
            line,
        )
    assert lines[4] == (
        "[outage-retry] fetch_balance.buy_pre retries exhausted (5/5) "
        "category=transient reason=exchange_502"
    )


def test_retry_succeeds_on_fifth_call():
    fn = Flaky(4, ExchangeNotAvailable("502"), result={"USDT": {"free": 10000}})
    assert call_with_retry(fn, op_label="fetch_balance", attempts=5, sleep_fn=lambda _s: None) == {
        "USDT": {"free": 10000}
    }
    assert fn.calls == 5


def test_retry_permanent_error_is_called_once(caplog):
    caplog.set_level(logging.INFO)
    fn = Flaky(99, InsufficientFunds("Account has insufficient balance"))
    slept = []
    with pytest.raises(NonRetryableError) as info:
        call_with_retry(fn, op_label="create_market_sell_order", attempts=5, sleep_fn=slept.append)
    assert fn.calls == 1
    assert slept == []
    assert info.value.reason == "insufficient_funds"
    assert _messages(caplog) == [
        "[outage-retry] create_market_sell_order non-retryable "
        "category=permanent reason=insufficient_funds"
    ]


def test_retry_backoff_grows_exponentially_within_jitter_bounds():
    backoff = Backoff(base_s=0.5, factor=2.0, max_s=30.0, jitter=0.2)
    for seed in range(20):
        delays = []
        with pytest.raises(RetriesExhaustedError):
            call_with_retry(
                Flaky(99, TimeoutError()),
                op_label="op",
                attempts=5,
                backoff=backoff,
                sleep_fn=delays.append,
                rng=random.Random(seed),
            )
        assert len(delays) == 4
        for i, delay in enumerate(delays, start=1):
            nominal = 0.5 * 2 ** (i - 1)
            assert nominal * 0.8 <= delay <= nominal * 1.2
        assert all(b > a for a, b in itertools.pairwise(delays))  # 20% jitter < doubling


def test_retry_backoff_is_capped():
    backoff = Backoff(base_s=1, factor=10, max_s=5, jitter=0)
    assert [backoff.nominal(i) for i in range(1, 5)] == [1, 5, 5, 5]
    assert backoff.nominal(10_000) == 5


def test_retry_honours_retry_after_for_rate_limits():
    delays = []
    fn = Flaky(1, RateLimitExceeded(retry_after=7.5))
    assert (
        call_with_retry(fn, op_label="op", sleep_fn=delays.append, backoff=Backoff(jitter=0))
        == "ok"
    )
    assert delays == [7.5]


def test_retry_feeds_the_breaker_and_respects_it(clock):
    breaker = CircuitBreaker(
        policy=BreakerPolicy(failure_threshold=3, window_failures=0), time_fn=clock
    )
    with pytest.raises(RetriesExhaustedError):
        call_with_retry(
            Flaky(99, ExchangeNotAvailable("502")),
            op_label="fetch_balance",
            attempts=3,
            sleep_fn=lambda _s: None,
            breaker=breaker,
        )
    assert breaker.state() == "open"
    buy = Flaky(0, None)
    with pytest.raises(BreakerOpenError) as info:
        call_with_retry(buy, op_label="create_market_buy_order", breaker=breaker, action="buy")
    assert buy.calls == 0
    assert info.value.reason == "outage_circuit_breaker_active"
    # Recovery through half-open: two successful probes close it.
    clock.advance(BreakerPolicy().cooldown_s + 1)
    assert breaker.state() == "half_open"
    for label in ("probe1", "probe2"):
        call_with_retry(Flaky(0, None), op_label=label, breaker=breaker, sleep_fn=lambda _s: None)
    assert breaker.state() == "closed"
    assert breaker.allow_call("buy") == (True, None)


def test_acall_with_retry_matches_sync():
    calls = 0
    slept = []

    async def fetch():
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ExchangeNotAvailable("503")
        return 42

    async def fake_sleep(s):
        slept.append(s)

    assert asyncio.run(acall_with_retry(fetch, op_label="op", sleep_fn=fake_sleep)) == 42
    assert calls == 3
    assert len(slept) == 2


def test_retry_rejects_zero_attempts():
    with pytest.raises(ValueError):
        call_with_retry(lambda: 1, op_label="op", attempts=0)
