"""A dry-run freqtrade bot's start on the demo exchange (run by hand, not by the tests).

One demo exchange; ``--runs`` times, a fresh bot (its own folder, database and API port)
through :class:`autoheal.drills.stacks.freqtrade.FreqtradeHarness`, the code the tests
and drills use. Per run: spawn → ``/api/v1/ping`` answers; spawn → the first bot loop
(``/api/v1/health``'s ``last_process_ts`` set); spawn → the first trade; SIGTERM → exit.
Prints the median, min and max of each (``--json``: every run too). Needs freqtrade.

Usage: ``.venv/bin/python benchmarks/freqtrade_start.py [--runs 5] [--json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.drills.stacks.freqtrade import FreqtradeHarness, freqtrade_missing


async def one_run(directory: Path, url: str) -> dict[str, float]:
    bot = FreqtradeHarness(directory, url)
    spawned = time.monotonic()
    await bot.start()
    ping = time.monotonic() - spawned
    try:
        while await bot.api.last_loop_ts() is None:
            await anyio.sleep(0.05)
        first_loop = time.monotonic() - spawned
        await bot.wait_trades(1, 60.0)
        first_trade = time.monotonic() - spawned
    finally:
        stopping = time.monotonic()
        await bot.stop()
        stop = time.monotonic() - stopping
    return {"ping": ping, "first_loop": first_loop, "first_trade": first_trade, "stop": stop}


async def main(runs: int) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="ft-bench-") as tmp:
        venue = await ExchangeHarness(Path(tmp) / "ex").start()
        try:
            return [await one_run(Path(tmp) / f"bot{i}", venue.url) for i in range(runs)]
        finally:
            await venue.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if (missing := freqtrade_missing()) is not None:
        raise SystemExit(missing)
    results = anyio.run(main, args.runs)
    summary = {
        key: {
            "median_s": round(statistics.median(r[key] for r in results), 2),
            "min_s": round(min(r[key] for r in results), 2),
            "max_s": round(max(r[key] for r in results), 2),
        }
        for key in results[0]
    }
    if args.json:
        print(json.dumps({"runs": results, "summary": summary}, indent=2))
    else:
        for key, row in summary.items():
            print(
                f"{key:12} median {row['median_s']:6.2f} s  min {row['min_s']:6.2f}  "
                f"max {row['max_s']:6.2f}  (n={len(results)})"
            )
