"""The bot-API sender (autoheal.daemon.bot_api) against a real HTTP server on loopback:
the calls each mode makes, the credentials it sends, and every failure loud, retried,
and never a loosening."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import orjson
import pytest
from anyio.abc import SocketStream

from autoheal.config import Config, load_config
from autoheal.daemon.bot_api import ALERT, LEDGER_FILE, BotApi
from autoheal.daemon.clock import LoopClock
from autoheal.daemon.effects import Effects
from autoheal.demo.httpserver import HttpRequest, HttpResponse, serve_connection
from autoheal.store.alerts import read_alerts
from autoheal.store.journal import Journal

pytestmark = [pytest.mark.timeout(30), pytest.mark.anyio]

USER, PASSWORD = "bot", "s3cret-pw"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class BotServer:
    """Records each request; answers ``status`` (per path), else 200."""

    seen: list[str] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    port: int = 0

    state: str = "running"  # freqtrade's: running, paused (stopentry), stopped

    async def handle(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(f"{request.method} {request.path}")
        self.auth.append(request.headers.get("authorization"))
        if request.path in self.hang:
            await anyio.sleep(30)
        status = self.status.get(request.path, 200)
        moves = {"stopentry": "paused", "stop": "stopped", "start": "running"}
        if status == 200 and request.method == "POST":
            self.state = moves.get(request.path.removeprefix("/api/v1/"), self.state)
        if request.path == "/api/v1/show_config":
            return HttpResponse(status, orjson.dumps({"state": self.state}))
        return HttpResponse(status, b'{"status": "ok"}')

    def posts(self) -> list[str]:
        return [s.removeprefix("POST /api/v1") for s in self.seen if s.startswith("POST ")]


@asynccontextmanager
async def bot_server() -> AsyncIterator[BotServer]:
    server = BotServer()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server.port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def one(stream: SocketStream) -> None:
        await serve_connection(stream, server.handle)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, one)
        yield server
        tg.cancel_scope.cancel()


IN_EFFECT = (
    'in_effect = { get = "/show_config", pointer = "/state", one_of = ["paused", "stopped"] }'
)


def config(tmp_path: Path, port: int, extra: str = "") -> Config:
    path = tmp_path / "autoheal.toml"
    path.write_text(
        f"""environment = "paper"
