"""Issue 18 A7 with real processes: a restarted trader keeps the day's loss; two add up.

Each child is ``python -c`` with a :class:`RiskGuard` on the shared runtime directory,
as autoheal's restarted trader (or a second trader) would hold. Both tests failed on
the branch point (59fb9bc): the day's loss lived in the process that made it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from autoheal.store.flags import read_risk_latch
from tests.guard.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

PRELUDE = """
import json, sys, time
from decimal import Decimal as D
from pathlib import Path
from autoheal.guard import RiskBook, RiskGuard, RiskOrder, parse_limits
runtime = Path(sys.argv[1])
guard = RiskGuard(parse_limits({"max_daily_loss": 500}), runtime)
book = RiskBook(marks={"BTCUSDT": D(1000)})
buy = RiskOrder("BTCUSDT", "buy", D("0.001"))
"""


def run_child(runtime: Path, body: str) -> dict:
    code = PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code, str(runtime)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout.strip().splitlines()[-1])


def test_a_trader_restarted_after_losing_450_of_500_cannot_lose_450_more(tmp_path: Path):
    first = run_child(
        tmp_path,
        """
        guard.record_fill("BTCUSDT", "buy", D(1), D(1000))
        guard.record_fill("BTCUSDT", "sell", D(1), D(550))
        print(json.dumps({"pnl": str(guard.realized_pnl_today)}))
    """,
    )
    assert first == {"pnl": "-450"}
    # autoheal restarts the trader: a new process, the same runtime directory.
    second = run_child(
        tmp_path,
        """
        out = {"pnl_at_start": str(guard.realized_pnl_today),
               "first_buy": guard.check(buy, book)[0]}
        guard.record_fill("BTCUSDT", "buy", D(1), D(1000))
        guard.record_fill("BTCUSDT", "sell", D(1), D(940))  # 60 more: 510 of 500
        out["pnl"] = str(guard.realized_pnl_today)
        out["next_buy"] = guard.check(buy, book)
        print(json.dumps(out))
    """,
    )
    assert second == {
        "pnl_at_start": "-450",
        "first_buy": True,
        "pnl": "-510",
        "next_buy": [False, ["risk_daily_loss"]],
    }
    latch = read_risk_latch(tmp_path)  # the daily-loss latch, for the gate and the daemon
    assert latch is not None and latch.reason.startswith("risk_daily_loss")


def test_two_traders_booking_at_once_lose_no_fill(tmp_path: Path):
    n = 40
    body = f"""
        go = runtime / "go"
        (runtime / f"ready-{{sys.argv[2]}}").touch()
        deadline = time.monotonic() + 20
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        for _ in range({n}):
            guard.record_realized(D("-1.5"))
        print(json.dumps({{"pnl": str(guard.realized_pnl_today)}}))
    """
    code = PRELUDE + textwrap.dedent(body)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        wait_for(
            lambda: all((tmp_path / f"ready-{i}").exists() for i in range(2)),
            timeout_s=20,
            what="both traders ready",
        )
        (tmp_path / "go").touch()
        outputs = [c.communicate(timeout=30) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()
    assert [c.returncode for c in children] == [0, 0], [err for _out, err in outputs]
    doc = orjson.loads((tmp_path / "risk_pnl.json").read_bytes())
    assert doc["realized_pnl"] == str(-2 * n * 1.5)  # -120.0: every fill of both counted
    assert doc["loss_latched"] is False
