"""A ccxt bot on a venue's own dialect: the kill, the venue's countdown, the lost answer.

The venue is the demo exchange speaking a real venue's REST dialect
(``params.venue``: ``binanceusdm``; :mod:`autoheal.demo.binance`), driven by ccxt's
own, unmodified class; the bot is :mod:`autoheal.demo.ccxt_trader` (a process) or
:class:`~autoheal.ccxt.GuardedExchange` in the drill (for the lost answer). Everything
is counted at the venue (``/admin/stats``), with each cancellation's reason.

* ``ccxt_host_dies``: three resting orders, the venue's countdown armed through
  ccxt (:class:`~autoheal.ccxt.CcxtCountdownPort`), then the trader is SIGKILLed.
  Nobody cancels for it: the venue's own countdown must empty the book within the
  countdown plus one refresh. Mutation: ``deadman = false`` (never armed).
* ``ccxt_kill``: a person's order placed at the venue by hand, three of the bot's;
  ``STOP.TXT`` appears. The bot cancels its own, reads the book again until none of
  them is left (``[kill] verified``), and leaves the person's alone; with the first
  cancel's answer lost (``first_cancel_fault``). Mutations: ``own_only = false`` (a
  kill that cancels everything) and ``verify = false`` (cancels once, never reads
  back; seen with a first cancel that fails).
* ``ccxt_unknown_outcome``: the venue books the order, then the answer is lost;
  the same order is asked for again: looked up by its client order id, returned,
  never sent again. Mutations: ``reconcile = false`` (a blind resend) and
  ``client_order_id = "random"`` (ids not derived from the order).
"""

from __future__ import annotations

import signal
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import anyio

from autoheal.ccxt import GuardedExchange
from autoheal.ccxt.identity import client_order_id
from autoheal.demo.ccxt_trader import KEY_ENV, PASSPHRASE_ENV, SECRET_ENV, make_exchange
from autoheal.drills.context import DrillContext, as_the_daemon_leaves_it
from autoheal.drills.stacks.exchange import Credentials, ExchangeHarness
from autoheal.drills.stacks.harness import Spawned, child_env, poll_until
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.errors import OrderOutcomeUnknownError
from autoheal.guard.gate import TradingGate
from autoheal.guard.idempotency import OrderLedger

__all__ = ["ccxt_host_dies", "ccxt_kill", "ccxt_unknown_outcome"]

SETUP_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Venue:
    """What a drill needs to know of one dialect."""

    ccxt_class: str
    symbol: str
    market_id: str
    create: str
    cancel: str
    lookup: str
    countdowns: str
    """The venue's countdowns in ``/admin/stats``."""
    qty: float
    """One order's size, in the venue's unit (OKX: contracts)."""
    passphrase: bool = False

    def armed(self, stats: dict[str, Any]) -> bool:
        return bool(stats[self.countdowns]["armed"])

    def fired(self, stats: dict[str, Any]) -> int:
        return int(stats[self.countdowns]["fired"])


VENUES = {
    "binanceusdm": Venue(
        "binanceusdm",
        "BTC/USDT:USDT",
        "BTCUSDT",
        create="POST /fapi/v1/order",
        cancel="DELETE /fapi/v1/order",
        lookup="GET /fapi/v1/order",
        countdowns="binance_countdowns",
        qty=0.01,
    ),
    "okx": Venue(
        "okx",
        "BTC/USDT:USDT",
        "BTC-USDT-SWAP",
        create="POST /api/v5/trade/batch-orders",  # ccxt's way of placing one order
        cancel="POST /api/v5/trade/cancel-order",
        lookup="GET /api/v5/trade/order",
        countdowns="okx_countdown",
        qty=1.0,
        passphrase=True,
    ),
}


def _venue(ctx: DrillContext) -> Venue:
    name = str(ctx.params.get("venue", "binanceusdm"))
    if name not in VENUES:
        raise ValueError(f"params.venue: {name!r} is not one of {', '.join(VENUES)}")
    ctx.details["venue"] = name
    return VENUES[name]


def _credentials(ctx: DrillContext, venue: Venue) -> Credentials:
    """This drill's API key and secret, and passphrase where the venue has one (made up,
    seeded: the venue and the bot share them)."""
    key, secret = f"drill{ctx.rng.getrandbits(128):032x}", f"{ctx.rng.getrandbits(256):064x}"
    if venue.passphrase:
        return key, secret, f"Pass{ctx.rng.getrandbits(64):016x}"
    return key, secret


def _env(creds: Credentials) -> dict[str, str]:
    env = {KEY_ENV: creds[0], SECRET_ENV: creds[1]}
    if len(creds) == 3:
        env[PASSPHRASE_ENV] = creds[2]
    return env


class _Trader(Spawned):
    def lines(self, needle: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if needle in line]


