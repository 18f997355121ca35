"""The quiet-market false-alarm run, short (issue 23): ``benchmarks/quiet_market.py`` for ~9 s.

The same script as the 10-minute run in docs/benchmarks.md, as a real subprocess: the
demo exchange in quiet mode, ``autoheal run`` with the demo feeder and a ``feed_lag``
probe (max_age 1 s), the alarms counted from the daemon's journal. A quiet market (no
trades, unchanged books, exchange times advancing) must give none.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quiet_market.py"


def test_a_quiet_market_gives_no_feed_lag_alarm() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--minutes", "0.15"],
        capture_output=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    result = json.loads(done.stdout)
    assert result["feed_lag_false_alarms"] == 0, result["alarms"]
    assert result["daemon_alive_at_end"] is True and result["feeder_restarts"] == 0
    assert result["prices_moved"] is False  # the book never changed ...
    assert all(v >= 5.0 for v in result["exchange_ts_advanced_s"].values())  # ... its time did
    assert set(result["gaps"].values()) == {0}
