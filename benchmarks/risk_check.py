"""Risk check cost benchmark (run by hand, not by the tests).

Measures the cost of one pre-trade risk check (``autoheal.guard.risk``) with every
limit of ``[risk]`` set, against a book of 5 symbols (positions and marks) and
10 open orders, on the allowed path (every limit evaluated, nothing logged):

1. ``check_order`` (the pure decision) and ``RiskGuard.check`` (plus the throttle
   window and the day's PnL), in memory and with a runtime directory (the durable
   day: one ``stat`` of ``risk_pnl.json`` per check);
2. the refused path of ``check_order`` (three limits crossed, details formatted);
3. peers in the same run: the same checks written naively with floats and dicts
   (no Decimal, no details, no open-order exposure), and ``TradingGate.allowed``,
   the guard call every order already pays. Target: < 20 us per risk check.

Usage: ``.venv/bin/python benchmarks/risk_check.py [--number 20000] [--repeat 7] [--json]``
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from decimal import Decimal as D
from pathlib import Path

from autoheal.guard import TradingGate
from autoheal.guard.risk import (
    OpenOrder,
    RiskBook,
    RiskGuard,
    RiskOrder,
    check_order,
    parse_limits,
)
from autoheal.store.flags import Flags, write_flags

LIMITS = {
    "max_order_qty": 1, "max_order_notional": 50_000, "max_position": 5,
    "max_live_notional_total": 1_000_000, "price_collar_pct": 5, "max_orders_per_second": 1000,
    "max_daily_loss": 5000, "symbols": {"ETHUSDT": {"max_order_qty": 20, "max_position": 100}},
}
SYMBOLS = {"BTCUSDT": "60000", "ETHUSDT": "3000", "SOLUSDT": "150", "XRPUSDT": "0.6",
           "ADAUSDT": "0.45"}


def _book() -> RiskBook:
    marks = {s: D(p) for s, p in SYMBOLS.items()}
    positions = {s: D("0.5") for s in SYMBOLS}
    opens = tuple(OpenOrder(s, side, D("0.1")) for s in SYMBOLS for side in ("buy", "sell"))
    return RiskBook(positions=positions, open_orders=opens, marks=marks)


def _naive(limits: dict, positions: dict, opens: list, marks: dict,
           symbol: str, side: str, qty: float, price: float) -> bool:
    """The same limits, the obvious way: floats, no details, no worst-case exposure."""
    ref = marks[symbol]
    if abs(price - ref) / ref * 100 > limits["price_collar_pct"]:
        return False
    if qty > limits["max_order_qty"] or qty * price > limits["max_order_notional"]:
        return False
    pos = positions.get(symbol, 0.0) + (qty if side == "buy" else -qty)
    if abs(pos) > limits["max_position"]:
        return False
    total = sum(abs(q) * marks[s] for s, q in positions.items()) + sum(
        q * marks[s] for s, _side, q in opens) + qty * price
    return total <= limits["max_live_notional_total"]


def _per_call(fn: Callable[[], object], number: int, repeat: int) -> list[float]:
    fn()
    return [t / number for t in timeit.Timer(fn).repeat(repeat=repeat, number=number)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=15, help="timings (median reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.getLogger("autoheal.guard").setLevel(logging.CRITICAL)
    limits = parse_limits(LIMITS)
    book = _book()
    order = RiskOrder("BTCUSDT", "buy", D("0.01"), D("60100"))
    refused = RiskOrder("BTCUSDT", "buy", D("5"), D("60100"))
    assert check_order(limits, book, order, 0.0).allowed
    assert len(check_order(limits, book, refused, 0.0).reasons) == 3
    guard = RiskGuard(limits)
    assert guard.check(order, book)[0]
    fpos = {s: 0.5 for s in SYMBOLS}
    fmarks = {s: float(p) for s, p in SYMBOLS.items()}
    fopens = [(s, side, 0.1) for s in SYMBOLS for side in ("buy", "sell")]
    naive_limits = {k: v for k, v in LIMITS.items() if k != "symbols"}
    assert _naive(naive_limits, fpos, fopens, fmarks, "BTCUSDT", "buy", 0.01, 60100.0)

    n, r = args.number, args.repeat
    results: dict[str, list[float]] = {
        "check_order (allowed)": _per_call(lambda: check_order(limits, book, order, 0.0), n, r),
        "RiskGuard.check (allowed)": _per_call(lambda: guard.check(order, book), n, r),
        "check_order (refused, 3 limits)": _per_call(
            lambda: check_order(limits, book, refused, 0.0), n, r),
        "peer: naive float check": _per_call(
            lambda: _naive(naive_limits, fpos, fopens, fmarks, "BTCUSDT", "buy", 0.01, 60100.0),
            n, r),
    }
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Path(tmp) / "shared_data"
        runtime.mkdir()
        write_flags(runtime, Flags())  # as the daemon does at start (else: kill_switch_unknown)
        durable = RiskGuard(limits, runtime)
        durable.record_realized(D(-1))  # the day's file exists, as in a trading day
        assert durable.check(order, book)[0]
        results["RiskGuard.check (durable day)"] = _per_call(
            lambda: durable.check(order, book), n, r)
        with TradingGate(runtime, Path(tmp) / "STOP.TXT", recheck_interval_s=3600) as gate:
            results["peer: TradingGate.allowed"] = _per_call(
                lambda: gate.allowed("buy", symbol="BTCUSDT"), n, r)
    medians = {name: statistics.median(xs) * 1e6 for name, xs in results.items()}
    mins = {name: min(xs) * 1e6 for name, xs in results.items()}
    guard_us = medians["RiskGuard.check (allowed)"]
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "machine": platform.machine(),
                          "median_us": medians, "min_us": mins, "target_us": 20.0}, indent=2))
    else:
        print(f"Python {sys.version.split()[0]} on {platform.machine()}; "
              f"{n} calls x {r} timings, median per call")
        for name, us in medians.items():
            print(f"  {name:34s} median {us:7.2f} us  min {mins[name]:7.2f} us  "
                  f"({us / guard_us:5.2f}x RiskGuard.check)")
        print(f"target < 20 us per risk check: {'met' if guard_us < 20 else 'MISSED'}")


if __name__ == "__main__":
    main()
