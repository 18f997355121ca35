"""A real freqtrade bot (dry-run) supervised by a real daemon with the shipped recipe.

The stack: the demo exchange (its Binance spot dialect), a bot written by
:func:`~autoheal.drills.stacks.freqtrade.write_bot` (the drills' strategy, with
:class:`~autoheal.guard.freqtrade.AutohealEntryGuard` unless ``guard = false``), and
``autoheal run`` on ``config/examples/freqtrade.toml`` as shipped, with only the
bot's argv and port, the exchange's URL, the runtime directory and the pair and
timeframe swapped in (:func:`render_recipe`). Nothing is time-scaled: the bounds come
from the recipe's own settings.

``params.fault`` picks the drill:

* ``kill``: SIGKILL the bot. It is restarted once and its API is healthy again.
  Mutation: ``policy = { max_restarts = 0 }`` (the daemon gives up).
* ``hang``: SIGSTOP the bot. Its health check times out (the API lives in the stopped
  process), two failed checks in a row restart it, within
  ``failures_before_restart x interval + timeout`` (the recipe's numbers) plus the
  stop. Mutation: ``policy = { failures_before_restart = 1000 }``.
* ``stop_file``: an operator's ``STOP.TXT``. No new trade opens (counted in trades and
  the bot's loops), the daemon pauses then stops the bot through its API. Mutation:
  ``guard = false, bot_api = false`` (nothing between the kill switch and the bot).
* ``outage``: the exchange goes down. The dependency fails, the runtime is DEGRADED,
  and ``stopentry`` reaches the bot within 1 s of that mode change (journal times);
  after recovery ``/start`` resumes the entries. Then the operator pauses the bot by
  hand and the outage comes again: autoheal finds the pause in effect, sends nothing,
  and leaves the operator's pause in place after the recovery. Mutation:
  ``bot_api = false``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson

from autoheal.drills.context import DrillContext
from autoheal.drills.errors import StackError
from autoheal.drills.stacks.freqtrade import (
    BotSettings,
    FreqtradeApi,
    FreqtradeBot,
    freqtrade_missing,
    write_bot,
)
from autoheal.drills.stacks.harness import DaemonProcess, child_env, poll_until
from autoheal.store import layout
from autoheal.store.atomic import read_json
from autoheal.store.journal import Journal

__all__ = ["GUARDED_STRATEGY", "freqtrade_drill", "recipe_path", "render_recipe"]

#: The drills' strategy with the mixin (``freqtrade_strategy.py``).
GUARDED_STRATEGY = "AutohealGuardedStrategy"
PLAIN_STRATEGY = "AutohealDemoStrategy"
SERVICE = "freqtrade"
AUTH_ENV = "FREQTRADE_API_AUTH"
SETUP_TIMEOUT_S = 120.0


def recipe_path() -> Path:
    """``config/examples/freqtrade.toml``: in the wheel (``autoheal/examples``), else
    in the checkout the package runs from."""
    package = Path(__file__).resolve().parents[2]
    shipped = package / "examples" / "freqtrade.toml"
    if shipped.is_file():
        return shipped
    return package.parents[1] / "config" / "examples" / "freqtrade.toml"


def _toml(value: str) -> str:
    return orjson.dumps(value).decode()  # a JSON string is a TOML basic string


def render_recipe(
    text: str,
    *,
    runtime_dir: Path,
    argv: list[str],
    api_url: str,
    exchange_url: str,
    pair: str,
    timeframe: str,
    policy: dict[str, Any] | None = None,
    bot_api: bool = True,
) -> str:
    """The recipe with this stack's places swapped in; each must be found as shipped,
    so the recipe and its drills cannot drift apart unnoticed.

    Raises:
        StackError: the recipe no longer holds one of the lines swapped.
    """
    minutes = int(timeframe.removesuffix("m"))
    swaps = [
        ('runtime_dir = "shared_data"', f"runtime_dir = {_toml(str(runtime_dir))}"),
        (
            'argv = ["freqtrade", "trade", "--config", "user_data/config.json", '
            '"--strategy", "MyStrategy"]',
            "argv = [" + ", ".join(_toml(a) for a in argv) + "]",
        ),
        ("http://127.0.0.1:8080", api_url),
        ("https://api.binance.com", exchange_url),
        ("pair=BTC/USDT&timeframe=5m", f"pair={pair}&timeframe={timeframe}"),
        ('max_age = "15m"', f'max_age = "{3 * minutes}m"'),
    ]
    for old, new in swaps:
        if old not in text:
            raise StackError(f"the freqtrade recipe no longer holds {old!r}")
        text = text.replace(old, new)
    if not bot_api:
        at = text.find("\n[bot_api]")
        if at < 0:
            raise StackError("the freqtrade recipe has no [bot_api] table")
        text = text[:at] + "\n"
    if policy:
        lines = [f"{k} = {orjson.dumps(v).decode()}" for k, v in policy.items()]
        text += "\n[policy]\n" + "\n".join(lines) + "\n"
    return text


class _Stack:
    """The exchange, the bot's files, the daemon; what the drill reads."""

    def __init__(self, ctx: DrillContext, bot: FreqtradeBot, runtime_dir: Path) -> None:
        self.ctx = ctx
        self.bot = bot
        self.api: FreqtradeApi = bot.api(timeout_s=2.0)
        self.runtime_dir = runtime_dir
        self.stop_file = runtime_dir.parent / "STOP.TXT"

    def health(self) -> dict[str, Any]:
        doc = read_json(self.runtime_dir / layout.HEALTH).doc
        return doc if isinstance(doc, dict) else {}

    def component(self) -> dict[str, Any]:
        comp = self.health().get("components", {}).get(SERVICE, {})
        return comp if isinstance(comp, dict) else {}

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Journal events of ``kind``: ``ts``, ``reason`` and the data's keys."""
        journal = Journal.open(self.runtime_dir)
        try:
            rows = journal.query(
                "SELECT ts, reason, data FROM events WHERE kind = ? ORDER BY id", (kind,)
            )
        finally:
            journal.close()
        out = []
        for row in rows:
            data = orjson.loads(row["data"]) if row["data"] else {}
            out.append({"ts": row["ts"], "reason": row["reason"], **data})
        return out

    async def ask(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """One API call; None when the bot does not answer (restarting, stopped)."""
        try:
            return await call()
        except (httpx.HTTPError, ValueError, KeyError):
            return None


async def _start(ctx: DrillContext) -> _Stack:
    missing = freqtrade_missing()
    if missing is not None:
        raise StackError(f"the freqtrade drills need freqtrade: {missing}")
    p = ctx.params
    ex = await ctx.start_exchange()
    guard = bool(p.get("guard", True))
    settings = BotSettings(strategy=GUARDED_STRATEGY if guard else PLAIN_STRATEGY)
    bot = write_bot(ctx.runtime_dir / "bot", ex.url, settings)
    runtime_dir = ctx.runtime_dir / "autoheal" / "shared_data"
    runtime_dir.mkdir(parents=True)
    config = ctx.runtime_dir / "autoheal" / "autoheal.toml"
    config.write_text(
        render_recipe(
            recipe_path().read_text(encoding="utf-8"),
            runtime_dir=runtime_dir,
            argv=bot.argv,
            api_url=bot.api_url,
            exchange_url=ex.url,
            pair=settings.pairs[0],
            timeframe="1m",
            policy=dict(p.get("policy", {})),
            bot_api=bool(p.get("bot_api", True)),
        )
    )
    ctx.details.update(
        config=str(config), strategy=settings.strategy, bot_api=p.get("bot_api", True)
    )
    env = child_env({AUTH_ENV: f"{bot.username}:{bot.password}"})
    daemon = DaemonProcess(config, ctx.runtime_dir / "daemon.log", env=env, roster=ctx.processes)

    async def stop_daemon() -> Any:
        return await anyio.to_thread.run_sync(daemon.stop)

    ctx.add_rollback("stop_daemon", stop_daemon)
    stack = _Stack(ctx, bot, runtime_dir)

    async def trading() -> bool:
        if not daemon.alive():
            raise StackError(f"the daemon exited; see {daemon.log_path}")
        count = await stack.ask(stack.api.trade_count)
        return bool(stack.health().get("dor")) and bool(count)

    if not await poll_until(trading, SETUP_TIMEOUT_S):
        raise StackError(
            f"no trading freqtrade under the daemon after {SETUP_TIMEOUT_S:g}s; "
            f"see {daemon.log_path} and {bot.log_path}"
        )
    ctx.details["bot_pid"] = stack.component().get("pid")
    ctx.details["daemon_pid"] = daemon.pid
    return stack


def _probe(config_text: str, name: str, key: str) -> float:
    """A number from the rendered recipe's probe ``name`` (seconds for durations)."""
    import tomllib

    from autoheal.core.durations import parse_duration

    doc = tomllib.loads(config_text)
    for probe in doc["services"][SERVICE]["probes"]:
        if probe.get("name") == name:
            return float(parse_duration(probe[key]))
    raise StackError(f"the recipe has no {name} probe")


async def _restarted_and_healthy(ctx: DrillContext, stack: _Stack, restarts0: int) -> None:
    """Events ``restarted`` (the daemon's count moved) and ``api_healthy`` (the bot
    answers and its loop runs again), within ``observe_for_s``."""
    observe = float(ctx.params.get("observe_for_s", 30.0))
    healthy_for = float(ctx.params.get("healthy_for_s", 45.0))

    async def restarted() -> str:
        health = stack.health()
        comp = health.get("components", {}).get(SERVICE, {})
        if comp.get("reason"):
            ctx.event("detected")
        if int(comp.get("restarts") or 0) > restarts0:
            return "restarted"
        # Nothing restarts inside a failsafe: no need to wait the window out.
        return "failsafe" if health.get("failsafe") else ""

    if await poll_until(restarted, observe) == "restarted":
        ctx.event("restarted")
        first = await stack.ask(stack.api.last_loop_ts)

        async def healthy() -> bool:
            ts = await stack.ask(stack.api.last_loop_ts)
            return ts is not None and (first is None or ts > first)

        if await poll_until(healthy, healthy_for):
            ctx.event("api_healthy")
    comp = stack.component()
    ctx.observe("restarts_added", int(comp.get("restarts") or 0) - restarts0)
    ctx.observe("stop_file_present", stack.stop_file.exists())
    ctx.observe("bot_pid_changed", comp.get("pid") not in (None, ctx.details.get("bot_pid")))


async def _kill(ctx: DrillContext, stack: _Stack, sig: signal.Signals) -> float:
    """Send ``sig`` to the bot, then watch it restarted; returns the wall time sent."""
    pid = ctx.details.get("bot_pid")
    if not isinstance(pid, int):
        raise StackError("the health document names no freqtrade pid")
    restarts0 = int(stack.component().get("restarts") or 0)
    sent = time.time()
    os.kill(pid, sig)
    ctx.mark_fault()
    ctx.event(f"bot_{sig.name.lower()}")
    await _restarted_and_healthy(ctx, stack, restarts0)
    return sent


async def _kill_drill(ctx: DrillContext, stack: _Stack) -> None:
    await _kill(ctx, stack, signal.SIGKILL)


async def _hang_drill(ctx: DrillContext, stack: _Stack) -> None:
    text = Path(ctx.details["config"]).read_text(encoding="utf-8")
    interval = _probe(text, "health", "interval")
    timeout = _probe(text, "health", "timeout")
    failures = int(dict(ctx.params.get("policy", {})).get("failures_before_restart", 2))
    bound = failures * interval + timeout
    ctx.details.update(health_interval_s=interval, health_timeout_s=timeout, bound_s=bound)
    ctx.observe("restart_bound_s", bound)
    sent = await _kill(ctx, stack, signal.SIGSTOP)
    # When the restart was decided: the journal's stage transition to RESTART.
    moves = [
        e for e in stack.events("stage_transition") if e.get("to") == "RESTART" and e["ts"] >= sent
    ]
    decided = round(moves[0]["ts"] - sent, 3) if moves else None
    ctx.observe("restart_decided_after_s", decided)
    # One second for scheduling: a check starts on its tick, not on the SIGSTOP.
    ctx.observe("restart_within_bound", decided is not None and decided <= bound + 1.0)


def _new_trades(trades: list[dict[str, Any]], after_ms: float) -> int:
    return sum(1 for t in trades if float(t.get("open_timestamp") or 0) > after_ms)


async def _all_trades(stack: _Stack) -> list[dict[str, Any]]:
    open_ = await stack.ask(stack.api.open_trades) or []
    closed = await stack.ask(lambda: stack.api.closed_trades(limit=500)) or []
    return [*open_, *closed]


async def _stop_file_drill(ctx: DrillContext, stack: _Stack) -> None:
    observe = float(ctx.params.get("observe_for_s", 15.0))
    loops0 = await stack.ask(stack.api.last_loop_ts)
    stack.stop_file.write_text("drill freqtrade_stop_file: operator stop\n")
    at_ms = time.time() * 1000.0
    ctx.mark_fault()

    async def stopped() -> bool:
        return bool(await stack.ask(stack.api.state) == "stopped")

    if await poll_until(stopped, observe):
        ctx.event("bot_stopped")
    # Keep watching for new trades for the whole window, stopped or not.
    end = anyio.current_time() + max(0.0, observe - (ctx.event_after_fault("bot_stopped") or 0))
    while anyio.current_time() < end:
        await anyio.sleep(0.25)
    trades = await _all_trades(stack)
    # An entry already past the gate when STOP.TXT appeared is stamped within
    # milliseconds: 0.5 s later nothing may open.
    ctx.observe("new_trades_after_stop", _new_trades(trades, at_ms + 500.0))
    loops = await stack.ask(stack.api.last_loop_ts)
    ctx.observe(
        "bot_loop_s_after_stop", None if loops is None or loops0 is None else loops - loops0
    )
    ctx.observe("bot_state_at_end", await stack.ask(stack.api.state))
    ctx.observe("failsafe", bool(stack.health().get("failsafe")))


async def _outage_once(
    ctx: DrillContext, stack: _Stack, phase: str, down_s: float, observe: float
) -> dict[str, Any]:
    """One outage of ``down_s``; what the bot's state and the journal said."""
    ex = ctx.exchange
    assert ex is not None
    since = time.time()
    await ex.set_fault("down")
    ctx.mark_fault()

    async def degraded() -> bool:
        return "exchange" in (stack.health().get("failing_components") or [])

    seen: dict[str, Any] = {"degraded": bool(await poll_until(degraded, observe))}
    if seen["degraded"]:
        ctx.event(f"{phase}_degraded")
    await anyio.sleep(down_s)
    seen["state_during"] = await stack.ask(stack.api.state)
    await ex.clear_fault()

    async def recovered() -> bool:
        return bool(stack.health().get("dor"))

    seen["recovered"] = bool(await poll_until(recovered, observe))
    await anyio.sleep(2.0)  # the undo, if any, and a loop or two
    seen["state_after"] = await stack.ask(stack.api.state)
    notices = [e for e in stack.events("notice") if e["ts"] >= since]
    calls = [e for e in stack.events("bot_api_call") if e["ts"] >= since]
    mode_at = next((e["ts"] for e in notices if e.get("kind") == "degraded"), None)
    pause = next((e for e in calls if e.get("call") == "stopentry" and not e.get("undo")), None)
    seen["stopentry_outcome"] = None if pause is None else pause.get("outcome")
    seen["stopentry_after_mode_s"] = (
        None if pause is None or mode_at is None else round(pause["ts"] - mode_at, 3)
    )
    seen["undos"] = [e.get("path") for e in calls if e.get("undo")]
    return seen


async def _outage_drill(ctx: DrillContext, stack: _Stack) -> None:
    p = ctx.params
    down_s, observe = float(p.get("down_s", 4.0)), float(p.get("observe_for_s", 20.0))
    first = await _outage_once(ctx, stack, "first", down_s, observe)
    ctx.details["first_outage"] = first
    ctx.observe("stopentry_after_mode_change_s", first["stopentry_after_mode_s"])
    ctx.observe("state_during_outage", first["state_during"])
    ctx.observe("state_after_recovery", first["state_after"])
    count0 = await stack.ask(stack.api.trade_count) or 0

    async def trading_again() -> bool:
        return int(await stack.ask(stack.api.trade_count) or 0) > count0

    ctx.observe("entries_resumed", bool(await poll_until(trading_again, observe)))
    # The operator's own pause, then the same outage: autoheal must leave it alone.
    await stack.ask(stack.api.stopentry)
    second = await _outage_once(ctx, stack, "second", down_s, observe)
    ctx.details["second_outage"] = second
    ctx.observe("operator_pause_sent_again", second["stopentry_outcome"] not in (None, "in_effect"))
    ctx.observe("operator_pause_undone", bool(second["undos"]))
    ctx.observe("state_after_second_recovery", second["state_after"])


_DRILLS = {
    "kill": _kill_drill,
    "hang": _hang_drill,
    "stop_file": _stop_file_drill,
    "outage": _outage_drill,
}


async def freqtrade_drill(ctx: DrillContext) -> None:
    """Run the drill ``params.fault`` names (see the module docstring)."""
    fault = str(ctx.params.get("fault", ""))
    if fault not in _DRILLS:
        raise ValueError(f"params.fault: {fault!r} is not one of {', '.join(_DRILLS)}")
    stack = await _start(ctx)
    try:
        await _DRILLS[fault](ctx, stack)
    finally:
        await stack.api.aclose()
