"""A real freqtrade bot, in dry-run, against the demo exchange's Binance spot dialect.

:func:`write_bot` writes everything the bot needs into one directory (its config, a
``user_data`` folder with :mod:`~autoheal.drills.stacks.freqtrade_strategy` copied in,
its database and log) and returns the argv that starts it; :class:`FreqtradeHarness`
starts that as a real process and waits for its API; :class:`FreqtradeApi` is its REST
API (basic auth), the calls a supervisor makes.

The bot reaches nothing but loopback: every URL of ccxt's ``binance`` class
(``urls['api']``, websockets included) is replaced in ``exchange.ccxt_config`` by the
demo exchange's (:func:`autoheal.demo.venue_urls.loopback_urls`), so an endpoint the
demo does not serve is a 404 on loopback; ccxt is told to load spot markets only (the
demo lists no COIN-M ones); freqtrade's websocket candles are off (``enable_ws``); no
fiat conversion (CoinGecko), no Telegram. ccxt and freqtrade are imported only inside
the functions that need them: autoheal does not depend on them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx

from autoheal.demo.venue_urls import loopback_urls
from autoheal.drills.errors import StackError
from autoheal.drills.stacks.harness import ProcessRoster, Spawned

__all__ = [
    "STRATEGY",
    "BotSettings",
    "FreqtradeApi",
    "FreqtradeBot",
    "FreqtradeHarness",
    "freqtrade_missing",
    "venue_urls",
    "write_bot",
]

T = TypeVar("T")

#: The test strategy (copied into the bot's ``user_data/strategies``) and its class.
STRATEGY_FILE = Path(__file__).with_name("freqtrade_strategy.py")
STRATEGY = "AutohealDemoStrategy"
#: How long a bot may take from its start to answering ``/api/v1/ping`` (imports of
#: pandas, ccxt, SQLAlchemy and FastAPI, then the markets: seconds on a busy host).
START_TIMEOUT_S = 90.0
#: freqtrade stops on SIGTERM after its current loop; then SIGKILL.
STOP_TIMEOUT_S = 20.0


def freqtrade_missing() -> str | None:
    """Why a bot cannot be started here (freqtrade or ccxt not importable), else None."""
    for name in ("freqtrade", "ccxt"):
        if find_spec(name) is None:
            return f"{name} is not installed (pip install freqtrade==2026.9)"
    return None


def venue_urls(exchange_url: str) -> dict[str, Any]:
    """ccxt ``binance``'s ``urls['api']`` (its websocket variant's, a superset) with every
    origin the demo exchange's: REST on ``exchange_url``, websockets on its ``ws://``."""
    import ccxt.pro  # only here: autoheal does not depend on ccxt

    api = ccxt.pro.binance().urls["api"]
    ws_base = "ws://" + exchange_url.split("://", 1)[1]
    return {
        key: loopback_urls(value, ws_base if key == "ws" else exchange_url)
        for key, value in api.items()
    }


@dataclass(frozen=True, slots=True)
class BotSettings:
    """What the bot trades and how often it loops.

    Args:
        pairs: freqtrade's pair names (the demo lists BTC, ETH and SOL against USDT).
        max_open_trades: open trades at most (1: one entry per loop with the strategy).
        stake_amount: USDT per trade (the dry-run wallet holds 10,000).
        throttle_s: ``internals.process_throttle_secs``: the least time per bot loop (whole seconds:
            freqtrade's schema).
        strategy: the strategy class; ``strategy_file`` the file that holds it.
    """

    pairs: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    max_open_trades: int = 1
    stake_amount: float = 100.0
    throttle_s: int = 1
    strategy: str = STRATEGY
    strategy_file: Path = STRATEGY_FILE


