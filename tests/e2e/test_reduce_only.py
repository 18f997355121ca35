"""REDUCE_ONLY with a real daemon, the real CLI and a real guard: unwinding inside a
failsafe, then halting again.

The smoke test of REDUCE_ONLY. The rest moved down a tier (issue 19): the same journey
through the queue, and an operator's hand-written REDUCE_ONLY that a daemon restart
keeps, against the in-process daemon on virtual time (``tests/daemon/test_reduce_only.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.drills.stacks.simple import Runtime, wait_for
from autoheal.guard import TradingGate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def _mode(rt: Runtime) -> str | None:
    flags = rt.flags()
    return None if flags is None else flags.get("mode")


def test_reduce_only_unwinds_inside_a_failsafe_then_halts_again(tmp_path: Path) -> None:
    with Runtime(tmp_path) as rt:
        rt.start_daemon()
        assert rt.cli("failsafe", "enter", "--reason", "exchange trouble").returncode == 0
        assert rt.stop_file.exists()
        gate = TradingGate(rt.runtime_dir, rt.stop_file)
        assert gate.allowed("sell", reduces_position=True) == (False, "stop_file_present")

        done = rt.cli("failsafe", "reduce-only", "--reason", "unwind BTC")
        assert done.returncode == 0, done.stderr
        flags = rt.flags()
        assert (flags["failsafe_active"], flags["mode"]) == (True, "REDUCE_ONLY")
        assert not rt.stop_file.exists()
        wait_for(lambda: gate.allowed("sell", reduces_position=True)[0], 2, "sells allowed")
        assert gate.allowed("buy") == (False, "reduce_only")
        assert gate.allowed("sell") == (False, "reduce_only")  # not reducing a position
        # the missing STOP.TXT is the daemon's own doing: the failsafe holds
        rt.wait_beats(2)
        assert rt.health()["failsafe"] is True
        refused = rt.cli("restart", "feeder")
        assert refused.returncode == 3

        assert rt.cli("failsafe", "enter", "--reason", "done unwinding").returncode == 0
        assert rt.stop_file.exists()
        assert _mode(rt) == "SIGNAL_READ_ONLY"
        assert rt.cli("failsafe", "clear", "--reason", "all good").returncode == 0
        assert _mode(rt) == "NORMAL"
        assert not rt.stop_file.exists()
