"""Errors the guard library raises to the trading process.

Hierarchy::

    Exception
     └── GuardError                    base of everything below
          ├── CallFailedError          a guarded exchange call gave up (category, reason, attempts)
          │    ├── RetriesExhaustedError   transient / rate-limit failures on every attempt
          │    └── NonRetryableError       a permanent or auth failure: one attempt only
          ├── BreakerOpenError         the circuit breaker refused the call before it was made
          ├── OrderOutcomeUnknownError the placement timed out: the order is ``pending``
          ├── LedgerUnreadableError    the order ledger cannot be read: no new orders until repaired
          └── StateBusValidationError  a state-bus write failed its schema; nothing was written

Each carries a stable ``reason`` token so callers can log it and tests can match it.
"""

from __future__ import annotations

__all__ = [
    "BreakerOpenError",
    "CallFailedError",
    "GuardError",
    "LedgerUnreadableError",
    "NonRetryableError",
    "OrderOutcomeUnknownError",
    "RetriesExhaustedError",
    "StateBusValidationError",
]


class GuardError(Exception):
    """Base class: every guard error has a stable ``reason`` token."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CallFailedError(GuardError):
    """A guarded call failed for good; ``__cause__`` is the last underlying exception."""

    def __init__(self, op_label: str, *, category: str, reason: str, attempts: int) -> None:
        super().__init__(
            f"{op_label} failed after {attempts} attempt(s) category={category} reason={reason}",
            reason=reason,
        )
        self.op_label = op_label
        self.category = category
        self.attempts = attempts


class RetriesExhaustedError(CallFailedError):
    """Every attempt failed with a retryable (transient or rate-limit) error."""


class NonRetryableError(CallFailedError):
    """The first failure was permanent or an auth failure, so it was not retried."""


class BreakerOpenError(GuardError):
    """The circuit breaker for this key is open and the action is not risk-reducing."""

    def __init__(self, op_label: str, *, key: str, reason: str = "outage_circuit_breaker_active"):
        super().__init__(f"{op_label} refused: {reason} key={key}", reason=reason)
        self.op_label = op_label
        self.key = key


class OrderOutcomeUnknownError(GuardError):
    """An order placement whose outcome is unknown (timeout); its signature is now ``pending``."""

    def __init__(self, sig: str, *, reason: str) -> None:
        super().__init__(
            f"order {sig} outcome unknown ({reason}); pending until reconciled", reason=reason
        )
        self.sig = sig


class LedgerUnreadableError(GuardError):
    """The order ledger cannot be trusted, so no new order may be sent until it is repaired.

    ``kept_aside`` is where the unreadable file was moved (``None`` if it could not be).
    """

    def __init__(self, path: str, *, detail: str, kept_aside: str | None = None) -> None:
        super().__init__(
            f"order ledger {path} unreadable ({detail}); new orders refused until repaired",
            reason="ledger_unreadable",
        )
        self.path = path
        self.detail = detail
        self.kept_aside = kept_aside


class StateBusValidationError(GuardError):
    """A state-bus document failed validation; ``problems`` lists every broken field."""

    def __init__(self, problems: list[str], *, reason: str = "state_bus_invalid") -> None:
        super().__init__("state bus document rejected: " + "; ".join(problems), reason=reason)
        self.problems = problems