@dataclass(frozen=True, slots=True)
class FreqtradeBot:
    """A bot written by :func:`write_bot`: where it is, how to start it, how to reach it."""

    directory: Path
    config_path: Path
    log_path: Path
    argv: list[str]
    api_url: str
    username: str
    password: str

    def api(self, *, timeout_s: float = 5.0) -> FreqtradeApi:
        """A client of its REST API (the caller closes it)."""
        return FreqtradeApi(self.api_url, self.username, self.password, timeout_s=timeout_s)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now. freqtrade's schema refuses port 0, so the port is
    chosen here; another process could take it before the bot binds (then the bot's
    start fails, naming the address, and :class:`FreqtradeHarness` says so)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def write_bot(
    directory: Path,
    exchange_url: str,
    settings: BotSettings | None = None,
    *,
    api_port: int | None = None,
) -> FreqtradeBot:
    """Write a dry-run bot's config, ``user_data`` and strategy into ``directory``.

    The config file holds the API's password and JWT secret: it is written mode 0600.

    Args:
        directory: the bot's folder (created).
        exchange_url: the demo exchange's ``rest_url``.
        settings: pairs, slots, loop time, strategy.
        api_port: the REST API's port (default: a free one, :func:`free_port`).
    """
    settings = settings or BotSettings()
    user_data = directory / "user_data"
    strategies = user_data / "strategies"
    strategies.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(settings.strategy_file, strategies / settings.strategy_file.name)
    port = api_port if api_port is not None else free_port()
    username, password = "autoheal", secrets.token_urlsafe(18)
    config = {
        "bot_name": "autoheal-demo",
        "dry_run": True,
        "dry_run_wallet": 10_000,
        "trading_mode": "spot",
        "stake_currency": "USDT",
        "stake_amount": settings.stake_amount,
        "max_open_trades": settings.max_open_trades,
        "timeframe": "1m",
        "initial_state": "running",
        "unfilledtimeout": {"entry": 10, "exit": 10, "unit": "seconds"},
        "entry_pricing": {"price_side": "other", "use_order_book": False},
        "exit_pricing": {"price_side": "other", "use_order_book": False},
        "order_types": {
            "entry": "market",
            "exit": "market",
            "stoploss": "market",
            "stoploss_on_exchange": False,
        },
        "exchange": {
            "name": "binance",
            "key": "",
            "secret": "",
            "enable_ws": False,
            "ccxt_config": {
                "urls": {"api": venue_urls(exchange_url)},
                "options": {"fetchMarkets": {"types": ["spot"]}},
            },
            "pair_whitelist": list(settings.pairs),
            "pair_blacklist": [],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "telegram": {"enabled": False, "token": "", "chat_id": ""},
        "api_server": {
            "enabled": True,
            "listen_ip_address": "127.0.0.1",
            "listen_port": port,
            "verbosity": "error",
            "enable_openapi": False,
            "jwt_secret_key": secrets.token_hex(32),
            "ws_token": secrets.token_urlsafe(24),
            "CORS_origins": [],
            "username": username,
            "password": password,
        },
        "internals": {"process_throttle_secs": settings.throttle_s, "heartbeat_interval": 0},
    }
    config_path = directory / "config.json"
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out, indent=2)
    log_path = directory / "freqtrade.log"
    argv = [
        sys.executable, "-m", "freqtrade", "trade",
        "--config", str(config_path),
        "--strategy", settings.strategy,
        "--userdir", str(user_data),
        "--db-url", f"sqlite:///{directory / 'trades.dryrun.sqlite'}",
        "--logfile", str(log_path),
    ]  # fmt: skip
    return FreqtradeBot(
        directory, config_path, log_path, argv, f"http://127.0.0.1:{port}", username, password
    )


