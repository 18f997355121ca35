"""The money side: real files in the contracts' shapes, read by RiskFiles, on the page and /status.

The reader is bounded, cached and fail-soft: a garbled or hostile file shows
"unreadable" (never an empty list, never a crash), a FIFO is never opened, and the
same document comes back until a file changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from autoheal.config import Config, load_config
from autoheal.daemon.risk_files import RECONCILIATION, REFRESH_S, SCOPE_LATCHES, RiskFiles
from autoheal.guard.risk_day import RiskDay, day_doc
from autoheal.store import layout
from autoheal.store.atomic import write_json_atomic
from autoheal.web.metrics import Metrics, serve_status
from autoheal.web.riskpanel import ABSENT, render_risk
from autoheal.web.statuspage import StatusPage, render_page

pytestmark = [pytest.mark.timeout(30)]

WALL = 1_800_000_000.0
DAY = "2027-01-15"
EVIL = "</td><script>alert(1)</script>"


class Clock:
    """A fake monotonic clock the test advances."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make_config(tmp_path: Path) -> Config:
    (tmp_path / "rt").mkdir()
    cfg = tmp_path / "autoheal.toml"
    cfg.write_text(
        'environment = "paper"\n[paths]\nruntime_dir = "rt"\n'
        '[services.trader]\nargv = ["/bin/true"]\n'
        "[risk]\nmax_daily_loss = 500\nmax_position = 0.5\nmax_orders_per_second = 10\n"
    )
    return load_config(cfg)


def write_files(rt: Path) -> None:
    """Every file of the panel, in the shapes the guard and issue 24's contracts give."""
    day = RiskDay(
        DAY, realized=Decimal("-120.5"), basis={"BTCUSDT": (Decimal("0.45"), Decimal("60000"))}
    )
    doc = day_doc(day, WALL - 10)
    doc.update(peak_equity="10300", equity="10100", drawdown="200", breach_reads=0)
    write_json_atomic(rt / layout.RISK_PNL, doc)
    write_json_atomic(
        rt / layout.FLAGS,
        {
            "failsafe_active": False,
            "mode": "NORMAL",
            "scoped_halts": {
                "symbol=BTCUSDT": {"reason": EVIL, "since": WALL - 60, "set_by": "alice"}
            },
        },
    )
    write_json_atomic(
        rt / SCOPE_LATCHES,
        {
            "latches": {
                "strategy=grid,symbol=ETHUSDT,side=buy": {
                    "reason": "risk_repeated_execution",
                    "since": WALL - 5,
                    "executions": 5,
                    "window_s": 10,
                }
            }
        },
    )
    write_json_atomic(
        rt / layout.BREAKERS,
        {
            "schema": 1,
            "clock": "wall",
            "keys": {
                "BTCUSDT": {
                    "state": "closed",
                    "consecutive_failures": 0,
                    "failure_times": [],
                    "opened_at": None,
                    "open_until": None,
                    "half_open_successes": 0,
                    "last_reason": "",
                    "trips": 1,
                }
            },
        },
    )
    write_json_atomic(
        rt / RECONCILIATION,
        {
            "ts": WALL - 2,
            "venue": "demo",
            "ok": True,
            "unknown_at_venue": [],
            "missing_at_venue": [],
        },
    )
    write_json_atomic(
        rt / f"trader{layout.HEARTBEAT_SUFFIX}",
        {
            "component": "trader",
            "pid": 1,
            "ts": WALL,
            "seq": 1,
            "risk": {"message_rates": {"grid": {"submit": 4, "modify": 0, "cancel": 1}}},
            "deadman": {"demo": {"phase": "armed", "expires_at": WALL + 42, "countdown_s": 60}},
        },
    )


def reader(cfg: Config, clock: Clock) -> RiskFiles:
    return RiskFiles(lambda: cfg, clock=clock, wall=lambda: WALL)


