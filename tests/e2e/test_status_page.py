"""The status page in a real browser: Debian's Chromium driven by Playwright (issue 11, part 4).

Against a real daemon: every component's values on the page equal ``health_v2.json``;
a killed feeder's new PID shows within 2 s of the file; the failsafe overlay comes
and goes with a measured cumulative layout shift of 0; the page says STALE when the
daemon hangs; without JavaScript the current state is there; operator buttons only
with a token, and ``POST /api/command`` refuses a missing token, a wrong one and a
foreign origin. A screenshot is kept in ``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoheal.drills.stacks.simple import Runtime, read_doc, wait_for
from tests.e2e.backoff import BACKOFF_S, backoff_runtime, make_feeder_fail
from tests.sysdeps import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
#: ``AUTOHEAL_UPDATE_DOCS_IMAGES=1`` also saves the BACKOFF screenshot for the docs.
DOCS_IMAGE = REPO / "docs" / "images" / "status-backoff.png"
#: The browser's clock is 90 minutes ahead of the host's: the countdown must not care.
SKEWED_CLOCK = """
(() => {
  const Real = Date, skew = 90 * 60 * 1000;
  class Skewed extends Real {
    constructor(...args) { if (args.length) { super(...args); } else { super(Real.now() + skew); } }
    static now() { return Real.now() + skew; }
  }
  window.Date = Skewed;
})();
"""
TOKEN = "s3cret-token-for-the-test"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Accumulates every layout shift the page makes (the CLS metric's input).
CLS_OBSERVER = """
window.__cls = 0; window.__shifts = [];
new PerformanceObserver(function (list) {
  for (const e of list.getEntries()) {
    if (!e.hadRecentInput) { window.__cls += e.value; window.__shifts.push(e.value); }
  }
}).observe({type: "layout-shift", buffered: true});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = require_binary("chromium", "chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def start(tmp_path: Path, *, token: bool = False, backoff: bool = False) -> tuple[Runtime, str]:
    env = {"AUTOHEAL_WEB_TOKEN": TOKEN} if token else None
    if backoff:
        rt = backoff_runtime(tmp_path, env=env, status_listen=True)
    else:
        rt = Runtime(tmp_path, ("feeder", "trader"), env=env, status_listen=True)
    if token:
        text = rt.config.read_text().replace(
            "[daemon]\n", '[daemon]\nstatus_token_env = "AUTOHEAL_WEB_TOKEN"\n'
        )
        rt.config.write_text(text)
    rt.start_daemon()
    endpoint = wait_for(
        lambda: read_doc(rt.runtime_dir / "status_endpoint.json"), 10, "the status endpoint"
    )
    return rt, f"http://127.0.0.1:{endpoint['port']}"


def row_text(page: Any, name: str) -> dict[str, str]:
    row = page.locator(f'tr[data-component="{name}"]')
    return {
        cls: row.locator(f"td.{cls}").inner_text()
        for cls in ("stage", "ok", "reason", "pid", "restarts")
    }


def matches_file(page: Any, rt: Runtime) -> bool:
    health = rt.health() or {}
    for name, comp in (health.get("components") or {}).items():
        shown = row_text(page, name)
        expected = {
            "stage": comp["stage"],
            "ok": "ok" if comp["ok"] else "FAIL",
            "reason": comp["reason"] or "-",
            "pid": str(comp["pid"] or "-"),
            "restarts": str(comp["restarts"]),
        }
        if shown != expected:
            return False
    return True


def test_page_equals_health_file_follows_a_restart_and_overlays_do_not_shift(
    tmp_path: Path, browser: Any
) -> None:
    rt, url = start(tmp_path)
    with rt:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.add_init_script(CLS_OBSERVER)
        page.goto(url + "/")
        wait_for(lambda: matches_file(page, rt), 5, "the page to equal health_v2.json")

        old = rt.healthy_pid("feeder")
        os.kill(old, signal.SIGKILL)
        wait_for(
            lambda: (rt.health() or {})["components"]["feeder"]["pid"] not in (None, old),
            10,
            "a new feeder PID in health_v2.json",
        )
        seen_at = time.monotonic()
        new_pid = (rt.health() or {})["components"]["feeder"]["pid"]
        wait_for(
            lambda: row_text(page, "feeder")["pid"] == str(new_pid), 2, "the new PID on the page"
        )
        lag = time.monotonic() - seen_at
        wait_for(lambda: matches_file(page, rt), 10, "page and file to agree after the restart")

        page.evaluate("window.__cls = 0; window.__shifts = []")
        assert rt.cli("failsafe", "enter", "--reason", "browser drill").returncode == 0
        overlay = page.locator("#alert-failsafe")
        overlay.wait_for(state="visible", timeout=5000)
        assert "browser drill" in overlay.inner_text()
        assert page.locator("#failsafe").inner_text() == "ON: browser drill"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "status_page_failsafe.png"))
        shutil.copy(ARTIFACTS / "status_page_failsafe.png", tmp_path / "screenshot.png")
        assert rt.cli("failsafe", "clear", "--reason", "done").returncode == 0
        overlay.wait_for(state="detached", timeout=5000)
        page.wait_for_timeout(300)  # a shift would be reported within a frame or two
        cls = page.evaluate("window.__cls")
        (ARTIFACTS / "status_page_cls.txt").write_text(
            f"cumulative layout shift during the failsafe overlay: {cls}\n"
            f"page lag behind health_v2.json for a new PID: {lag * 1000:.0f} ms\n"
        )
        assert cls == 0, page.evaluate("window.__shifts")