class FreqtradeApi:
    """The bot's REST API (``/api/v1``), basic auth: what a supervisor reads and sends.

    Every call raises ``httpx.HTTPError`` when the bot does not answer or refuses.
    """

    def __init__(self, url: str, username: str, password: str, *, timeout_s: float = 5.0):
        self._client = httpx.AsyncClient(
            base_url=f"{url}/api/v1", auth=(username, password), timeout=timeout_s
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str, **params: Any) -> Any:
        response = await self._client.get(path, params=params)
        return response.raise_for_status().json()

    async def _post(self, path: str) -> Any:
        return (await self._client.post(path)).raise_for_status().json()

    async def ping(self) -> bool:
        """``GET /ping`` (no auth needed) answered ``pong``."""
        return bool((await self._get("/ping")).get("status") == "pong")

    async def health(self) -> dict[str, Any]:
        """``GET /health``: ``last_process_ts`` (the last bot loop, unix s), ``bot_start_ts``."""
        doc: dict[str, Any] = await self._get("/health")
        return doc

    async def last_loop_ts(self) -> int | None:
        """The last bot loop's time (unix s, whole seconds), None before the first."""
        ts = (await self.health()).get("last_process_ts")
        return ts if isinstance(ts, int) else None

    async def state(self) -> str:
        """The bot's state (``GET /show_config``): ``running``, ``paused`` or ``stopped``."""
        return str((await self._get("/show_config"))["state"])

    async def stopentry(self) -> dict[str, Any]:
        """``POST /stopentry``: no new entries, exits go on, loops go on. In freqtrade
        2026.9 it is ``/pause`` (state ``paused``); ``start`` or ``reload_config`` undo it."""
        doc: dict[str, Any] = await self._post("/stopentry")
        return doc

    async def reload_config(self) -> dict[str, Any]:
        """``POST /reload_config``: the bot reads its config again (undoes ``stopentry``)."""
        doc: dict[str, Any] = await self._post("/reload_config")
        return doc

    async def stop(self) -> dict[str, Any]:
        """``POST /stop``: the bot stops trading and looping (``last_process_ts`` stands
        still); its process and API stay up."""
        doc: dict[str, Any] = await self._post("/stop")
        return doc

    async def start(self) -> dict[str, Any]:
        """``POST /start``: trading again after ``stop`` or ``stopentry``."""
        doc: dict[str, Any] = await self._post("/start")
        return doc

    async def open_trades(self) -> list[dict[str, Any]]:
        """``GET /status``: the open trades."""
        trades: list[dict[str, Any]] = await self._get("/status")
        return trades

    async def closed_trades(self, limit: int = 10) -> list[dict[str, Any]]:
        """``GET /trades``: the last ``limit`` closed trades, the latest first."""
        doc = await self._get("/trades", limit=limit)
        trades: list[dict[str, Any]] = doc["trades"]
        return trades

    async def trade_count(self) -> int:
        """Trades ever opened: the open ones (``/status``) plus the closed (``/trades``).

        Two reads: the closed count is read again after the open trades, and all three
        again if it moved (a trade that closed in between would otherwise be missed).

        Raises:
            httpx.HTTPError: also when trades kept closing through three attempts.
        """
        closed = await self._closed_count()
        for _attempt in range(3):
            opened = len(await self.open_trades())
            again = await self._closed_count()
            if again == closed:
                return opened + closed
            closed = again
        raise httpx.HTTPError("trade count: trades kept closing while counted")

    async def _closed_count(self) -> int:
        return int((await self._get("/trades", limit=1))["total_trades"])


