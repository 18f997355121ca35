"""The ``[risk]`` table: the limits and the check that builds them from TOML.

Split out of :mod:`autoheal.guard.risk`, which re-exports every name here, so that the
config loader can validate ``[risk]`` without importing the order check, the guard's
state files and logging: ``autoheal status`` and ``autoheal check-config`` must start
fast. Import the names from :mod:`autoheal.guard.risk` (or :mod:`autoheal.guard`);
this module stays stdlib-only (``decimal``, ``re``, ``dataclasses``, ``math``).

Every limit passes :mod:`autoheal.guard.risk_numbers`, the one rule for the numbers the
checks use, twice: :func:`parse_limits` names the TOML key of a bad one, and the
dataclasses refuse one built by hand (a NaN limit would make every later comparison
raise, an infinite one is no limit at all).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from autoheal.guard.risk_numbers import amount_problem

__all__ = [
    "GLOBAL_KEYS",
    "SYMBOL_KEYS",
    "RiskConfigError",
    "RiskLimits",
    "SymbolLimits",
    "parse_limits",
    "to_decimal",
]

#: Limits that may be set per symbol (``[risk.symbols.BTCUSDT]``) as well as globally.
SYMBOL_KEYS = ("max_order_qty", "max_order_notional", "max_position", "price_collar_pct")
#: Limits that only exist across all symbols.
GLOBAL_KEYS = (
    "max_live_notional_total",
    "max_orders_per_second",
    "max_daily_loss",
    "max_drawdown",
    "max_drawdown_pct",
    "loss_breach_reads",
    *("max_submits_per_s", "max_modifies_per_s", "max_cancels_per_s"),
    *("collar_window_pct", "collar_window_s"),
    *("max_repeated_executions", "repeated_execution_window_s"),
)
#: ``loss_breach_reads`` when the key is left out (:mod:`autoheal.guard.risk_drawdown`).
DEFAULT_LOSS_BREACH_READS = 3
#: The largest ``loss_breach_reads`` (a limit that never latches is no limit).
MAX_LOSS_BREACH_READS = 1000
#: The execution throttles' keys that count (whole numbers >= 1; autoheal.guard.throttles).
_COUNT_KEYS = (
    "max_submits_per_s",
    "max_modifies_per_s",
    "max_cancels_per_s",
    "max_repeated_executions",
)
#: Keys that only mean something together (a window and what it bounds).
_PAIRED_KEYS = (
    ("collar_window_pct", "collar_window_s"),
    ("max_repeated_executions", "repeated_execution_window_s"),
)
_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:-]*")


class RiskConfigError(ValueError):
    """A ``[risk]`` value that cannot be used, at its dotted key (``risk.max_order_qty``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}"


def _check_limit(name: str, value: Decimal | None) -> None:
    problem = None if value is None else amount_problem(value)
    if problem is not None:
        raise RiskConfigError(name, f"{value!r} {problem}")