def test_page_says_stale_when_the_daemon_hangs(tmp_path: Path, browser: Any) -> None:
    rt, url = start(tmp_path)
    with rt:
        page = browser.new_page()
        page.goto(url + "/")
        page.locator('tr[data-component="feeder"]').wait_for()
        assert not page.locator("#stale").is_visible()
        assert rt.daemon is not None
        os.kill(rt.daemon.pid, signal.SIGSTOP)
        try:
            page.locator("#stale").wait_for(state="visible", timeout=15000)
            assert "do not trust" in page.locator("#stale").inner_text()
        finally:
            os.kill(rt.daemon.pid, signal.SIGCONT)
        page.locator("#stale").wait_for(state="hidden", timeout=10000)


def test_without_javascript_the_page_shows_the_current_state(
    tmp_path: Path, browser: Any
) -> None:
    rt, url = start(tmp_path)
    with rt:
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        wait_for(lambda: (rt.health() or {}).get("dor") is True, 10, "DOR true")
        page.goto(url + "/")
        assert page.locator("#dor").inner_text() == "true"
        pid = (rt.health() or {})["components"]["feeder"]["pid"]
        assert row_text(page, "feeder")["pid"] == str(pid)
        assert page.locator("button.op").count() == 0  # read-only without a token
        context.close()


def test_operator_buttons_need_the_token_and_the_same_origin(
    tmp_path: Path, browser: Any
) -> None:
    rt, url = start(tmp_path, token=True)
    with rt:
        api = f"{url}/api/command"
        body = {"type": "failsafe_enter", "reason": "from the page"}
        assert httpx.post(api, json=body, timeout=5).status_code == 403
        assert httpx.post(
            api, json=body, headers={"x-autoheal-token": "wrong"}, timeout=5
        ).status_code == 403
        assert httpx.post(
            api,
            json=body,
            headers={"x-autoheal-token": TOKEN, "origin": "http://evil.example"},
            timeout=5,
        ).status_code == 403
        assert httpx.post(
            api, content=b"type=failsafe_enter", headers={"x-autoheal-token": TOKEN}, timeout=5
        ).status_code == 415
        assert (rt.flags() or {}).get("failsafe_active") is not True

        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#token", TOKEN)
        page.fill("#reason", "from the page")
        page.click('button[data-type="failsafe_enter"]')
        wait_for(lambda: (rt.flags() or {}).get("failsafe_active") is True, 10, "the failsafe")
        # The daemon may write the flags before the page has shown the POST's answer.
        wait_for(
            lambda: "queued failsafe_enter" in page.locator("#opresult").inner_text(),
            10,
            "the page's answer",
        )
        # The flags are written within the command's step; its result just after.
        wait_for(
            lambda: any(
                (e.actor or "").startswith("web:127.0.0.1")
                for e in rt.events(kind="result_written")
            ),
            5,
            "the command's result_written by web:127.0.0.1",
        )

        reset = httpx.post(
            api,
            json={"type": "breaker_reset", "reason": "exchange is back"},
            headers={"x-autoheal-token": TOKEN},
            timeout=15,
        )
        assert reset.status_code == 202, reset.text
        done = rt.events(kind="breaker_reset.succeeded")
        assert [e.actor for e in done] == ["web:127.0.0.1"], done


def shown_countdown(page: Any) -> float | None:
    """The seconds the page shows until the feeder's next restart (None if not shown)."""
    shown = page.locator('tr[data-outlook="feeder"] td.next').inner_text()
    found = re.match(r"restart in (\d+\.\d) s \(attempt 2 of 3\)$", shown)
    return float(found.group(1)) if found else None


def test_page_counts_down_to_the_next_restart_on_the_documents_clock(
    tmp_path: Path, browser: Any
) -> None:
    """During a BACKOFF the page shows when the next restart comes, which attempt of how
    many, what a failure then does and the budget; the countdown runs, and stays right
    in a browser whose clock is 90 minutes off (it counts from the document's ``ts``)."""
    rt, url = start(tmp_path, backoff=True)
    with rt:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.add_init_script(SKEWED_CLOCK)
        page.goto(url + "/")
        skew = page.evaluate("Date.now()") / 1000 - time.time()
        assert 85 * 60 < skew < 95 * 60, skew  # the page's clock really is off
        outlook = make_feeder_fail(rt)
        first = wait_for(lambda: shown_countdown(page), 10, "the countdown on the page")
        first_at = time.time()
        # Against the host's clock, not the page's: within a beat or two of the truth.
        assert abs(first - (outlook["restart_at"] - first_at)) < 2.0, (first, outlook)
        row = page.locator('tr[data-outlook="feeder"]')
        assert row.locator("td.then").inner_text() == "restart after 1m20s"
        assert row.locator("td.budget").inner_text() == "1 of 3 used, resets 10m00s after healthy"
        assert page.locator('tr[data-outlook="trader"] td.next').inner_text() == (
            "none due (healthy)"
        )
        assert row.locator("td.next").is_visible()
        page.wait_for_timeout(1500)
        second = shown_countdown(page)
        elapsed = time.time() - first_at
        assert second is not None and second < first  # it counts down
        assert abs((first - second) - elapsed) < 1.0, (first, second, elapsed)
        assert second > 0 and first <= BACKOFF_S
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "status-backoff.png"))
        (ARTIFACTS / "status-backoff.txt").write_text(rt.cli("status").stdout)
        if os.environ.get("AUTOHEAL_UPDATE_DOCS_IMAGES") == "1":
            DOCS_IMAGE.parent.mkdir(exist_ok=True)
            shutil.copy(ARTIFACTS / "status-backoff.png", DOCS_IMAGE)