def _start_trader(
    ctx: DrillContext, ex: ExchangeHarness, venue: Venue, creds: Credentials, *extra: str
) -> _Trader:
    trader_dir = as_the_daemon_leaves_it(ctx.runtime_dir / "trader")
    argv = [
        sys.executable,
        "-m",
        "autoheal.demo.ccxt_trader",
        "--venue",
        venue.ccxt_class,
        "--url",
        ex.url,
        "--symbol",
        venue.symbol,
        "--runtime-dir",
        str(trader_dir),
        "--stop-file",
        str(trader_dir / "STOP.TXT"),
        "--resting",
        str(int(ctx.params.get("resting_orders", 3))),
        "--qty",
        f"{venue.qty:g}",
        *extra,
    ]
    ctx.details["trader_argv"] = argv[3:]
    trader = _Trader(
        argv, ctx.runtime_dir / "trader.log", env=child_env(_env(creds)), roster=ctx.processes
    )

    async def stop() -> Any:
        return await anyio.to_thread.run_sync(trader.stop, 5.0)

    ctx.add_rollback("stop_trader", stop)
    ctx.details["trader_pid"] = trader.pid
    return trader



async def _resting(ctx: DrillContext, ex: ExchangeHarness, trader: _Trader, want: int) -> None:
    async def enough() -> bool:
        if not trader.alive():
            raise RuntimeError(f"the ccxt trader exited; see {trader.log_path}")
        return len((await ex.stats())["open_orders"]) >= want

    if not await poll_until(enough, SETUP_TIMEOUT_S):
        raise RuntimeError(
            f"fewer than {want} resting orders after {SETUP_TIMEOUT_S}s; see {trader.log_path}"
        )


# -- the host dies ------------------------------------------------------------------------


async def ccxt_host_dies(ctx: DrillContext) -> None:
    """Resting orders, the venue's countdown armed through ccxt, then SIGKILL."""
    p = ctx.params
    venue = _venue(ctx)
    creds = _credentials(ctx, venue)
    ex = await ctx.start_exchange(credentials=creds)
    countdown = ctx.scaled(float(p.get("countdown_s", 120.0)))
    refresh = ctx.scaled(float(p.get("refresh_s", 30.0)))
    ctx.details.update(countdown_s=countdown, refresh_s=refresh)
    deadman = (
        ["--deadman-countdown", f"{countdown:.6f}", "--deadman-refresh", f"{refresh:.6f}"]
        if bool(p.get("deadman", True))
        else ["--no-deadman"]
    )
    trader = _start_trader(ctx, ex, venue, creds, *deadman)
    want = int(p.get("resting_orders", 3))
    await _resting(ctx, ex, trader, want)

    async def armed() -> bool:
        return venue.armed(await ex.stats())

    # A working switch shows armed; the mutant never arms: bounded, an observation.
    ctx.observe("countdown_armed_before_fault", bool(await poll_until(armed, 2 * refresh + 1.0)))
    stats = await ex.stats()
    ctx.observe("resting_before_fault", len(stats["open_orders"]))
    cancelled0 = len(stats["cancelled_orders"])
    status = await anyio.to_thread.run_sync(trader.kill)
    ctx.mark_fault()
    ctx.event("trader_killed")
    ctx.observe("trader_dead", status == -signal.SIGKILL)

    async def empty() -> bool:
        return not (await ex.stats())["open_orders"]

    if await poll_until(empty, ctx.scaled(float(p.get("observe_for_s", 180.0)))):
        ctx.event("book_empty")
    stats = await ex.stats()
    ctx.observe("open_after", len(stats["open_orders"]))
    ctx.observe(
        "cancel_reasons",
        sorted({str(o.get("cancel_reason")) for o in stats["cancelled_orders"][cancelled0:]}),
    )
    emptied = ctx.event_after_fault("book_empty")
    ctx.observe("empty_after_s", None if emptied is None else round(emptied, 3))
    ctx.observe("countdown_fired", venue.fired(stats) > 0)
    if "book_empty" in ctx.events:
        ctx.gate("venue_countdown_cancel_all")


# -- the kill on STOP.TXT -----------------------------------------------------------------