class FreqtradeHarness:
    """One dry-run bot process in ``directory``, on the demo exchange at ``exchange_url``.

    Args:
        directory: the bot's folder (config, user_data, database, log).
        exchange_url: the demo exchange's ``rest_url``.
        settings: pairs, slots, loop time, strategy.
        roster: where the process is recorded.
    """

    def __init__(
        self,
        directory: Path,
        exchange_url: str,
        settings: BotSettings | None = None,
        *,
        roster: ProcessRoster | None = None,
    ) -> None:
        self.bot = write_bot(directory, exchange_url, settings)
        self.roster = roster
        self.api = self.bot.api()
        self.started_to_ping_s: float | None = None
        self._proc: Spawned | None = None

    @property
    def pid(self) -> int:
        return 0 if self._proc is None else self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive()

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> FreqtradeHarness:
        """Start the bot and wait until ``/api/v1/ping`` answers.

        Raises:
            StackError: it exited, or did not answer within ``timeout_s`` (then it is
                stopped); the message ends with its log's tail.
        """
        started = time.monotonic()
        self._proc = proc = Spawned(
            self.bot.argv, self.bot.directory / "freqtrade.stdout.log", roster=self.roster
        )
        try:
            await self.wait_ping(timeout_s)
        except (TimeoutError, StackError) as exc:
            await self.stop()
            raise StackError(f"freqtrade did not come up: {exc}\n{self.log_tail()}") from exc
        self.started_to_ping_s = time.monotonic() - started
        if not proc.alive():
            raise StackError(f"freqtrade exited with {proc.returncode}\n{self.log_tail()}")
        return self

    async def wait_ping(self, timeout_s: float) -> None:
        """Until ``/api/v1/ping`` answers (the process must stay alive meanwhile).

        Raises:
            TimeoutError: no answer within ``timeout_s``.
            StackError: the process exited.
        """
        deadline = anyio.current_time() + timeout_s
        while True:
            if self._proc is None or not self._proc.alive():
                code = None if self._proc is None else self._proc.returncode
                raise StackError(f"freqtrade exited with {code}")
            try:
                if await self.api.ping():
                    return
            except httpx.HTTPError:
                pass
            if anyio.current_time() >= deadline:
                raise TimeoutError(f"timed out after {timeout_s} s waiting for freqtrade's ping")
            await anyio.sleep(0.1)

    async def wait_loops(self, loops: int, timeout_s: float) -> int:
        """Wait until ``/api/v1/health``'s ``last_process_ts`` has advanced ``loops``
        times (whole seconds: two loops within one second count once); returns it. An
        API that does not answer meanwhile (502 while the bot reloads its config) is
        asked again.

        Raises:
            TimeoutError: fewer advances within ``timeout_s``.
        """
        seen: list[int] = []

        async def advanced() -> int | None:
            ts = await _or_none(self.api.last_loop_ts())
            if ts is not None and (not seen or ts > seen[-1]):
                seen.append(ts)
            return seen[-1] if len(seen) > loops else None

        deadline = anyio.current_time() + timeout_s
        while (done := await advanced()) is None:
            if anyio.current_time() >= deadline:
                raise TimeoutError(f"timed out after {timeout_s} s waiting for {loops} bot loops")
            await anyio.sleep(0.1)
        return done

    async def wait_trades(self, count: int, timeout_s: float) -> int:
        """Until at least ``count`` trades were ever opened; returns the count (an API
        that does not answer meanwhile is asked again)."""
        found: list[int] = [0]

        async def enough() -> bool:
            counted = await _or_none(self.api.trade_count())
            found.append(found[-1] if counted is None else counted)
            return found[-1] >= count

        deadline = anyio.current_time() + timeout_s
        while not await enough():
            if anyio.current_time() >= deadline:
                raise TimeoutError(
                    f"timed out after {timeout_s} s waiting for {count} trades "
                    f"(last seen {found[-1]})"
                )
            await anyio.sleep(0.1)
        return found[-1]

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.bot.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> int | None:
        """SIGTERM (freqtrade finishes its loop and exits), then SIGKILL; the exit status."""
        await self.api.aclose()
        self.api = self.bot.api()
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        return await anyio.to_thread.run_sync(proc.stop, STOP_TIMEOUT_S, signal.SIGTERM)


async def _or_none(call: Awaitable[T]) -> T | None:
    """``call``'s answer, or None when the API did not answer (down, reloading: 502)."""
    try:
        return await call
    except (httpx.HTTPError, ValueError):
        return None
