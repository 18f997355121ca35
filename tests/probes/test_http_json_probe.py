"""The http_json probe (issue 22) against a real loopback HTTP server, bound to port 0.

The server is the standard library's ``ThreadingHTTPServer`` in a thread: each path
serves a body the test sets, and when the test sets credentials it checks the
``Authorization`` header itself and answers 401 without them, as freqtrade's API does.
The wall clock is the probe's injected one, so ages are exact; nothing sleeps.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from autoheal.core.reasons import (
    AUTH_ENV_MISSING,
    CONN_REFUSED,
    JSON_FIELD_MISSING,
    JSON_FIELD_TYPE,
    JSON_INVALID,
    JSON_STALE,
    JSON_VALUE_MISMATCH,
)
from autoheal.probes import HttpJsonProbe, ProbeResult
from autoheal.probes.http_json import MAX_BODY_BYTES

pytestmark = [pytest.mark.timeout(30)]

WALL = 1_796_670_000.0  # 2026-12-07 19:00:00 UTC
MONO = 100.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Site:
    """What the server answers, and what it saw."""

    port: int
    bodies: dict[str, bytes] = field(default_factory=dict)
    #: ``user:password`` for basic, or ``Bearer <token>`` as the whole header; None: open.
    basic: str | None = None
    bearer: str | None = None
    seen_auth: list[str | None] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def json(self, path: str, doc: object) -> str:
        self.bodies[path] = orjson.dumps(doc)
        return self.url(path)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            got = self.headers.get("Authorization")
            site.seen_auth.append(got)
            wanted = None
            if site.basic is not None:
                wanted = "Basic " + base64.b64encode(site.basic.encode()).decode()
            elif site.bearer is not None:
                wanted = f"Bearer {site.bearer}"
            if wanted is not None and got != wanted:
                self._send(401, b'{"detail": "Unauthorized"}')
                return
            body = site.bodies.get(self.path)
            self._send(404, b"{}") if body is None else self._send(200, body)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: pytest shows stderr of failing tests only, and this is noise

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    srv = Site(server.server_address[1])
    server.RequestHandlerClass = _handler(srv)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def check(url: str, pointer: str, **kwargs: object) -> ProbeResult:
    kwargs.setdefault("wall", lambda: WALL)
    kwargs.setdefault("clock", lambda: MONO)
    async with HttpJsonProbe(url, pointer, 2.0, **kwargs) as probe:  # type: ignore[arg-type]
        return await probe.check()


FREQTRADE = {
    "last_process": "2026-12-07 18:59:50+00:00",
    "last_process_loc": "2026-12-07 19:59:50+01:00",
    "last_process_ts": int(WALL) - 10,
    "bot_start": "2026-12-07 10:00:00+00:00",
    "bot_start_ts": int(WALL) - 32400,
    "bot_startup": "2026-12-07 10:00:00+00:00",
    "bot_startup_ts": int(WALL) - 32400,
}


@pytest.mark.anyio
async def test_fresh_epoch_timestamp_is_ok_with_age_and_recheck(site: Site) -> None:
    url = site.json("/api/v1/health", FREQTRADE)
    result = await check(url, "/last_process_ts", max_age=60.0)
    assert (result.ok, result.reason) == (True, "")
    assert (result.value, result.threshold) == (10.0, 60.0)
    assert result.recheck_at == MONO + 50.0


@pytest.mark.anyio
async def test_stale_epoch_timestamp_is_json_stale_and_says_the_age(site: Site) -> None:
    url = site.json("/api/v1/health", {**FREQTRADE, "last_process_ts": int(WALL) - 600})
    result = await check(url, "/last_process_ts", max_age=60.0)
    assert (result.ok, result.reason, result.value) == (False, JSON_STALE, 600.0)
    assert "age 600.000 s > 60.0 s" in result.detail


@pytest.mark.anyio
async def test_millisecond_timestamp_with_unit_ms(site: Site) -> None:
    url = site.json("/h", {"ts_ms": int(WALL * 1000) - 2500})
    result = await check(url, "/ts_ms", max_age=5.0, unit="ms")
    assert (result.ok, result.value) == (True, 2.5)
    stale = await check(url, "/ts_ms", max_age=2.0, unit="ms")
    assert (stale.reason, stale.value) == (JSON_STALE, 2.5)


@pytest.mark.anyio
async def test_iso_string_timestamp(site: Site) -> None:
    url = site.json("/api/v1/health", FREQTRADE)
    assert (await check(url, "/last_process", max_age=60.0)).value == 10.0
    assert (await check(url, "/last_process_loc", max_age=60.0)).value == 10.0
    stale = await check(url, "/bot_start", max_age=60.0)
    assert (stale.reason, stale.value) == (JSON_STALE, 32400.0)


@pytest.mark.anyio
async def test_equals_ok_and_mismatch(site: Site) -> None:
    url = site.json("/status", {"state": "running", "workers": [{"alive": True}], "n": 3})
    assert (await check(url, "/state", equals="running")).ok
    assert (await check(url, "/workers/0/alive", equals=True)).ok
    assert (await check(url, "/n", equals=3.0)).ok
    result = await check(url, "/state", equals="stopped")
    assert (result.ok, result.reason) == (False, JSON_VALUE_MISMATCH)
    assert result.detail == "/state is 'running', expected 'stopped'"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b'{"last_process_ts": 17', b"", b'{"a": NaN}'],
)
async def test_a_body_that_is_not_json_is_json_invalid(site: Site, body: bytes) -> None:
    site.bodies["/h"] = body
    result = await check(site.url("/h"), "/last_process_ts", max_age=60.0)
    assert (result.ok, result.reason) == (False, JSON_INVALID)


@pytest.mark.anyio
async def test_a_body_over_the_cap_is_json_invalid(site: Site) -> None:
    site.bodies["/big"] = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'", "ts": 1}'
    result = await check(site.url("/big"), "/ts", max_age=60.0)
    assert (result.ok, result.reason) == (False, JSON_INVALID)
    assert "body over" in result.detail
    site.bodies["/fits"] = b'{"pad": "' + b"x" * (MAX_BODY_BYTES - 100) + b'", "ts": 1}'
    assert (await check(site.url("/fits"), "/ts", equals=1)).ok


@pytest.mark.anyio
async def test_a_missing_field_is_json_field_missing(site: Site) -> None:
    url = site.json("/api/v1/health", FREQTRADE)
    for pointer in ("/last_process_tz", "/last_process_ts/0", "/bot_start/x"):
        result = await check(url, pointer, max_age=60.0)
        assert (result.ok, result.reason) == (False, JSON_FIELD_MISSING), pointer
    site.json("/list", [1, 2])
    assert (await check(site.url("/list"), "/2", equals=1)).reason == JSON_FIELD_MISSING


@pytest.mark.anyio
async def test_a_field_of_the_wrong_type_is_json_field_type(site: Site) -> None:
    url = site.json("/h", {"ts": True, "naive": "2026-12-07 19:00:00", "state": 1})
    for pointer in ("/ts", "/naive", ""):  # "" is the whole document, an object
        result = await check(url, pointer, max_age=60.0)
        assert (result.ok, result.reason) == (False, JSON_FIELD_TYPE), pointer
    assert (await check(url, "/state", equals=True)).reason == JSON_FIELD_TYPE


@pytest.mark.anyio
async def test_basic_auth_header_is_sent_and_checked_by_the_server(site: Site) -> None:
    site.basic = "freqtrader:s3cret:with:colons"
    url = site.json("/api/v1/health", FREQTRADE)
    env = {"FT_AUTH": "freqtrader:s3cret:with:colons"}
    result = await check(
        url, "/last_process_ts", max_age=60.0, auth="basic", auth_env="FT_AUTH", environ=env
    )
    assert result.ok, result
    assert (
        site.seen_auth[-1] == "Basic " + base64.b64encode(b"freqtrader:s3cret:with:colons").decode()
    )
    assert "s3cret" not in result.detail


@pytest.mark.anyio
async def test_bad_basic_auth_is_http_status_401_and_never_shows_the_password(site: Site) -> None:
    site.basic = "freqtrader:right"
    url = site.json("/api/v1/health", FREQTRADE)
    env = {"FT_AUTH": "freqtrader:wrong"}
    result = await check(
        url, "/last_process_ts", max_age=60.0, auth="basic", auth_env="FT_AUTH", environ=env
    )
    assert (result.ok, result.reason) == (False, "http_status_401")
    no_auth = await check(url, "/last_process_ts", max_age=60.0)
    assert no_auth.reason == "http_status_401"
    assert site.seen_auth[-1] is None
    assert "wrong" not in repr(result) and "wrong" not in result.detail


@pytest.mark.anyio
async def test_bearer_auth(site: Site) -> None:
    site.bearer = "tok-123"
    url = site.json("/h", {"ok": True})
    result = await check(
        url, "/ok", equals=True, auth="bearer", auth_env="TOK", environ={"TOK": "tok-123"}
    )
    assert result.ok
    assert site.seen_auth[-1] == "Bearer tok-123"


@pytest.mark.anyio
async def test_a_missing_auth_env_is_auth_env_missing_and_sends_nothing(site: Site) -> None:
    url = site.json("/h", {"ok": True})
    for env in ({}, {"FT_AUTH": ""}):
        result = await check(url, "/ok", equals=True, auth="basic", auth_env="FT_AUTH", environ=env)
        assert (result.ok, result.reason) == (False, AUTH_ENV_MISSING)
        assert result.detail == "environment variable FT_AUTH is not set"
    assert site.seen_auth == []  # no request went out


@pytest.mark.anyio
async def test_an_unusable_bearer_token_is_auth_env_missing_without_showing_it(site: Site) -> None:
    url = site.json("/h", {"ok": True})
    for token in ("t\u00f6ken-secret", "tok\r\nX-Evil: 1"):
        result = await check(
            url, "/ok", equals=True, auth="bearer", auth_env="TOK", environ={"TOK": token}
        )
        assert (result.ok, result.reason) == (False, AUTH_ENV_MISSING)
        assert "secret" not in result.detail and "Evil" not in result.detail
    assert site.seen_auth == []


@pytest.mark.anyio
async def test_auth_env_is_read_at_each_check(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default environ is the daemon's live os.environ, not a copy taken at startup.
    site.basic = "u:p"
    url = site.json("/h", {"ok": True})
    monkeypatch.delenv("AH_TEST_FT_AUTH", raising=False)
    async with HttpJsonProbe(
        url, "/ok", 2.0, equals=True, auth="basic", auth_env="AH_TEST_FT_AUTH"
    ) as probe:
        assert (await probe.check()).reason == AUTH_ENV_MISSING
        monkeypatch.setenv("AH_TEST_FT_AUTH", "u:p")
        assert (await probe.check()).ok


@pytest.mark.anyio
async def test_http_level_failures_keep_the_http_probe_tokens(site: Site) -> None:
    assert (await check(site.url("/nothing-here"), "/ts", max_age=60.0)).reason == "http_status_404"
    # a port nobody listens on: bind one, close it, probe it
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await check(f"http://127.0.0.1:{port}/h", "/ts", max_age=60.0)
    assert result.reason == CONN_REFUSED


def test_constructor_refuses_what_the_config_refuses() -> None:
    url = "http://127.0.0.1:1/h"
    with pytest.raises(ValueError, match="exactly one"):
        HttpJsonProbe(url, "/ts", 1.0)
    with pytest.raises(ValueError, match="exactly one"):
        HttpJsonProbe(url, "/ts", 1.0, max_age=1.0, equals=1)
    with pytest.raises(ValueError, match="starts with '/'"):
        HttpJsonProbe(url, "ts", 1.0, max_age=1.0)
    with pytest.raises(ValueError, match="auth_env"):
        HttpJsonProbe(url, "/ts", 1.0, max_age=1.0, auth="basic")


def test_repr_shows_no_credentials() -> None:
    probe = HttpJsonProbe("http://u:pw@127.0.0.1:1/h?key=k", "/ts", 1.0, max_age=1.0)
    assert "pw" not in repr(probe) and "key=k" not in repr(probe)


# ------------------------------------------------------------- through the real CLI


def _autoheal_check(config: Path, env: dict[str, str]) -> dict[str, object]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AH_TEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "autoheal", "check", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=base | env,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


@pytest.mark.slow
def test_autoheal_check_runs_the_probe_with_the_credential_from_its_environment(
    site: Site, tmp_path: Path
) -> None:
    # The whole path: TOML -> config -> wiring.make_probe -> a real GET with basic auth.
    site.basic = "freqtrader:pw-9f2c"
    url = site.json("/api/v1/health", {"last_process_ts": time.time() - 3.0})
    config = tmp_path / "autoheal.toml"
    config.write_text(
        'environment = "paper"\n[paths]\nruntime_dir = "rt"\n[dependencies.ft]\n'
        '[[dependencies.ft.probes]]\nkind = "http_json"\nname = "health"\n'
        f'url = "{url}"\npointer = "/last_process_ts"\nmax_age = "60s"\n'
        'auth = "basic"\nauth_env = "AH_TEST_FT_AUTH"\ntimeout = "5s"\n'
    )
    ok = _autoheal_check(config, {"AH_TEST_FT_AUTH": "freqtrader:pw-9f2c"})
    (fact,) = [p for p in ok["probes"] if p["probe"] == "health"]  # type: ignore[union-attr, index]
    assert (fact["ok"], fact["reason"], fact["threshold"]) == (True, "", 60.0)
    assert 2.0 <= fact["value"] < 30.0
    wrong = _autoheal_check(config, {"AH_TEST_FT_AUTH": "freqtrader:nope"})
    (fact,) = [p for p in wrong["probes"] if p["probe"] == "health"]  # type: ignore[union-attr, index]
    assert (fact["ok"], fact["reason"]) == (False, "http_status_401")
    unset = _autoheal_check(config, {})
    (fact,) = [p for p in unset["probes"] if p["probe"] == "health"]  # type: ignore[union-attr, index]
    assert (fact["reason"], fact["detail"]) == (
        AUTH_ENV_MISSING,
        "environment variable AH_TEST_FT_AUTH is not set",
    )
    assert "pw-9f2c" not in json.dumps([ok, wrong, unset])
