"""The exchange's dead man's switch, for real: a demo trader process with resting orders.

Both drills start the fake exchange and the real demo trader
(``python -m autoheal.demo.trader --order-type limit --deadman-countdown C``), feed
it a moving price, and wait until its limit orders rest in the exchange's book and
its :class:`~autoheal.guard.deadman.DeadmanSwitch` has armed the exchange's
countdown. The countdown and its refresh are the runbook's (Binance: 120 s and
30 s) times the scenario's ``time_scale`` (1/60: 2 s and 0.5 s). Then:

* ``deadman_host_dies``: the trader runs under a real ``autoheal run`` (its only
  service, ``stop_signal = "SIGKILL"``), and autoheal is told to stop it (the
  operator's durable ``stop`` command): the daemon SIGKILLs it and does not restart
  it. Nobody cancels anything on the host's behalf: the exchange's own countdown
  must empty the book within the countdown plus one refresh. Mutation:
  ``deadman = false`` (the trader never arms the countdown) leaves the orders
  resting. (``supervised = false`` runs the trader bare and SIGKILLs it directly;
  ``stop_wait_s``, default 10, bounds the wait for the operator's stop.)
  With ``fault = "hang"`` (scenario ``host_hangs_with_resting_orders``, not in the
  default run) the trader is SIGSTOPped instead: alive, frozen, refreshing nothing.
* ``deadman_stop_file``: ``STOP.TXT`` appears; the trader stays up, stops
  refreshing and cancels all at once, long before the countdown could. Mutation:
  ``cancel_on_halt = false`` (the trader's cancel-all disabled) leaves the orders
  until the countdown, with the wrong cancel reason.

Everything is counted at the exchange (``/admin/stats``): the resting orders, and
for each cancelled one the exchange's reason (``countdown`` or ``cancel_all``).
"""

from __future__ import annotations

import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from autoheal.drills.context import DrillContext, as_the_daemon_leaves_it
from autoheal.drills.stacks.commands import queue_command
from autoheal.drills.stacks.demo import DaemonHarness, feed_prices
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.drills.stacks.harness import Spawned, poll_until
from autoheal.store import layout
from autoheal.store.atomic import read_json

__all__ = ["deadman_host_dies", "deadman_stop_file"]

ORDERS = "POST /api/orders"
#: Real seconds the setup may take (start a Python process, place the orders, arm).
SETUP_TIMEOUT_S = 10.0
#: Real seconds the operator's ``stop`` may take (``params.stop_wait_s``), and the bare
#: trader's grace after SIGTERM in the rollback.
STOP_WAIT_S = 10.0
TRADER_STOP_S = 5.0


class _Trader(Spawned):
    """The demo trader as a subprocess of the drill (in its roster), with its log file."""

    async def akill(self) -> int:
        return await anyio.to_thread.run_sync(self.kill)

    async def astop(self) -> int:
        """SIGCONT (it may be frozen), SIGTERM, wait up to 5 s, then SIGKILL (the rollback)."""
        return await anyio.to_thread.run_sync(partial(self.stop, TRADER_STOP_S, thaw=True))

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if needle in line]


def _policy(ctx: DrillContext) -> tuple[float, float]:
    p = ctx.params
    return ctx.scaled(float(p.get("countdown_s", 120.0))), ctx.scaled(float(p.get("refresh_s",
                                                                                   30.0)))


def _trader_args(ctx: DrillContext, ex: ExchangeHarness, *,
                 max_orders: int | None) -> list[str]:
    """The demo trader's options (after ``-m autoheal.demo.trader``), without its paths."""
    p = ctx.params
    countdown, refresh = _policy(ctx)
    args = ["--exchange", ex.url, "--symbol", str(p.get("symbol", "BTCUSDT")),
            "--qty", str(p.get("qty", 0.001)), "--interval", str(p.get("interval_s", 0.05)),
            "--heartbeat-interval", "0.2", "--http-timeout", "1.0", "--order-type", "limit",
            "--limit-offset-pct", str(p.get("limit_offset_pct", 1.0))]
    if max_orders is not None:
        args += ["--max-orders", str(max_orders)]
    if bool(p.get("deadman", True)):
        args += ["--deadman-countdown", f"{countdown:.6f}", "--deadman-refresh", f"{refresh:.6f}"]
    if not bool(p.get("cancel_on_halt", True)):
        args.append("--deadman-no-cancel")
    ctx.details["countdown_s"] = countdown
    ctx.details["refresh_s"] = refresh
    return args


