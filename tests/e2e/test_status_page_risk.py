"""The status page's money side in a real browser, against a real daemon (issue 24).

A real daemon serves the page; the guard's files are written in the shapes of their
contracts (the day's P&L by the guard's own ``day_doc``, a scoped halt in
``global_flags.json``, a repeated-execution latch, breakers, a reconciliation), and a
real trader process writes a heartbeat with its message rates and its dead man's
switch. The page shows the headroom and the scoped halt; a halt added later shows
within a few seconds without a reload and moves nothing else (layout shift 0); a
garbled latch file shows "unreadable". ``AUTOHEAL_UPDATE_DOCS_IMAGES=1`` saves the
screenshot as docs/images/status-risk.png.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from autoheal.drills.stacks.simple import Runtime, read_doc, toml_str, wait_for
from autoheal.guard.risk_day import RiskDay, day_doc
from autoheal.store import layout
from autoheal.store.atomic import write_json_atomic
from tests.e2e.test_status_page import ARTIFACTS, CLS_OBSERVER, REPO, browser

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
__all__ = ["browser"]  # the fixture, shared with the page's other browser tests

DOCS_IMAGE = REPO / "docs" / "images" / "status-risk.png"

#: A trader that writes its heartbeat with message rates and a deadman countdown
#: re-armed every 15 s (60 s countdown), as the demo trader's DeadmanSwitch reports it.
#: No braces: the config expands ``{name}`` placeholders inside argv.
TRADER = r"""
import json, os, sys, time
rt, name = sys.argv[1], sys.argv[2]
armed, seq = time.time(), 0
while True:
    seq += 1
    now = time.time()
    if now - armed >= 15:
        armed = now
    rates = dict(grid=dict(submit=7, modify=1, cancel=3))
    deadman = dict(binance=dict(phase="armed", expires_at=armed + 60, countdown_s=60,
                                refresh_s=15))
    doc = dict(component=name, pid=os.getpid(), ts=now, seq=seq,
               risk=dict(message_rates=rates), deadman=deadman)
    tmp = os.path.join(rt, name + ".heartbeat.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, os.path.join(rt, name + ".heartbeat.json"))
    time.sleep(0.2)
"""

def start(tmp_path: Path) -> tuple[Runtime, str]:
    rt = Runtime(tmp_path, ("feeder",), status_listen=True)
    argv = ", ".join(toml_str(a) for a in ("{python}", "-c", TRADER, "{runtime_dir}", "trader"))
    rt.config.write_text(
        rt.config.read_text()
        + f"""
[services.trader]
argv = [{argv}]
stop_timeout = "2s"

[[services.trader.probes]]
kind = "heartbeat"
max_age = "2s"
interval = "200ms"

[risk]
max_daily_loss = 500
max_drawdown = 600
max_position = 0.5
max_orders_per_second = 10
max_submits_per_s = 10
max_modifies_per_s = 5
max_cancels_per_s = 20

[risk.symbols.ETHUSDT]
max_position = 4
"""
    )
    rt.services = ("feeder", "trader")
    rt.start_daemon()
    endpoint = wait_for(
        lambda: read_doc(rt.runtime_dir / "status_endpoint.json"), 10, "the status endpoint"
    )
    return rt, f"http://127.0.0.1:{endpoint['port']}"


def write_money_files(rt: Path) -> None:
    now = time.time()
    today = datetime.now(UTC).date().isoformat()
    day = RiskDay(
        today,
        realized=Decimal("-312.40"),
        basis={
            "BTCUSDT": (Decimal("0.45"), Decimal("61250")),
            "ETHUSDT": (Decimal("1.5"), Decimal("3120")),
        },
    )
    doc = day_doc(day, now)
    doc.update(peak_equity="10480.00", equity="10240.00", drawdown="240.00", breach_reads=1)
    write_json_atomic(rt / layout.RISK_PNL, doc)
    flags = read_doc(rt / layout.FLAGS) or {}
    flags["scoped_halts"] = {
        "symbol=BTCUSDT": {"reason": "operator: fat-finger fills on BTC", "since": now - 95,
                           "set_by": "alice"},
    }
    write_json_atomic(rt / layout.FLAGS, flags)
    write_json_atomic(rt / "risk_scope_latches.json", {"latches": {
        "strategy=grid,symbol=ETHUSDT,side=buy": {
            "reason": "risk_repeated_execution", "since": now - 12, "executions": 5,
            "window_s": 10}}})
    closed = {"state": "closed", "consecutive_failures": 0, "failure_times": [],
              "opened_at": None, "open_until": None, "half_open_successes": 0,
              "last_reason": "", "trips": 0}
    opened = {**closed, "state": "open", "opened_at": now - 5, "open_until": now + 55,
              "last_reason": "exchange_502", "trips": 1, "consecutive_failures": 3}
    write_json_atomic(rt / layout.BREAKERS, {"schema": 1, "clock": "wall",
                                             "keys": {"BTCUSDT": closed, "ETHUSDT": opened}})
    write_json_atomic(rt / "reconciliation.json", {
        "ts": now - 2, "venue": "binance", "ok": True, "unknown_at_venue": [],
        "missing_at_venue": []})


def test_money_side_shows_headroom_and_a_scoped_halt_live(tmp_path: Path, browser: Any) -> None:
    rt, url = start(tmp_path)
    with rt:
        write_money_files(rt.runtime_dir)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.add_init_script(CLS_OBSERVER)
        page.goto(url + "/")
        panel = page.locator("#risk")
        wait_for(lambda: "312.40 of 500 (62.5%)" in panel.inner_text(), 5, "the day's loss")
        text = panel.inner_text()
        assert "symbol=BTCUSDT" in text and "fat-finger" in text and "alice" in text
        assert "240.00 of 600 (40.0%)" in text  # the drawdown from the peak
        assert "0.45 of 0.5 (90.0%)" in text  # BTCUSDT near its max_position
        assert "1.5 of 4 (37.5%)" in text  # ETHUSDT against its own limit
        assert "7 of 10 (70.0%)" in text  # the trader's submits against the throttle
        assert "strategy=grid,symbol=ETHUSDT,side=buy" in text
        assert "binance" in text and "armed" in text
        assert "in step" in text
        wait_for(lambda: "ETHUSDT" in page.locator("#breakers").inner_text(), 5, "breakers")
        assert "open" in page.locator("#breakers").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "status-risk.png"))
        if os.environ.get("AUTOHEAL_UPDATE_DOCS_IMAGES") == "1":
            shutil.copy(ARTIFACTS / "status-risk.png", DOCS_IMAGE)

        # Live: a second halt shows without a reload, and nothing outside the panel moves.
        page.evaluate("window.__cls = 0")
        flags = read_doc(rt.runtime_dir / layout.FLAGS)
        flags["scoped_halts"]["strategy=grid"] = {"reason": "risk desk", "since": time.time(),
                                                  "set_by": "bob"}
        write_json_atomic(rt.runtime_dir / layout.FLAGS, flags)
        wait_for(lambda: "strategy=grid" in page.locator("#scoped-halts").inner_text(), 5,
                 "the new halt on the page")
        # A garbled latch file is "unreadable", never "none".
        (rt.runtime_dir / "risk_scope_latches.json").write_bytes(b'{"latches": {"strat')
        wait_for(lambda: "unreadable" in page.locator("#latches").inner_text(), 5,
                 "the garbled latches shown as unreadable")
        page.wait_for_timeout(300)
        assert page.evaluate("window.__cls") == 0
        # The daemon did not mind: still ready, still serving /status with the panel.
        status = page.request.get(url + "/status").json()
        assert status["risk"]["latches"]["state"] == "unreadable"
        assert status["dor"] is True