@dataclass(frozen=True, slots=True)
class SymbolLimits:
    """The limits that apply to one symbol; ``None`` means no limit."""

    max_order_qty: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position: Decimal | None = None
    price_collar_pct: Decimal | None = None

    def __post_init__(self) -> None:
        for name in SYMBOL_KEYS:
            _check_limit(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The ``[risk]`` table: defaults for every symbol, overrides per symbol, global limits."""

    default: SymbolLimits = SymbolLimits()
    symbols: Mapping[str, SymbolLimits] = field(default_factory=dict)
    max_live_notional_total: Decimal | None = None
    max_orders_per_second: int | None = None
    max_daily_loss: Decimal | None = None
    max_drawdown: Decimal | None = None
    max_drawdown_pct: Decimal | None = None
    loss_breach_reads: int = DEFAULT_LOSS_BREACH_READS
    # The execution throttles (autoheal.guard.throttles): per strategy, per second.
    max_submits_per_s: int | None = None
    max_modifies_per_s: int | None = None
    max_cancels_per_s: int | None = None
    collar_window_pct: Decimal | None = None
    collar_window_s: float | None = None
    max_repeated_executions: int | None = None
    repeated_execution_window_s: float | None = None

    def __post_init__(self) -> None:
        _check_limit("max_live_notional_total", self.max_live_notional_total)
        _check_limit("max_daily_loss", self.max_daily_loss)
        _check_limit("max_drawdown", self.max_drawdown)
        _check_limit("max_drawdown_pct", self.max_drawdown_pct)
        if self.max_drawdown_pct is not None and self.max_drawdown_pct >= 100:
            raise RiskConfigError("max_drawdown_pct", f"{self.max_drawdown_pct} is not below 100")
        reads = self.loss_breach_reads
        if _bad_reads(reads):
            raise RiskConfigError(
                "loss_breach_reads", f"{reads!r} is not a whole number 1..{MAX_LOSS_BREACH_READS}"
            )
        _check_limit("collar_window_pct", self.collar_window_pct)
        for name in _COUNT_KEYS:
            _check_count(name, getattr(self, name))
        for name in ("collar_window_s", "repeated_execution_window_s"):
            _check_seconds(name, getattr(self, name))
        for a, b in _PAIRED_KEYS:
            if (getattr(self, a) is None) != (getattr(self, b) is None):
                missing = b if getattr(self, b) is None else a
                raise RiskConfigError(missing, f"needed with {a if missing == b else b}")
        rate = self.max_orders_per_second
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 1):
            raise RiskConfigError("max_orders_per_second", f"{rate!r} is not a whole number >= 1")

    def for_symbol(self, symbol: str) -> SymbolLimits:
        """The symbol's own limits (already merged over the defaults by :func:`parse_limits`)."""
        return self.symbols.get(symbol, self.default)


def _bad_reads(reads: Any) -> bool:
    return (
        isinstance(reads, bool)
        or not isinstance(reads, int)
        or not 1 <= reads <= MAX_LOSS_BREACH_READS
    )
def _check_count(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise RiskConfigError(name, f"{value!r} is not a whole number >= 1")


def _check_seconds(name: str, value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= 86400
    ):
        raise RiskConfigError(name, f"{value!r} is not a number of seconds in (0, 86400]")


def to_decimal(value: Any, key: str) -> Decimal:
    """A finite Decimal from an int, a float (its shortest repr), a numeric string or a Decimal.

    Raises:
        RiskConfigError: a bool, another type, text that is no number, NaN or infinity.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise RiskConfigError(key, f"expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RiskConfigError(key, "must be a finite number")
    try:
        out = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise RiskConfigError(key, f"not a number: {value!r}") from None
    if not out.is_finite():
        raise RiskConfigError(key, "must be a finite number")
    return out


def _positive(table: Mapping[str, Any], name: str, prefix: str) -> Decimal | None:
    if name not in table or table[name] is None:
        return None
    key = f"{prefix}.{name}"
    value = to_decimal(table[name], key)
    if value <= 0:
        raise RiskConfigError(key, "must be greater than zero (leave the key out for no limit)")
    problem = amount_problem(value)
    if problem is not None:  # 1e-40, 1e40: no market has such a limit; a typo does
        raise RiskConfigError(key, f"{value} {problem}")
    return value


def _symbol_limits(table: Mapping[str, Any], prefix: str, base: SymbolLimits) -> SymbolLimits:
    values = {name: _positive(table, name, prefix) for name in SYMBOL_KEYS}
    return SymbolLimits(
        **{
            name: getattr(base, name) if values[name] is None else values[name]
            for name in SYMBOL_KEYS
        }
    )


def _unknown(table: Mapping[str, Any], allowed: Iterable[str], prefix: str) -> None:
    known = set(allowed)
    for name in table:
        if name not in known:
            raise RiskConfigError(f"{prefix}.{name}", "unknown field")


def parse_limits(table: Mapping[str, Any], prefix: str = "risk") -> RiskLimits:
    """Check a ``[risk]`` table (as decoded from TOML) and build :class:`RiskLimits`.

    Every limit is optional and, when given, a finite number greater than zero (and
    within :data:`~autoheal.guard.risk_numbers.MAX_AMOUNT`);
    ``max_orders_per_second`` is a whole number of orders. ``symbols`` maps a symbol to
    overrides of :data:`SYMBOL_KEYS`; an override inherits what it leaves out.

    Raises:
        RiskConfigError: the first problem, at its dotted key
            (``risk.symbols.BTCUSDT.max_position``).
    """
    if not isinstance(table, Mapping):
        raise RiskConfigError(prefix, f"expected a table, got {type(table).__name__}")
    _unknown(table, (*SYMBOL_KEYS, *GLOBAL_KEYS, "symbols"), prefix)
    default = _symbol_limits(table, prefix, SymbolLimits())
    rate = table.get("max_orders_per_second")
    if rate is not None:
        key = f"{prefix}.max_orders_per_second"
        if isinstance(rate, bool) or not isinstance(rate, int):
            raise RiskConfigError(key, f"expected a whole number, got {type(rate).__name__}")
        if rate < 1:
            raise RiskConfigError(key, "must be at least 1 (leave the key out for no throttle)")
    raw_symbols = table.get("symbols") or {}
    if not isinstance(raw_symbols, Mapping):
        raise RiskConfigError(f"{prefix}.symbols", "expected a table of symbols")
    symbols: dict[str, SymbolLimits] = {}
    for symbol, body in raw_symbols.items():
        key = f"{prefix}.symbols.{symbol}"
        if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
            raise RiskConfigError(key, "a symbol holds only letters, digits and _ . / : -")
        if not isinstance(body, Mapping):
            raise RiskConfigError(key, f"expected a table, got {type(body).__name__}")
        _unknown(body, SYMBOL_KEYS, key)
        symbols[symbol] = _symbol_limits(body, key, default)
    throttles = _throttles(table, prefix)
    return RiskLimits(
        default=default,
        symbols=symbols,
        max_live_notional_total=_positive(table, "max_live_notional_total", prefix),
        max_orders_per_second=rate,
        max_daily_loss=_positive(table, "max_daily_loss", prefix),
        max_drawdown=_positive(table, "max_drawdown", prefix),
        max_drawdown_pct=_drawdown_pct(table, prefix),
        loss_breach_reads=_loss_breach_reads(table, prefix),
        **throttles,
    )


def _drawdown_pct(table: Mapping[str, Any], prefix: str) -> Decimal | None:
    pct = _positive(table, "max_drawdown_pct", prefix)
    if pct is not None and pct >= 100:
        raise RiskConfigError(
            f"{prefix}.max_drawdown_pct", f"{pct} is a percent of the peak: below 100"
        )
    return pct


def _loss_breach_reads(table: Mapping[str, Any], prefix: str) -> int:
    reads = table.get("loss_breach_reads")
    if reads is None:
        return DEFAULT_LOSS_BREACH_READS
    key = f"{prefix}.loss_breach_reads"
    if isinstance(reads, bool) or not isinstance(reads, int):
        raise RiskConfigError(key, f"expected a whole number, got {type(reads).__name__}")
    if _bad_reads(reads):
        raise RiskConfigError(
            key, f"{reads} is not 1..{MAX_LOSS_BREACH_READS} (consecutive breaching reads)"
        )
    return reads


def _throttles(table: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The execution throttles' keys, checked, each error at its dotted key."""
    out: dict[str, Any] = {}
    for name in _COUNT_KEYS:
        value = table.get(name)
        if value is None:
            continue
        key = f"{prefix}.{name}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise RiskConfigError(key, f"expected a whole number, got {type(value).__name__}")
        if value < 1:
            raise RiskConfigError(key, "must be at least 1 (leave the key out for no limit)")
        out[name] = value
    out["collar_window_pct"] = _positive(table, "collar_window_pct", prefix)
    for name in ("collar_window_s", "repeated_execution_window_s"):
        value = table.get(name)
        if value is None:
            continue
        try:
            _check_seconds(name, value)
        except RiskConfigError as exc:
            raise RiskConfigError(f"{prefix}.{name}", exc.problem) from None
        out[name] = float(value)
    for a, b in _PAIRED_KEYS:
        if (out.get(a) is None) != (out.get(b) is None):
            have, missing = (a, b) if out.get(b) is None else (b, a)
            raise RiskConfigError(f"{prefix}.{missing}", f"needed with {prefix}.{have}")
    return out
