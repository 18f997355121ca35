"""Webhooks against a real loopback HTTP server: formats, outage and recovery, secrets."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from autoheal.daemon.notify import (
    Notification,
    NotificationLog,
    Notifier,
    RetryPolicy,
    WebhookError,
    WebhookSender,
    WebhookSpec,
    render_request,
    summary_text,
)
from autoheal.store.journal import JOURNAL_FILENAME, Journal

BEARER = "bearer-s3cret-value-9f8e"
BOT_TOKEN = "123456:tg-s3cret-token-AAbb"
ENV = {"HOOK_TOKEN": BEARER, "TG_TOKEN": BOT_TOKEN, "TG_TOKEN_CHAT_ID": "-1001"}
FAST = RetryPolicy(initial_s=0.02, factor=2.0, cap_s=0.1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def bodies(self, path_part: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [r["body"] for r in self.requests if path_part in r["path"]]


def _serve(recorder: _Recorder, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            with recorder.lock:
                recorder.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": orjson.loads(body)})
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                     daemon=True).start()
    return server


def _stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def recorder() -> _Recorder:
    return _Recorder()


@pytest.fixture
def server(recorder: _Recorder) -> Iterator[ThreadingHTTPServer]:
    srv = _serve(recorder)
    yield srv
    _stop(srv)


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    with Journal.open(tmp_path) as j:
        yield j


def _specs(port: int) -> list[WebhookSpec]:
    base = f"http://127.0.0.1:{port}"
    return [
        WebhookSpec("ops", f"{base}/generic", "generic", secret_env="HOOK_TOKEN", timeout=2.0),
        WebhookSpec("chat", f"{base}/slack", "slack", timeout=2.0),
        WebhookSpec("tg", base + "/bot{secret}/sendMessage", "telegram", secret_env="TG_TOKEN",
                    timeout=2.0),
    ]


def _note(i: int = 0) -> Notification:
    return Notification("failsafe", "feeder", "max_restarts_exceeded",
                        f"three restarts failed #{i}", 1700000000.0 + i, {"attempts": 3})


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


def _assert_no_secret(text: str | bytes) -> None:
    raw = text.encode() if isinstance(text, str) else text
    for secret in (BEARER, BOT_TOKEN):
        assert secret.encode() not in raw


def test_render_request_formats() -> None:
    n = _note()
    generic, slack, tg = (render_request(s, n, ENV) for s in _specs(1))
    assert generic.body == n.to_doc() and generic.headers["authorization"] == f"Bearer {BEARER}"
    assert slack.body == {"text": summary_text(n)} and "authorization" not in slack.headers
    assert tg.url == f"http://127.0.0.1:1/bot{BOT_TOKEN}/sendMessage"
    assert tg.body == {"chat_id": "-1001", "text": summary_text(n)}
    assert "authorization" not in tg.headers
    assert summary_text(n) == (
        "[autoheal] FAILSAFE feeder: max_restarts_exceeded - three restarts failed #0")
    with pytest.raises(WebhookError, match="secret_env_missing:HOOK_TOKEN"):
        render_request(_specs(1)[0], n, {})
    with pytest.raises(WebhookError, match="chat_id_missing"):
        render_request(_specs(1)[2], n, {"TG_TOKEN": BOT_TOKEN})


@pytest.mark.anyio
async def test_webhooks_delivered_in_each_format(
    journal: Journal, server: ThreadingHTTPServer, recorder: _Recorder,
    caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    sender = WebhookSender(_specs(server.server_address[1]), journal, env=ENV, retry=FAST)
    async with anyio.create_task_group() as tg:
        await tg.start(sender.run)
        assert sender.enqueue(_note()) == 3
        await _until(lambda: len(recorder.requests) == 3 and sender.undelivered() == 0)
        tg.cancel_scope.cancel()
    by_path = {r["path"]: r for r in recorder.requests}
    assert by_path["/generic"]["body"] == _note().to_doc()
    assert by_path["/generic"]["headers"]["authorization"] == f"Bearer {BEARER}"
    assert by_path["/slack"]["body"] == {"text": summary_text(_note())}
    assert by_path[f"/bot{BOT_TOKEN}/sendMessage"]["body"] == {
        "chat_id": "-1001", "text": summary_text(_note())}
    rows = journal.query("SELECT webhook, delivered_at, attempts FROM outbox")
    assert {r["webhook"] for r in rows} == {"ops", "chat", "tg"}
    assert all(r["delivered_at"] is not None and r["attempts"] == 0 for r in rows)
    assert "webhook tg delivered" in caplog.text
    assert "HTTP Request" in caplog.text  # httpx logged the request, with the token masked
    _assert_no_secret(caplog.text)
    for path in tmp_path.glob(f"{JOURNAL_FILENAME}*"):
        _assert_no_secret(path.read_bytes())


@pytest.mark.anyio
@pytest.mark.slow
async def test_webhook_down_then_up_loses_nothing(
    journal: Journal, recorder: _Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:  # a free port, closed: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = WebhookSender(_specs(port), journal, env=ENV, retry=FAST)
    async with anyio.create_task_group() as tg:
        await tg.start(sender.run)
        for i in range(5):
            sender.enqueue(_note(i))
        await _until(lambda: journal.query("SELECT MAX(attempts) FROM outbox")[0][0] >= 3)
        assert recorder.requests == [] and sender.undelivered() == 15
        server = _serve(recorder, port)
        try:
            await _until(lambda: sender.undelivered() == 0)
        finally:
            _stop(server)
        tg.cancel_scope.cancel()
    for path in ("/generic", "/slack", "/sendMessage"):
        assert len(recorder.bodies(path)) == 5
    assert [b["message"] for b in recorder.bodies("/generic")] == [
        f"three restarts failed #{i}" for i in range(5)]  # in order
    assert journal.query("SELECT COUNT(*) FROM outbox")[0][0] == 15
    assert "webhook tg delivery failed" in caplog.text and "ConnectError" in caplog.text
    _assert_no_secret(caplog.text)
    errors = journal.query("SELECT last_error FROM outbox")
    _assert_no_secret(" ".join(str(r[0]) for r in errors))


@pytest.mark.anyio
async def test_outbox_rows_delivered_after_restart(
    tmp_path: Path, server: ThreadingHTTPServer, recorder: _Recorder
) -> None:
    specs = _specs(server.server_address[1])[:1]
    with Journal.open(tmp_path) as first:  # a daemon that queued, then died before sending
        WebhookSender(specs, first, env=ENV).enqueue(_note(1))
        WebhookSender(specs, first, env=ENV).enqueue(_note(2))
    with Journal.open(tmp_path) as second:
        sender = WebhookSender(specs, second, env=ENV, retry=FAST)
        assert sender.undelivered() == 2
        async with anyio.create_task_group() as tg:
            await tg.start(sender.run)
            await _until(lambda: sender.undelivered() == 0)
            tg.cancel_scope.cancel()
    assert [b["message"] for b in recorder.bodies()] == [
        "three restarts failed #1", "three restarts failed #2"]


@pytest.mark.anyio
async def test_webhook_that_hangs_times_out_and_backs_off(journal: Journal) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        spec = WebhookSpec("slow", f"http://127.0.0.1:{silent.getsockname()[1]}/x", timeout=0.1)
        sender = WebhookSender([spec], journal, env={}, retry=RetryPolicy(initial_s=30.0))
        async with anyio.create_task_group() as tg:
            await tg.start(sender.run)
            sender.enqueue(_note())
            await _until(lambda: journal.query("SELECT attempts FROM outbox")[0][0] == 1)
            tg.cancel_scope.cancel()
    [row] = journal.query(
        "SELECT last_error, delivered_at, next_attempt_at, created_at FROM outbox")
    assert row["last_error"] == "timeout" and row["delivered_at"] is None
    assert row["next_attempt_at"] - row["created_at"] >= 29.0


def test_notifier_writes_log_line_and_outbox(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        sender = WebhookSender(_specs(1)[:2], journal, env=ENV)
        notifier = Notifier(NotificationLog(tmp_path / "notifications.log"), sender)
        notifier.notify(_note(1))
        notifier.notify(_note(2))
        assert sender.undelivered() == 4
    lines = (tmp_path / "notifications.log").read_bytes().splitlines()
    assert [Notification.from_doc(orjson.loads(line)) for line in lines] == [_note(1), _note(2)]