def _start_trader(ctx: DrillContext, ex: ExchangeHarness, *, max_orders: int | None) -> _Trader:
    trader_dir = as_the_daemon_leaves_it(ctx.runtime_dir / "trader")  # a bare trader
    argv = [sys.executable, "-m", "autoheal.demo.trader", "--runtime-dir", str(trader_dir),
            "--stop-file", str(trader_dir / "STOP.TXT"),
            *_trader_args(ctx, ex, max_orders=max_orders)]
    ctx.details["trader_argv"] = argv[3:]
    trader = _Trader(argv, ctx.runtime_dir / "trader.log", roster=ctx.processes)

    async def stop() -> Any:
        return await trader.astop()

    ctx.add_rollback("stop_trader", stop)
    ctx.details["trader_pid"] = trader.pid
    return trader


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(_toml_str(i) for i in items) + "]"


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _feed(ctx: DrillContext, path: Path, symbol: str) -> None:
    """A fresh, moving price every 50 ms (the feeder's file), so no signal is a duplicate."""
    await feed_prices(path, symbol, ctx.rng, every_s=0.05)


async def _start_supervised(ctx: DrillContext, ex: ExchangeHarness,
                            max_orders: int) -> tuple[DaemonHarness, Path]:
    """``autoheal run`` with the trader as its one service (stopped with SIGKILL)."""
    home = ctx.runtime_dir / "autoheal"
    home.mkdir(parents=True, exist_ok=True)
    argv = ["{python}", "-m", "autoheal.demo.trader", "--runtime-dir", "{runtime_dir}",
            "--stop-file", "{stop_file}", *_trader_args(ctx, ex, max_orders=max_orders)]
    config = home / "autoheal.toml"
    config.write_text(f"""# written by the host_dies_with_resting_orders drill
environment = "paper"

[paths]
runtime_dir = "shared_data"
stop_file = "STOP.TXT"

[daemon]
heartbeat_interval = "200ms"

[services.trader]
argv = {_toml_list(argv)}
stop_signal = "SIGKILL"    # "the host dies": no chance to clean up
stop_timeout = "1s"

[[services.trader.probes]]
kind = "process"

[[services.trader.probes]]
kind = "heartbeat"
interval = "200ms"
max_age = "1s"
""")
    shared = home / "shared_data"
    shared.mkdir(exist_ok=True)
    daemon = DaemonHarness(config, shared, ctx.runtime_dir / "daemon.log", roster=ctx.processes)
    daemon.start()

    async def stop() -> Any:
        return await daemon.stop()

    ctx.add_rollback("stop_daemon", stop)
    ctx.details["daemon_pid"] = daemon.pid
    return daemon, shared


async def _operator_stop(shared: Path, service: str, timeout_s: float) -> str:
    """The operator's durable ``stop`` command (what ``autoheal stop`` submits); its status
    (``pending`` or ``claimed`` when the daemon did not finish it within ``timeout_s``)."""
    command = await queue_command(
        shared, "stop", service, {"reason": "drill: host dies"}, timeout_s=timeout_s
    )
    return str(command.status)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True



async def _setup(ctx: DrillContext, trader: _Trader | DaemonHarness,
                 ex: ExchangeHarness) -> dict[str, Any]:
    """Wait until ``resting_orders`` rest and (if the trader arms it) the countdown is armed."""
    want = int(ctx.params.get("resting_orders", 3))
    started = anyio.current_time()

    async def resting() -> dict[str, Any] | None:
        if not trader.alive():
            raise RuntimeError(f"the trader (or its daemon) exited; see {trader.log_path}")
        stats = await ex.stats()
        return stats if len(stats["open_orders"]) >= want else None

    stats = await poll_until(resting, SETUP_TIMEOUT_S)
    if stats is None:
        raise RuntimeError(f"fewer than {want} resting orders after {SETUP_TIMEOUT_S}s; see "
                           f"{trader.log_path}")
    # Armed is what a working switch shows; the mutated trader never arms, so this wait
    # is bounded by two refreshes and its result is an observation, not a precondition.
    _countdown, refresh = _policy(ctx)

    async def armed() -> dict[str, Any] | None:
        doc = await ex.stats()
        return doc if doc["countdown"]["armed"] else None

    stats = await poll_until(armed, 2 * refresh) or await ex.stats()
    ctx.details["setup_s"] = round(anyio.current_time() - started, 3)
    ctx.observe("resting_before_fault", len(stats["open_orders"]))
    ctx.observe("countdown_armed_before_fault", bool(stats["countdown"]["armed"]))
    return stats


async def _watch_book(ctx: DrillContext, ex: ExchangeHarness, observe_s: float,
                      cancelled0: int) -> None:
    """Poll the exchange's book from the fault on until it is empty or ``observe_s`` passed."""

    async def empty() -> bool:
        return not (await ex.stats())["open_orders"]

    if await poll_until(empty, observe_s):
        ctx.event("book_empty")
    stats = await ex.stats()
    ctx.observe("open_after", len(stats["open_orders"]))
    reasons = {str(o.get("cancel_reason")) for o in stats["cancelled_orders"][cancelled0:]}
    ctx.observe("cancel_reasons", sorted(reasons))
    emptied = ctx.event_after_fault("book_empty")
    ctx.observe("empty_after_s", None if emptied is None else round(emptied, 3))


