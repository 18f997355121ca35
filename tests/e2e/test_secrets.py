"""Every secret the daemon reads stays in the daemon (issue 18 A8; DESIGN.md §3).

A real daemon, configured with one secret of each kind (webhooks in the generic,
Telegram and Alertmanager formats, the Telegram chat id, the fleet's Redis password
against a real ``redis-server`` with ``requirepass``, the status page's token), runs
a real service. The service's ``/proc/<pid>/environ`` holds none of them, while the
daemon did use each one (the webhooks' receiver saw them, the fleet connected); and
no secret value is in the daemon's log, the service's log or any runtime file.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

from autoheal.drills.stacks.redis import RedisServer
from autoheal.drills.stacks.simple import Runtime, toml_str, wait_for
from tests.sysdeps import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SECRETS = {
    "HOOK_TOKEN": "hook-s3cret-1b7e",
    "TG_TOKEN": "tg-s3cret-5d2a",
    "TG_TOKEN_CHAT_ID": "chat-s3cret-9c04",
    "AM_TOKEN": "am-s3cret-e61f",
    "FLEET_PW": "fleet-s3cret-33b0",
    "PAGE_TOKEN": "page-s3cret-a8d9",
}


class Receiver(ThreadingHTTPServer):
    """A loopback webhook endpoint that records what it was sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, bytes]] = []  # (path, authorization, body)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        with self.server.lock:
            self.server.seen.append((self.path, self.headers.get("authorization", ""), body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(
        require_binary("redis-server", "redis-server"),
        tmp_path / "redis",
        password=SECRETS["FLEET_PW"],
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def configure(rt: Runtime, receiver: Receiver, redis: RedisServer) -> None:
    text = rt.config.read_text().replace(
        'log_file = ""\n', 'log_file = ""\nstatus_token_env = "PAGE_TOKEN"\n'
    )
    redis_url = f"redis://:{{secret}}@127.0.0.1:{redis.port}/0"
    text += f"""
[[webhooks]]
name = "ops"
url = {toml_str(receiver.url + "/hook")}
secret_env = "HOOK_TOKEN"

[[webhooks]]
name = "tg"
url = {toml_str(receiver.url + "/bot{{secret}}/send")}
format = "telegram"
secret_env = "TG_TOKEN"

[[webhooks]]
name = "am"
url = {toml_str(receiver.url + "/api/v2/alerts")}
format = "alertmanager"
secret_env = "AM_TOKEN"

[fleet]
redis_url = {toml_str(redis_url)}
secret_env = "FLEET_PW"
name = "desk"
host = "h"
stale_after = "2s"
poll_interval = "200ms"
"""
    rt.config.write_text(text)


def proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def leaks(path: Path) -> list[str]:
    data = path.read_bytes()
    return [
        f"{path}: {name}"
        for name, value in SECRETS.items()
        if value.encode() in data or quote(value).encode() in data
    ]


def test_no_secret_reaches_a_service_a_log_or_a_runtime_file(
    tmp_path: Path, receiver: Receiver, redis: RedisServer
) -> None:
    rt = Runtime(tmp_path, services=("feeder",), status_listen=True, env=SECRETS)
    configure(rt, receiver, redis)
    try:
        rt.start_daemon()
        pid = rt.healthy_pid("feeder")
        assert pid is not None
        env = proc_environ(pid)
        assert env["AUTOHEAL_RUNTIME_DIR"] == str(rt.runtime_dir)  # it is the service's env
        assert sorted(n for n in SECRETS if n in env) == []
        assert [n for n, v in SECRETS.items() if v in "\0".join(env.values())] == []

        # The daemon itself did read each secret: the fleet connected with its password...
        host_key = "autoheal:fleet:desk:host:h"
        wait_for(lambda: b'"host": "h"' in redis.command("GET", host_key), 10, "summary")
        # ...and a failsafe's notices carry the webhooks' secrets where each format says.
        assert rt.cli("failsafe", "enter", "--reason", "drill").returncode == 0

        def seen(path_part: str) -> list[tuple[str, str, bytes]]:
            with receiver.lock:
                return [s for s in receiver.seen if path_part in s[0]]

        hook = wait_for(lambda: seen("/hook"), 15, "the generic webhook")
        assert hook[0][1] == f"Bearer {SECRETS['HOOK_TOKEN']}"
        telegram = wait_for(lambda: seen(f"/bot{SECRETS['TG_TOKEN']}/send"), 15, "telegram")
        assert json.loads(telegram[0][2])["chat_id"] == SECRETS["TG_TOKEN_CHAT_ID"]
        alerts = wait_for(lambda: seen("/api/v2/alerts"), 15, "alertmanager")
        assert alerts[0][1] == f"Bearer {SECRETS['AM_TOKEN']}"
    finally:
        rt.close()
    files = [rt.log_path, *(p for p in rt.runtime_dir.rglob("*") if p.is_file())]
    if rt.stop_file.exists():
        files.append(rt.stop_file)
    assert [leak for f in files for leak in leaks(f)] == []
