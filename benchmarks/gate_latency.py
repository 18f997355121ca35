"""Gate latency benchmark (run by hand, not by the tests).

Measures, in a fresh temporary runtime directory:

1. creation → noticed: the median time from ``STOP.TXT`` being created (atomically,
   as the daemon does) to ``TradingGate.allowed("buy")`` returning
   ``(False, "stop_file_present")``, for a caller spinning on ``allowed()`` — once with
   the default fallback poll only, once with the watcher thread (``gate.start()``) and a
   long fallback poll, so that the watcher alone is measured. Target: < 100 ms.
2. the cost of one ``allowed()`` call on the hot path (nothing changed). Target: < 5 µs.

Usage: ``.venv/bin/python benchmarks/gate_latency.py [--rounds 30]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import timeit
from pathlib import Path

from autoheal.guard import TradingGate
from autoheal.store.flags import Flags, remove_stop_file, write_flags, write_stop_file


def _notice_latency(gate: TradingGate, stop_file: Path, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        remove_stop_file(stop_file)
        deadline = time.monotonic() + 5
        while gate.allowed("buy")[0] is False:  # wait until the gate saw the removal
            if time.monotonic() > deadline:
                raise SystemExit("gate never saw STOP.TXT removed")
        time.sleep(0.03)  # let the watcher settle between rounds (benchmark, not a test)
        created = time.perf_counter()
        write_stop_file(stop_file, "benchmark")
        while gate.allowed("buy") != (False, "stop_file_present"):
            if time.perf_counter() - created > 5:
                raise SystemExit("gate never saw STOP.TXT")
        samples.append(time.perf_counter() - created)
    remove_stop_file(stop_file)
    return samples


def _hot_path_cost(gate: TradingGate) -> list[float]:
    gate.allowed("buy", symbol="BTCUSDT")
    number = 200_000
    timer = timeit.Timer(lambda: gate.allowed("buy", symbol="BTCUSDT"))
    return [t / number for t in timer.repeat(repeat=7, number=number)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    logging.getLogger("autoheal.guard").setLevel(logging.ERROR)  # one line per flip otherwise
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Path(tmp) / "shared_data"
        runtime.mkdir()
        write_flags(runtime, Flags())  # as the daemon does at start (else: kill_switch_unknown)
        stop_file = Path(tmp) / "STOP.TXT"

        polling = TradingGate(runtime, stop_file)
        poll = _notice_latency(polling, stop_file, args.rounds)
        with TradingGate(runtime, stop_file, recheck_interval_s=3600) as watched:
            watch = _notice_latency(watched, stop_file, args.rounds)
            cost = _hot_path_cost(watched)
        cost_polling = _hot_path_cost(polling)

    def ms(xs: list[float]) -> str:
        return f"median {statistics.median(xs) * 1e3:7.2f} ms  max {max(xs) * 1e3:7.2f} ms"

    print(f"creation -> noticed, fallback poll (25 ms): {ms(poll)}  (n={len(poll)})")
    print(f"creation -> noticed, watcher thread only:   {ms(watch)}  (n={len(watch)})")
    us, us_poll = statistics.median(cost) * 1e6, statistics.median(cost_polling) * 1e6
    print(f"allowed() hot path, watcher running:        median {us:.2f} us")
    print(f"allowed() hot path, poll only:              median {us_poll:.2f} us")
    noticed = max(statistics.median(poll), statistics.median(watch))
    ok = noticed < 0.1 and max(us, us_poll) < 5
    print("targets (<100 ms, <5 us):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