async def deadman_host_dies(ctx: DrillContext) -> None:
    """Resting orders, then the trader dies (SIGKILL) or freezes (SIGSTOP), nothing restarts
    it: the exchange's own countdown empties the book."""
    p = ctx.params
    ex = await ctx.start_exchange()
    symbol = str(p.get("symbol", "BTCUSDT"))
    hang = str(p.get("fault", "kill")) == "hang"
    supervised = bool(p.get("supervised", True)) and not hang
    max_orders = int(p.get("resting_orders", 3))
    async with anyio.create_task_group() as feed:
        if supervised:
            daemon, shared = await _start_supervised(ctx, ex, max_orders)
            feed.start_soon(_feed, ctx, shared / "prices.json", symbol)
            stats = await _setup(ctx, daemon, ex)
        else:
            feed.start_soon(_feed, ctx, ctx.runtime_dir / "trader" / "prices.json", symbol)
            trader = _start_trader(ctx, ex, max_orders=max_orders)
            stats = await _setup(ctx, trader, ex)
        feed.cancel_scope.cancel()
    if supervised:
        pid = _service_pid(shared)
        if pid is None:
            raise RuntimeError("the daemon's health document names no trader pid")
        ctx.details["trader_pid"] = pid
        # The daemon's service is the drill's too: should the stop below fail and the
        # daemon be gone before it could stop the trader, the teardown still reaps it.
        ctx.processes.add(pid, "trader (the daemon's service)")
        ctx.mark_fault()
        stop_wait = float(p.get("stop_wait_s", STOP_WAIT_S))
        ctx.observe("operator_stop", await _operator_stop(shared, "trader", stop_wait))
        if not _pid_alive(pid):
            ctx.event("trader_killed")
        ctx.observe("trader_dead", not _pid_alive(pid))
    elif hang:
        trader.send(signal.SIGSTOP)  # alive and frozen: its loop refreshes nothing
        ctx.mark_fault()
        ctx.event("trader_frozen")
    else:
        status = await trader.akill()
        ctx.mark_fault()
        ctx.event("trader_killed")
        ctx.observe("trader_dead", status == -signal.SIGKILL)
    await _watch_book(ctx, ex, ctx.scaled(float(p.get("observe_for_s", 180.0))),
                      len(stats["cancelled_orders"]))
    if supervised:
        pid_now = _service_pid(shared)
        ctx.observe("trader_process_alive", pid_now is not None and _pid_alive(pid_now))
        ctx.observe("daemon_alive", daemon.alive())
    else:
        ctx.observe("trader_process_alive", trader.alive())
    if "book_empty" in ctx.events:
        ctx.gate("exchange_countdown_cancel_all")


def _service_pid(shared: Path) -> int | None:
    """The trader's pid as the daemon's health document reports it (``None``: not running)."""
    doc = read_json(shared / layout.HEALTH).doc or {}
    pid = ((doc.get("components") or {}).get("trader") or {}).get("pid")
    return pid if isinstance(pid, int) and pid > 0 else None


async def deadman_stop_file(ctx: DrillContext) -> None:
    """Resting orders, then ``STOP.TXT``: the trader cancels all at once and places nothing."""
    p = ctx.params
    ex = await ctx.start_exchange()
    symbol = str(p.get("symbol", "BTCUSDT"))
    stop_file = ctx.runtime_dir / "trader" / "STOP.TXT"
    async with anyio.create_task_group() as feed:
        feed.start_soon(_feed, ctx, ctx.runtime_dir / "trader" / "prices.json", symbol)
        trader = _start_trader(ctx, ex, max_orders=None)  # keeps trading until STOP.TXT
        stats = await _setup(ctx, trader, ex)
        stop_file.write_text("drill deadman_stop_file: operator stop\n")
        ctx.mark_fault()
        await _watch_book(ctx, ex, ctx.scaled(float(p.get("observe_for_s", 180.0))),
                          len(stats["cancelled_orders"]))
        # Orders sent from one trader interval after the stop on (one already past the
        # gate may land); checked while prices keep moving, so only the gate can stop them.
        orders0 = await ex.calls(ORDERS)
        await anyio.sleep(ctx.scaled(float(p.get("quiet_for_s", 30.0))))
        ctx.observe("orders_after_stop", await ex.calls(ORDERS) - orders0)
        ctx.observe("open_after_quiet", len((await ex.stats())["open_orders"]))
        feed.cancel_scope.cancel()
    ctx.observe("trader_alive", trader.alive())
    ctx.observe("trader_log", trader.lines("[deadman]"))
    if "book_empty" in ctx.events:
        ctx.gate("deadman_cancel_all")
