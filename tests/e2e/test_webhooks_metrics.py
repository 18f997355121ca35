"""Webhooks and ``/metrics`` through a real daemon.

A loopback HTTP server in the test (port 0) is the daemon's generic webhook, with
its secret in an environment variable: ``autoheal failsafe enter`` must reach it as
JSON, with the secret as a bearer token, and the secret must never appear in the
daemon's log, the notifications log, the CLI's output or the journal. A webhook
that is down when the failsafe fires gets the notification once it is back.
``/metrics`` is scraped with httpx and parsed with prometheus-client's text parser;
its values must match ``health_v2.json``.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoheal.drills.stacks.simple import Runtime, read_doc, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

SECRET_ENV = "AUTOHEAL_E2E_HOOK_SECRET"


class Hook:
    """A loopback HTTP server that records every POST (path, headers, JSON body)."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[tuple[str, dict[str, str], Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                hook.received.append((self.path, dict(self.headers.items()), json.loads(body)))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def free_port() -> int:
    """A loopback port nobody listens on right now (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    try:
        yield server
    finally:
        server.close()


def assert_secret_nowhere(rt: Runtime, secret: str, *outputs: str) -> None:
    assert secret not in rt.log_text()
    for path in (rt.runtime_dir / "notifications.log", rt.runtime_dir / "journal.sqlite3"):
        if path.exists():
            assert secret.encode() not in path.read_bytes(), path.name
    for text in outputs:
        assert secret not in text


def failsafe_posts(hook: Hook) -> list[Any]:
    return [body for _, _, body in hook.received if body.get("kind") == "failsafe"]


def test_failsafe_reaches_the_webhook_and_the_secret_stays_secret(
    tmp_path: Path, hook: Hook
) -> None:
    secret = "s3cr3t-" + secrets.token_hex(12)
    url = f"http://127.0.0.1:{hook.port}/hook"
    with Runtime(tmp_path, env={SECRET_ENV: secret}, webhook_url=url, secret_env=SECRET_ENV) as rt:
        rt.start_daemon()

        done = rt.cli("failsafe", "enter", "--reason", "webhook drill")
        assert done.returncode == 0, done.stderr

        (body,) = wait_for(lambda: failsafe_posts(hook), 5, "the failsafe webhook POST")
        path, headers, _ = hook.received[-1]
        assert path == "/hook"
        assert {k.lower(): v for k, v in headers.items()}["authorization"] == f"Bearer {secret}"
        assert "webhook drill" in body["reason"] + body["message"]
        assert isinstance(body["ts"], float)
        assert set(body) >= {"kind", "component", "reason", "message", "ts", "data"}
        assert_secret_nowhere(rt, secret, done.stdout, done.stderr)


def test_webhook_down_then_up_gets_the_notification(tmp_path: Path) -> None:
    secret = "s3cr3t-" + secrets.token_hex(12)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    with Runtime(tmp_path, env={SECRET_ENV: secret}, webhook_url=url, secret_env=SECRET_ENV) as rt:
        rt.start_daemon()
        done = rt.cli("failsafe", "enter", "--reason", "while down")
        assert done.returncode == 0, done.stderr
        wait_for(lambda: "delivery failed" in rt.log_text(), 5, "a failed delivery in the log")

        server = Hook(port)
        try:
            (body,) = wait_for(lambda: failsafe_posts(server), 15, "delivery after recovery")
            assert "while down" in body["reason"] + body["message"]
        finally:
            server.close()
        assert_secret_nowhere(rt, secret)


def scrape(rt: Runtime) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` as {(sample name, sorted labels): value}."""
    endpoint = wait_for(
        lambda: read_doc(rt.runtime_dir / "status_endpoint.json"), 5, "status_endpoint.json"
    )
    response = httpx.get(f"http://{endpoint['host']}:{endpoint['port']}/metrics", timeout=5)
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def assert_metrics_match(rt: Runtime) -> dict[str, Any]:
    """Scrape between two identical health documents, so both describe the same state."""

    def stable() -> tuple[dict[str, Any], dict[Any, float]] | None:
        before = rt.health() or {}
        metrics = scrape(rt)
        after = rt.health() or {}
        same = (
            before
            and all(before.get(k) == after.get(k) for k in ("dor", "failsafe", "degraded", "stage"))
            and before.get("components") == after.get("components")
        )
        return (after, metrics) if same else None

    health, m = wait_for(stable, 10, "a scrape between two equal health documents")
    assert m[("autoheal_dor", ())] == float(health["dor"])
    assert m[("autoheal_failsafe_active", ())] == float(health["failsafe"])
    assert m[("autoheal_degraded", ())] == float(health["degraded"])
    for name, comp in health["components"].items():
        stages = {
            dict(labels)["stage"]: value
            for (metric, labels), value in m.items()
            if metric == "autoheal_component_stage" and dict(labels)["component"] == name
        }
        assert stages[comp["stage"]] == 1.0
        assert sum(stages.values()) == 1.0
        assert m[("autoheal_component_restarts_total", (("component", name),))] == comp["restarts"]
        assert m[("autoheal_component_up", (("component", name),))] == float(comp["ok"])
    return health


def test_metrics_match_health(tmp_path: Path) -> None:
    with Runtime(tmp_path, status_listen=True) as rt:
        rt.start_daemon()
        health = assert_metrics_match(rt)
        assert health["dor"] is True

        assert rt.cli("restart", "feeder").returncode == 0
        wait_for(
            lambda: (
                (h := rt.health() or {}).get("dor") is True
                and h["components"]["feeder"]["restarts"] == 1
                and h["components"]["feeder"]["stage"] == "OBSERVE"
            ),
            10,
            "the restarted feeder verified",
        )
        health = assert_metrics_match(rt)
        assert health["components"]["feeder"]["restarts"] == 1

        assert rt.cli("failsafe", "enter", "--reason", "metrics").returncode == 0
        wait_for(lambda: (rt.health() or {}).get("failsafe") is True, 5, "failsafe in health")
        health = assert_metrics_match(rt)
        assert health["failsafe"] is True and health["dor"] is False