[paths]
runtime_dir = "rt"
[services.freqtrade]
argv = ["true"]
[bot_api]
url = "http://127.0.0.1:{port}/api/v1"
service = "freqtrade"
auth = "basic"
auth_env = "FT_API"
timeout = "500ms"
retry_max = "1s"
[bot_api.modes]
DEGRADED = ["stopentry"]
REDUCE_ONLY = ["stopentry"]
FAILSAFE = ["stopentry", "stop"]
[bot_api.calls.stopentry]
post = "/stopentry"
undo = "/start"
{extra}
[bot_api.calls.stop]
post = "/stop"
undo = "/stopentry"
"""
    )
    return load_config(path)


@dataclass
class Rig:
    api: BotApi
    server: BotServer
    runtime_dir: Path
    journal: Journal

    def events(self) -> list[dict[str, object]]:
        rows = self.journal.query("SELECT reason, data FROM events WHERE kind = 'bot_api_call'")
        return [{"reason": r["reason"], **orjson.loads(r["data"])} for r in rows]

    def alerts(self) -> set[str]:
        return set(read_alerts(self.runtime_dir))


@asynccontextmanager
async def rig(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    before: Callable[[Path], None] = print,
    extra: str = "",
) -> AsyncIterator[Rig]:
    async with bot_server() as server:
        cfg = config(tmp_path, server.port, extra)
        runtime_dir = cfg.paths.runtime_dir
        runtime_dir.mkdir(parents=True, exist_ok=True)
        before(runtime_dir)
        journal = Journal.open(runtime_dir)
        clock = LoopClock()
        effects = Effects(runtime_dir, wall=clock.wall, journal=journal)
        api = BotApi(
            lambda: cfg,
            clock=clock,
            effects=effects,
            runtime_dir=runtime_dir,
            env={"FT_API": f"{USER}:{PASSWORD}"} if env is None else env,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(api.run)
            try:
                yield Rig(api, server, runtime_dir, journal)
            finally:
                tg.cancel_scope.cancel()
                journal.close()


async def until(what: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not what():
            await anyio.sleep(0.01)


async def test_each_mode_makes_its_calls_and_normal_undoes_them_newest_first(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        r.api.observe("DEGRADED")
        await until(lambda: r.server.posts() == ["/stopentry"])
        r.api.observe("FAILSAFE")
        await until(lambda: r.server.posts()[1:] == ["/stop"])
        assert r.api.ledger.done == ("stopentry", "stop")
        saved = orjson.loads((r.runtime_dir / LEDGER_FILE).read_bytes())
        assert saved == {"done": ["stopentry", "stop"], "unconfirmed": [], "foreign": []}
        r.api.observe("NORMAL")
        await until(lambda: len(r.server.posts()) == 4)
        # Undone newest first: stopped -> paused -> running.
        assert r.server.posts()[2:] == ["/stopentry", "/start"]
        assert r.server.state == "running"
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert set(r.server.auth) == {expected}
        assert [(e["call"], e["undo"], e["outcome"]) for e in r.events()] == [
            ("stopentry", False, "ok"),
            ("stop", False, "ok"),
            ("stop", True, "ok"),
            ("stopentry", True, "ok"),
        ]


async def test_a_failed_undo_is_loud_retried_and_holds_the_older_undos_back(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        r.api.observe("FAILSAFE")
        await until(lambda: r.server.posts() == ["/stopentry", "/stop"])
        # Back to NORMAL while the bot refuses stopentry (the undo of the stop): the
        # older undo, /start, must not go out before it.
        r.server.status["/api/v1/stopentry"] = 503
        r.api.observe("NORMAL")
        await until(lambda: r.server.posts().count("/stopentry") >= 3)  # retried
        assert "/start" not in r.server.posts()
        assert ALERT in r.alerts()
        failed = [e for e in r.events() if e["outcome"] != "ok"]
        assert (failed[0]["outcome"], failed[0]["reason"]) == ("unknown", "exchange_503")
        del r.server.status["/api/v1/stopentry"]
        await until(lambda: r.server.posts()[-1:] == ["/start"])
        assert r.server.state == "running"
        await until(lambda: ALERT not in r.alerts())


async def test_a_failed_call_does_not_hold_up_the_next(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.server.status["/api/v1/stopentry"] = 503
        r.api.observe("FAILSAFE")
        await until(lambda: "/stop" in r.server.posts())
        assert r.server.state == "stopped"
        assert ALERT in r.alerts()


async def test_missing_credentials_send_nothing_and_say_which_variable(tmp_path: Path) -> None:
    async with rig(tmp_path, env={}) as r:
        r.api.observe("DEGRADED")
        await until(lambda: ALERT in r.alerts())
        assert r.server.seen == []
        detail = read_alerts(r.runtime_dir)[ALERT]["detail"]
        assert "auth_env_missing" in str(detail) and PASSWORD not in str(detail)
        assert r.api.ledger.done == ()  # nothing reached the bot: nothing to undo later


async def test_a_timeout_counts_as_done_so_normal_still_undoes_it(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.server.hang.add("/api/v1/stopentry")
        r.api.observe("DEGRADED")
        await until(lambda: r.events() != [])
        assert r.events()[0]["outcome"] == "unknown"
        assert r.api.ledger.done == ("stopentry",)
        r.server.hang.clear()
        await until(lambda: r.events()[-1]["outcome"] == "ok")  # sent again, answered
        r.api.observe("NORMAL")
        await until(lambda: r.server.posts()[-1:] == ["/start"])


async def test_an_unreadable_ledger_undoes_nothing_and_says_so(tmp_path: Path) -> None:
    def garbage(runtime_dir: Path) -> None:
        (runtime_dir / LEDGER_FILE).write_bytes(b"\x00\xffnot json")

    async with rig(tmp_path, before=garbage) as r:
        assert "bot_api_ledger_unreadable" in r.alerts()
        r.api.observe("DEGRADED")
        await until(lambda: r.server.posts() == ["/stopentry"])
        r.api.observe("NORMAL")
        await until(lambda: r.server.posts() == ["/stopentry", "/start"])


async def test_a_ledger_that_cannot_be_written_holds_in_memory(tmp_path: Path) -> None:
    def blocked(runtime_dir: Path) -> None:
        (runtime_dir / LEDGER_FILE).mkdir()  # a rename onto a directory fails

    async with rig(tmp_path, before=blocked) as r:
        r.api.observe("DEGRADED")
        await until(lambda: r.server.posts() == ["/stopentry"])
        r.api.observe("NORMAL")
        await until(lambda: r.server.posts() == ["/stopentry", "/start"])


async def test_the_bots_restart_sends_what_is_in_force_again(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.api.observe("DEGRADED")
        await until(lambda: r.server.posts() == ["/stopentry"])
        r.api.restarted("some-other-service")
        r.api.restarted("freqtrade")
        await until(lambda: r.server.posts() == ["/stopentry", "/stopentry"])
        await anyio.sleep(0.2)
        assert r.server.posts() == ["/stopentry", "/stopentry"]


async def test_an_operators_own_pause_is_neither_sent_again_nor_undone(tmp_path: Path) -> None:
    async with rig(tmp_path, extra=IN_EFFECT) as r:
        r.server.state = "paused"  # the operator's /stopentry, before the outage
        r.api.observe("DEGRADED")
        await until(lambda: r.events() != [])
        assert r.server.seen == ["GET /api/v1/show_config"]
        assert [(e["call"], e["outcome"]) for e in r.events()] == [("stopentry", "in_effect")]
        r.api.observe("NORMAL")
        await anyio.sleep(0.3)
        assert r.server.posts() == [] and r.server.state == "paused"  # still the operator's
        # Next time the bot runs: autoheal pauses it, and undoes its own pause.
        r.server.state = "running"
        r.api.observe("DEGRADED")
        await until(lambda: r.server.posts() == ["/stopentry"])
        r.api.observe("NORMAL")
        await until(lambda: r.server.posts() == ["/stopentry", "/start"])
        assert r.server.state == "running"


async def test_a_bot_that_cannot_say_gets_nothing_sent_and_an_alert(tmp_path: Path) -> None:
    async with rig(tmp_path, extra=IN_EFFECT) as r:
        r.server.status["/api/v1/show_config"] = 500
        r.api.observe("DEGRADED")
        await until(lambda: ALERT in r.alerts())
        assert r.server.posts() == []
        del r.server.status["/api/v1/show_config"]
        await until(lambda: r.server.posts() == ["/stopentry"])
        await until(lambda: ALERT not in r.alerts())


async def test_credentials_a_header_cannot_carry_send_nothing_and_echo_nothing(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, env={"FT_API": "bot:pässwörd"}) as r:
        r.api.observe("DEGRADED")
        await until(lambda: ALERT in r.alerts())
        assert r.server.seen == []
        assert r.events()[0]["reason"] == "auth_env_missing"
        assert "pässwörd" not in str(read_alerts(r.runtime_dir))


async def test_a_surprise_in_the_sender_is_loud_and_never_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with rig(tmp_path) as r:
        real = BotApi._send
        calls = []

        async def once_broken(self: BotApi, *args: object) -> object:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            return await real(self, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(BotApi, "_send", once_broken)
        monkeypatch.setattr("autoheal.daemon.bot_api._SURPRISE_RETRY_S", 0.1)
        r.api.observe("DEGRADED")
        await until(lambda: ALERT in r.alerts())
        await until(lambda: r.server.posts() == ["/stopentry"])  # the task lives on
        await until(lambda: ALERT not in r.alerts())
