"""Alerts pushed to a real Alertmanager and read back from its own API (issue 11, part 5).

Each test starts Debian's ``prometheus-alertmanager`` on a free loopback port in a
temporary directory (no clustering) and stops it. The daemon end-to-end test enters
and clears the failsafe with the CLI and reads ``GET /api/v2/alerts``.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from autoheal.daemon.alertmanager import (
    MAX_FILE_ALERTS,
    AlertFiles,
    AlertmanagerPusher,
    active_alerts,
    alerts_url,
)
from autoheal.daemon.notify import WebhookSpec
from autoheal.drills.stacks.simple import Runtime, wait_for
from autoheal.store.alerts import clear_alert, write_alert
from tests.sysdeps import require_binary

AM_CONFIG = """\
route:
  receiver: "null"
  group_wait: 0s
receivers:
  - name: "null"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    folder = tmp_path / "am"
    folder.mkdir()
    (folder / "alertmanager.yml").write_text(AM_CONFIG)
    url = ""
    for _ in range(5):  # a port taken between free_port() and the bind: try another
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with (folder / "am.log").open("wb") as am_log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={folder / 'alertmanager.yml'}",
                    f"--storage.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                ],
                stdout=subprocess.DEVNULL,
                stderr=am_log,
            )

        def ready(proc: subprocess.Popen[bytes] = proc, url: str = url) -> bool:
            if proc.poll() is not None:
                return True
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 20, "alertmanager to be ready")
        if proc.poll() is None:
            break
    else:
        pytest.fail(f"alertmanager did not start: {(folder / 'am.log').read_text()[-2000:]}")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def am_alerts(url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{url}/api/v2/alerts", timeout=5).json())


def named(url: str, alertname: str) -> list[dict[str, Any]]:
    return [a for a in am_alerts(url) if a["labels"].get("alertname") == alertname]


HEALTH_FAILSAFE = {
    "failsafe": True,
    "failsafe_reason": "feeder: max_restarts_exceeded",
    "dependencies": {"exchange_rest": {"ok": False, "reason": "CONN_TIMEOUT"}},
    "kill_switch": {
        "write_failures": {
            "stop_file": {"message": "STOP.TXT could not be written: EROFS Read-only file system"}
        }
    },
}


def test_active_alerts_from_a_health_document() -> None:
    alerts = active_alerts(HEALTH_FAILSAFE)
    assert set(alerts) == {
        ("AutohealFailsafe", "runtime"),
        ("AutohealDegraded", "exchange_rest"),
        ("AutohealKillSwitchWriteFailed", "stop_file"),
    }
    assert alerts[("AutohealFailsafe", "runtime")].severity == "critical"
    assert active_alerts({"failsafe": False, "dependencies": {"x": {"ok": True}}}) == {}
    assert active_alerts(None) == {}


def test_alerts_url_appends_the_api_path_once() -> None:
    assert alerts_url("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert alerts_url("http://am:9093/") == "http://am:9093/api/v2/alerts"
    assert alerts_url("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts"


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_pusher_round_trip_resend_and_resolve(alertmanager: str) -> None:
    """Active alerts arrive with stable startsAt, are re-sent, and end with endsAt."""
    doc: dict[str, Any] = dict(HEALTH_FAILSAFE)
    spec = WebhookSpec("am", alertmanager, "alertmanager", timeout=5.0)

    async def main() -> None:
        async with httpx.AsyncClient() as client:
            pusher = AlertmanagerPusher(
                [spec], lambda: doc, instance="bot1", client=client, resend_s=0.3
            )
            await pusher.push_once(client)
            first = await anyio.to_thread.run_sync(named, alertmanager, "AutohealFailsafe")
            assert len(first) == 1
            assert first[0]["labels"] == {
                "alertname": "AutohealFailsafe",
                "component": "runtime",
                "severity": "critical",
                "instance": "bot1",
            }
            assert first[0]["status"]["state"] == "active"
            assert {a["labels"]["alertname"] for a in await anyio.to_thread.run_sync(
                am_alerts, alertmanager
            )} >= {"AutohealDegraded", "AutohealKillSwitchWriteFailed"}
            await anyio.sleep(0.4)
            await pusher.push_once(client)  # due for a re-send
            again = await anyio.to_thread.run_sync(named, alertmanager, "AutohealFailsafe")
            assert again[0]["startsAt"] == first[0]["startsAt"]
            assert again[0]["updatedAt"] > first[0]["updatedAt"]
            doc.clear()
            doc.update({"failsafe": False})
            await pusher.push_once(client)
            assert await anyio.to_thread.run_sync(named, alertmanager, "AutohealFailsafe") == []

    anyio.run(main)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_daemon_failsafe_reaches_alertmanager_and_clears(
    tmp_path: Path, alertmanager: str
) -> None:
    rt = Runtime(tmp_path, webhook_url=alertmanager)
    rt.config.write_text(
        rt.config.read_text().replace('format = "generic"', 'format = "alertmanager"')
    )
    with rt:
        rt.start_daemon()
        assert rt.cli("failsafe", "enter", "--reason", "drill").returncode == 0
        alert = wait_for(
            lambda: named(alertmanager, "AutohealFailsafe"), 10, "the failsafe alert"
        )[0]
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["instance"] == socket.gethostname()
        assert alert["annotations"]["description"] == "drill"
        assert rt.cli("failsafe", "clear", "--reason", "done").returncode == 0
        wait_for(
            lambda: named(alertmanager, "AutohealFailsafe") == [], 10, "the alert to resolve"
        )
        # the outbox webhooks are untouched: nothing was queued for an alertmanager target
        assert "webhook am delivery failed" not in rt.log_text()


def test_alert_files_become_alerts_reread_only_when_the_folder_changes(tmp_path: Path) -> None:
    """The guard's alert files reach Alertmanager: one alert per file, bounded, unreadable too."""
    files = AlertFiles(tmp_path)
    assert files() == {}  # no alerts folder yet
    write_alert(tmp_path, "order_reconciliation", ts=1.0, reasons=["order_unknown_at_venue"])
    (tmp_path / "alerts" / "weird.json").write_bytes(b"\x00\xffnot json")
    seen = files()
    assert set(seen) == {("AutohealAlert", "order_reconciliation"), ("AutohealAlert", "weird")}
    recon = seen[("AutohealAlert", "order_reconciliation")]
    assert recon.severity == "critical" and "order_unknown_at_venue" in recon.description
    assert seen[("AutohealAlert", "weird")].description == "invalid"
    clear_alert(tmp_path, "order_reconciliation")
    assert set(files()) == {("AutohealAlert", "weird")}
    for i in range(MAX_FILE_ALERTS + 10):
        write_alert(tmp_path, f"a{i:03d}", ts=1.0, detail="x")
    assert len(files()) == MAX_FILE_ALERTS


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_guard_alert_file_reaches_alertmanager_and_resolves(
    tmp_path: Path, alertmanager: str
) -> None:
    spec = WebhookSpec("am", alertmanager, "alertmanager", timeout=5.0)

    async def main() -> None:
        async with httpx.AsyncClient() as client:
            pusher = AlertmanagerPusher(
                [spec], lambda: {"failsafe": False}, instance="bot1", client=client,
                files=AlertFiles(tmp_path),
            )
            write_alert(tmp_path, "order_reconciliation", ts=1.0,
                        reasons=["order_unknown_at_venue"])
            await pusher.push_once(client)
            (got,) = await anyio.to_thread.run_sync(named, alertmanager, "AutohealAlert")
            assert got["labels"]["component"] == "order_reconciliation"
            assert got["labels"]["severity"] == "critical"
            assert "order_unknown_at_venue" in got["annotations"]["description"]
            clear_alert(tmp_path, "order_reconciliation")
            await pusher.push_once(client)
            assert await anyio.to_thread.run_sync(named, alertmanager, "AutohealAlert") == []

    anyio.run(main)