def test_every_part_from_real_files(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    write_files(cfg.paths.runtime_dir)
    view = reader(cfg, Clock()).view()
    assert view is not None
    loss = view["daily_loss"]
    assert (loss["used"], loss["limit"], loss["used_pct"], loss["state"]) == (
        "120.5",
        "500",
        24.1,
        "ok",
    )
    assert view["drawdown"]["used"] == "200" and view["drawdown"]["state"] == "no_limit"
    assert view["positions"]["rows"][0]["state"] == "near"  # 0.45 of 0.5
    rate = {r["kind"]: r for r in view["message_rates"]["rows"]}
    assert rate["submit"]["used"] == "4" and rate["submit"]["limit"] == "10"
    assert view["scoped_halts"]["rows"][0]["scope"] == "symbol=BTCUSDT"
    assert view["latches"]["rows"][0]["executions"] == 5
    assert view["breakers"]["rows"][0]["state"] == "closed"
    assert view["deadman"]["rows"][0]["left_s"] == 42.0
    assert view["reconciliation"]["state"] == "ok"

    html = render_risk(view)
    assert "120.5 of 500 (24.1%)" in html and "symbol=BTCUSDT" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    page = render_page({"dor": True}, [], stale_after_s=5.0, operator=False, risk=view).decode()
    assert '<div id="risk">' in page and "repeated-execution latches" in page


def test_an_empty_runtime_shows_dashes_not_all_clear(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    view = reader(cfg, Clock()).view()
    assert view is not None
    assert view["daily_loss"]["state"] == "missing"
    assert view["scoped_halts"]["state"] == "missing"
    html = render_risk(view)
    assert ABSENT in html and "unreadable" not in html


def test_garbled_hostile_and_fifo_files_are_unreadable_never_a_crash(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    rt = cfg.paths.runtime_dir
    write_files(rt)
    (rt / layout.RISK_PNL).write_bytes(b'{"schema": 1, "day": "2027-01-15", "realized_pnl"')
    (rt / layout.FLAGS).write_bytes(b"\x00\xff" * 10)
    (rt / SCOPE_LATCHES).write_bytes(b"[" * 100_000)  # deep nesting
    (rt / layout.BREAKERS).write_bytes(b" " * (1024 * 1024))  # larger than the bound
    os.unlink(rt / RECONCILIATION)
    os.mkfifo(rt / RECONCILIATION)  # opening a FIFO for reading would block
    view = reader(cfg, Clock()).view()
    assert view is not None
    for part in ("daily_loss", "scoped_halts", "latches", "breakers", "reconciliation"):
        assert view[part]["state"] == "unreadable", part
    html = render_risk(view)
    assert html.count("unreadable") >= 5


def test_the_same_document_until_a_file_changes(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    rt = cfg.paths.runtime_dir
    write_files(rt)
    (rt / f"trader{layout.HEARTBEAT_SUFFIX}").unlink()  # no countdown: nothing moves
    (rt / RECONCILIATION).unlink()
    clock = Clock()
    files = reader(cfg, clock)
    first = files.view()
    clock.t += REFRESH_S / 2
    assert files.view() is first  # not looked at again yet
    clock.t += REFRESH_S
    assert files.view() is first  # looked: nothing changed
    flags = json.loads((rt / layout.FLAGS).read_text())
    flags["scoped_halts"]["symbol=ETHUSDT"] = {"reason": "r", "since": WALL, "set_by": "bob"}
    write_json_atomic(rt / layout.FLAGS, flags)
    assert files.view() is first  # within the refresh
    clock.t += REFRESH_S
    second = files.view()
    assert second is not first and second is not None
    assert [r["scope"] for r in second["scoped_halts"]["rows"]] == [
        "symbol=BTCUSDT",
        "symbol=ETHUSDT",
    ]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serving(page: StatusPage, status: Any) -> AsyncIterator[int]:
    metrics = Metrics(lambda: {"dor": True})

    async def run(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        await serve_status("127.0.0.1", 0, metrics, status, page=page, task_status=task_status)

    async with anyio.create_task_group() as tg:
        port = await tg.start(run)
        yield port
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_the_page_and_status_serve_the_panel_over_loopback(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    write_files(cfg.paths.runtime_dir)
    files = reader(cfg, Clock())
    page = StatusPage(lambda: {"dor": True}, lambda: [], stale_after_s=5.0, risk=files.view)
    async with serving(page, lambda: {"dor": True, "risk": files.view()}) as port:
        with anyio.fail_after(10):
            async with httpx.AsyncClient(timeout=5) as client:
                html = (await client.get(f"http://127.0.0.1:{port}/")).text
                status = (await client.get(f"http://127.0.0.1:{port}/status")).json()
    assert "120.5 of 500 (24.1%)" in html and "symbol=BTCUSDT" in html
    assert status["risk"]["scoped_halts"]["rows"][0]["set_by"] == "alice"


@pytest.mark.anyio
async def test_a_failing_risk_reader_costs_the_panel_not_the_page() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    page = StatusPage(lambda: {"dor": True}, lambda: [], stale_after_s=5.0, risk=broken)
    async with serving(page, lambda: {"dor": True}) as port:
        with anyio.fail_after(10):
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 200 and "risk panel unavailable" in response.text


def test_status_json_has_the_risk_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from autoheal.cli import main

    cfg = make_config(tmp_path)
    write_files(cfg.paths.runtime_dir)
    main(["status", "--config", str(cfg.path), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["risk"]["daily_loss"]["used"] == "120.5"
    assert doc["risk"]["scoped_halts"]["rows"][0]["scope"] == "symbol=BTCUSDT"
    main(["status", "--config", str(cfg.path)])
    assert "risk" not in capsys.readouterr().out  # the text view stays as it was