async def ccxt_kill(ctx: DrillContext) -> None:
    """A person's order and the bot's three; STOP.TXT: only the bot's cancelled, verified."""
    p = ctx.params
    venue = _venue(ctx)
    creds = _credentials(ctx, venue)
    ex = await ctx.start_exchange(credentials=creds)
    extra = ["--no-deadman", "--kill-within", f"{float(p.get('kill_within_s', 5.0)):g}"]
    if not bool(p.get("own_only", True)):
        extra.append("--kill-everything")
    if not bool(p.get("verify", True)):
        extra.append("--kill-unverified")
    by_hand = make_exchange(venue.ccxt_class, ex.url, _env(creds))
    try:
        manual = await by_hand.create_order(
            venue.symbol, "limit", "buy", venue.qty, 900.0, {"clientOrderId": "byhandalice01"}
        )
    finally:
        await by_hand.close()
    manual_cid = str(manual["clientOrderId"])
    ctx.details["manual_order"] = manual_cid
    trader = _start_trader(ctx, ex, venue, creds, *extra)
    want = int(p.get("resting_orders", 3))
    await _resting(ctx, ex, trader, want + 1)
    stats = await ex.stats()
    ctx.observe(
        "own_resting_before_fault",
        sum(o["client_order_id"] != manual_cid for o in stats["open_orders"]),
    )
    fault = str(p.get("first_cancel_fault", "accept_then_drop"))
    if fault != "none":
        await ex.set_fault(fault, paths=[venue.cancel], count=1)
    stop_file = ctx.runtime_dir / "trader" / "STOP.TXT"
    stop_file.write_text("drill ccxt_stop_cancels_only_own_orders: operator stop\n")
    ctx.mark_fault()

    async def own_gone() -> bool:
        open_now = (await ex.stats())["open_orders"]
        return all(o["client_order_id"] == manual_cid for o in open_now)

    if await poll_until(own_gone, ctx.scaled(float(p.get("observe_for_s", 60.0)))):
        ctx.event("own_orders_gone")
    # The trader's verdict, read from its log once it has had its say.
    await poll_until(
        lambda: _said(trader, "[kill] verified", "[kill] done", "[kill] INCOMPLETE"),
        float(p.get("kill_within_s", 5.0)) + 2.0,
    )
    stats = await ex.stats()
    open_now = stats["open_orders"]
    ctx.observe("own_open_after", sum(o["client_order_id"] != manual_cid for o in open_now))
    ctx.observe("manual_untouched", any(o["client_order_id"] == manual_cid for o in open_now))
    ctx.observe("kill_verified", bool(trader.lines("[kill] verified")))
    ctx.observe("cancel_calls", (stats.get("calls") or {}).get(venue.cancel, 0))
    ctx.observe("trader_alive", trader.alive())
    ctx.observe("trader_log", trader.lines("[kill]"))
    if "own_orders_gone" in ctx.events:
        ctx.gate("kill_own_orders")


async def _said(trader: _Trader, *needles: str) -> bool:
    text = trader.log_text()
    return any(n in text for n in needles)


# -- the lost answer ----------------------------------------------------------------------


class _BlindResend(GuardedExchange):
    """The mutation ``reconcile = false``: an unknown outcome is sent again, unasked."""

    async def _lookup(self, order: Any, name: str, cid: str) -> dict[str, Any] | None:
        return None


class _RandomIds(GuardedExchange):
    """The mutation ``client_order_id = "random"``: a fresh id per send."""

    async def _send(self, order: Any, name: str) -> dict[str, Any]:
        kept, self.prefix = self.prefix, "ah" + uuid.uuid4().hex[:6]
        try:
            return await super()._send(order, name)
        finally:
            self.prefix = kept  # the lookup still asks for the derived id


async def ccxt_unknown_outcome(ctx: DrillContext) -> None:
    """The venue books the order and the answer is lost; the repeats send nothing."""
    p = ctx.params
    venue = _venue(ctx)
    creds = _credentials(ctx, venue)
    ex = await ctx.start_exchange(credentials=creds)
    rt = as_the_daemon_leaves_it(ctx.runtime_dir / "bot")
    kind: type[GuardedExchange] = GuardedExchange
    if not bool(p.get("reconcile", True)):
        kind = _BlindResend
    if str(p.get("client_order_id", "derived")) == "random":
        kind = _RandomIds
    bot = kind(
        make_exchange(venue.ccxt_class, ex.url, _env(creds)),
        symbols=[venue.symbol],
        gate=TradingGate(rt, rt / "STOP.TXT"),
        ledger=OrderLedger(rt),
        breaker=CircuitBreaker(rt),
    )
    price, repeats = float(p.get("price", 1000.0)), int(p.get("repeats", 3))
    try:
        await bot.load_markets()  # a warm bot
        creates0 = await ex.calls(venue.create)
        lookups0 = await ex.calls(venue.lookup)
        await ex.set_fault("accept_then_drop", paths=[venue.create], count=1)
        ctx.mark_fault()
        sig: str | None = None
        try:
            await bot.create_order(venue.symbol, "limit", "buy", venue.qty, price)
        except OrderOutcomeUnknownError as exc:
            sig = exc.sig
            ctx.event("outcome_unknown")
        await ex.clear_fault()
        answers = []
        for _ in range(repeats):
            try:
                answers.append(
                    await bot.create_order(venue.symbol, "limit", "buy", venue.qty, price)
                )
            except Exception as exc:  # what the mutants run into: observed, not fatal
                answers.append({"error": type(exc).__name__, "detail": str(exc)[:200]})
        if sig is not None and bot.ledger.status(sig) == "placed":
            ctx.event("reconciled")
    finally:
        await bot.close()
    stats = await ex.stats()
    booked = [*stats["orders"], *stats["open_orders"], *stats["cancelled_orders"]]
    ctx.observe("orders_at_venue", len(booked))
    ctx.observe("order_requests_at_venue", await ex.calls(venue.create) - creates0)
    ctx.observe("lookups_at_venue", await ex.calls(venue.lookup) - lookups0)
    ctx.observe("ledger_status", None if sig is None else bot.ledger.status(sig))
    cid = None if sig is None else client_order_id("ah", sig)
    ctx.observe(
        "answers_are_the_booked_order",
        cid is not None and all(a.get("clientOrderId") == cid for a in answers),
    )
    ctx.details["client_order_id"] = cid
