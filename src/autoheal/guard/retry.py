"""Retry an exchange call: backoff with jitter for transient failures, one try for the rest.

The loop is deliberately dumb and fully injectable: ``sleep_fn`` (a no-op in
tests), ``rng`` (a seeded ``random.Random`` for replayable jitter) and an optional
:class:`~autoheal.guard.breaker.CircuitBreaker` that every outcome feeds. It logs
exactly these lines (the outage-drill telemetry, matched character for character)::

    [outage-retry] <op> attempt i/N failed category=... reason=... backoff=<s>s
    [outage-retry] <op> retries exhausted (N/N) category=... reason=...
    [outage-retry] <op> non-retryable category=permanent reason=...

Never wrap an order *placement* in more than one attempt: a timed-out placement may
have been filled. Use :meth:`OrderLedger.place <autoheal.guard.idempotency.OrderLedger.place>`
for orders and this loop for reads (balances, markets, open orders).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from autoheal.guard.classify import RATE_LIMIT, RETRYABLE, classify, retry_after_s
from autoheal.guard.errors import BreakerOpenError, NonRetryableError, RetriesExhaustedError

if TYPE_CHECKING:
    from autoheal.guard.breaker import CircuitBreaker

__all__ = ["Backoff", "acall_with_retry", "call_with_retry"]

T = TypeVar("T")
log = logging.getLogger("autoheal.guard.retry")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: attempt ``i`` waits ``min(max_s, base_s * factor**(i-1))`` ± ``jitter``.

    Attributes:
        base_s: the first delay.
        factor: growth per attempt.
        max_s: the cap of the nominal delay.
        jitter: relative spread; the delay lies in ``[nominal*(1-jitter), nominal*(1+jitter)]``.
        retry_after_cap_s: the most a server's ``Retry-After`` may make us wait.
    """

    base_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.2
    retry_after_cap_s: float = 60.0

    def __post_init__(self) -> None:
        if not (self.base_s >= 0 and self.factor >= 1 and self.max_s >= self.base_s):
            raise ValueError("need base_s >= 0, factor >= 1 and max_s >= base_s")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def nominal(self, attempt: int) -> float:
        """The delay after failed attempt ``attempt`` (1-based) before jitter."""
        exponent = min(attempt - 1, 64)  # keeps factor**exponent finite
        return min(self.max_s, self.base_s * math.pow(self.factor, exponent))

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """The jittered delay, at least the server's (capped) ``Retry-After``."""
        nominal = self.nominal(attempt)
        jittered = nominal * (1 + self.jitter * (2 * rng.random() - 1))
        if retry_after is not None:
            jittered = max(jittered, min(retry_after, self.retry_after_cap_s))
        return jittered


@dataclass(slots=True)
class _Loop:
    """The decisions shared by the sync and async loops (no I/O but logging)."""

    op_label: str
    attempts: int
    backoff: Backoff
    rng: random.Random
    breaker: CircuitBreaker | None
    breaker_key: str | None

    def before_first(self, action: str | None) -> None:
        if self.breaker is None or action is None:
            return
        ok, reason = self.breaker.allow_call(action, self.breaker_key)
        if not ok:
            raise BreakerOpenError(self.op_label, key=self.breaker_key or "*", reason=reason or "")

    def succeeded(self) -> None:
        if self.breaker is not None:
            self.breaker.record_success(self.breaker_key)

    def failed(self, attempt: int, exc: Exception) -> float:
        """Log and feed the breaker; return the delay, or raise when the loop must stop."""
        category, reason = classify(exc)
        if self.breaker is not None:
            self.breaker.record_failure(self.breaker_key, category=category, reason=reason)
        if category not in RETRYABLE:
            log.warning(
                "[outage-retry] %s non-retryable category=%s reason=%s",
                self.op_label,
                category,
                reason,
            )
            raise NonRetryableError(
                self.op_label, category=category, reason=reason, attempts=attempt
            ) from exc
        if attempt >= self.attempts:
            log.error(
                "[outage-retry] %s retries exhausted (%d/%d) category=%s reason=%s",
                self.op_label,
                attempt,
                self.attempts,
                category,
                reason,
            )
            raise RetriesExhaustedError(
                self.op_label, category=category, reason=reason, attempts=attempt
            ) from exc
        hint = retry_after_s(exc) if category == RATE_LIMIT else None
        delay = self.backoff.delay(attempt, self.rng, hint)
        log.warning(
            "[outage-retry] %s attempt %d/%d failed category=%s reason=%s backoff=%.2fs",
            self.op_label,
            attempt,
            self.attempts,
            category,
            reason,
            delay,
        )
        return delay


def _loop(  # noqa: PLR0917 - private, mirrors the public keyword arguments
    op_label: str,
    attempts: int,
    backoff: Backoff | None,
    rng: random.Random | None,
    breaker: CircuitBreaker | None,
    breaker_key: str | None,
) -> _Loop:
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    return _Loop(
        op_label, attempts, backoff or Backoff(), rng or random.Random(), breaker, breaker_key
    )


def call_with_retry(
    fn: Callable[[], T],
    *,
    op_label: str,
    attempts: int = 5,
    backoff: Backoff | None = None,
    sleep_fn: Callable[[float], object] = time.sleep,
    rng: random.Random | None = None,
    breaker: CircuitBreaker | None = None,
    breaker_key: str | None = None,
    action: str | None = None,
) -> T:
    """Call ``fn()`` until it succeeds, retrying transient and rate-limit failures.

    Args:
        fn: the call, with its arguments bound (``functools.partial`` or a lambda).
        op_label: names the operation in log lines, e.g. ``fetch_balance.buy_pre``.
        attempts: total tries for retryable failures (permanent/auth: always one).
        backoff: delays between tries.
        sleep_fn: waits a number of seconds; a no-op in tests.
        rng: the jitter source; pass ``random.Random(seed)`` to replay.
        breaker: fed with every success and failure when given.
        breaker_key: the breaker key (symbol); ``None`` is the global breaker.
        action: when given with a breaker, ``breaker.allow_call(action)`` is checked first.

    Returns:
        Whatever ``fn`` returned.

    Raises:
        BreakerOpenError: the breaker refused the call; ``fn`` was not called.
        NonRetryableError: a permanent or auth failure (``__cause__`` is the original).
        RetriesExhaustedError: every attempt failed with a retryable error.
    """
    loop = _loop(op_label, attempts, backoff, rng, breaker, breaker_key)
    loop.before_first(action)
    attempt = 0
    while True:
        attempt += 1
        try:
            result = fn()
        except Exception as exc:
            sleep_fn(loop.failed(attempt, exc))
            continue
        loop.succeeded()
        return result


async def acall_with_retry(
    fn: Callable[[], Awaitable[T]],
    *,
    op_label: str,
    attempts: int = 5,
    backoff: Backoff | None = None,
    sleep_fn: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
    breaker: CircuitBreaker | None = None,
    breaker_key: str | None = None,
    action: str | None = None,
) -> T:
    """The async form of :func:`call_with_retry`: ``fn()`` returns an awaitable.

    The default ``sleep_fn`` is ``asyncio.sleep``; under trio pass ``trio.sleep``
    (or ``anyio.sleep``), since the guard imports no event-loop library itself.
    """
    loop = _loop(op_label, attempts, backoff, rng, breaker, breaker_key)
    loop.before_first(action)
    attempt = 0
    while True:
        attempt += 1
        try:
            result = await fn()
        except Exception as exc:
            await sleep_fn(loop.failed(attempt, exc))
            continue
        loop.succeeded()
        return result
