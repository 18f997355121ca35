"""A scoped halt from the status page, in a real browser against a real daemon (issue 24).

With the operator token: a scope typed into the page and "halt scope" queues
``failsafe_enter_scope``; the daemon writes it to the record and the flags' key;
the page shows a line for it (streamed from the health document) with a clear
button; ``/metrics`` has its series; the button clears it, and the line goes. A
screenshot with the line is kept in ``test-artifacts/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from autoheal.drills.stacks.simple import wait_for
from tests.e2e.test_status_page import ARTIFACTS, TOKEN, browser, start

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

__all__ = ["browser"]  # the module's fixture, shared


def _halts(rt: Any) -> dict[str, Any]:
    return (rt.flags() or {}).get("scoped_halts") or {}


def test_a_scoped_halt_is_set_shown_and_cleared_from_the_page(tmp_path: Path, browser: Any) -> None:
    rt, url = start(tmp_path, token=True)
    with rt:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(url + "/")
        page.fill("#token", TOKEN)
        page.fill("#reason", "bad fills on BTC")
        page.fill("#scope", "symbol=btc/usdt")
        page.click('button[data-type="failsafe_enter_scope"]')
        wait_for(lambda: "symbol=BTCUSDT" in _halts(rt), 10, "the scoped halt in the flags")
        assert _halts(rt)["symbol=BTCUSDT"]["set_by"].startswith("web:127.0.0.1")
        line = page.locator('#scoped li[data-scope="symbol=BTCUSDT"]')
        line.wait_for(timeout=10000)
        assert "bad fills on BTC, set by web:127.0.0.1" in line.inner_text()
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert 'autoheal_scoped_halts{scope="symbol=BTCUSDT"} 1.0' in metrics
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "status-scoped-halt.png"), full_page=True)

        page.fill("#reason", "fixed")
        line.locator('button[data-type="failsafe_clear_scope"]').click()
        wait_for(lambda: not _halts(rt), 10, "the scoped halt cleared")
        line.wait_for(state="detached", timeout=10000)
        bad = httpx.post(
            f"{url}/api/command",
            json={"type": "failsafe_enter_scope", "target": "colour=red", "reason": "x"},
            headers={"x-autoheal-token": TOKEN},
            timeout=5,
        )
        assert bad.status_code == 400 and "scope" in bad.json()["error"]
