"""The ``daemon`` kind: runbook drills played against a real ``autoheal run --chaos`` stack.

The stack (:class:`~autoheal.drills.stacks.demo.DemoStack`): the fake exchange and a
fault proxy in front of it on OS-picked ports, a config rendered from a template
with the runbook policy scaled by ``time_scale``, and the daemon in chaos mode.
Faults go through the daemon's command queue, so they are real and journaled.

A scenario of this kind says (all keys under ``[params]``)::

    config = "daemon_demo.toml.in"   # template: absolute, beside the scenario, or shipped
    fault = "kill"                   # kill | stall | netcut | latency | fail_on_start
                                     # | feed_freeze | feed_skip (the exchange's stream)
    target = "feeder"                # the service, or the dependency for netcut/latency
    fault_for_s = 60                 # runbook seconds the fault lasts (scaled)
    latency_ms = 2000                # latency only (not scaled: it is what is measured)
    observe_for_s = 120              # runbook seconds to wait for every watch (scaled)
    policy_overrides = {}            # [policy] keys set as given (mutation tests)
    feeder_args = [] / trader_args = []   # extra argv (mutation: ["--no-gate"])
    fault_args = ["--fail-on-start"] # fail_on_start: appended to target's argv, then reload
    vars = { rest_timeout = "3s" }   # more template markers
    orders_after = "failsafe"        # count exchange orders from this event on ...
    orders_window_s = 1.6            # ... over this many drill seconds
    feed_prices = true               # keep prices.json moving from the fault on (see below)
    symbol = "ETHUSDT"               # feed_freeze / feed_skip: the symbol of the stream fault
    skip = 3                         # feed_skip: sequence numbers the exchange leaves out, once
    wait_orders = true               # wait for an order before the fault (false: no trader)

The stream faults go to the drill's own exchange (``POST /admin/feed``), not through
the daemon: ``feed_freeze`` repeats the symbol's last event (same exchange time and
sequence number) for ``fault_for_s`` while the socket stays open, then lets it move
again; ``feed_skip`` makes its next event jump ``skip`` sequence numbers.

    [[params.watch]]                 # an event: the first time a predicate holds on
    event = "detected"               # health_v2.json, optionally only after another
    path = "failing_components"      # event; ``record`` keeps values of that document
    op = "contains"
    value = "feeder"
    record = { failing_at_detect = "failing_components" }

A watch's ``path`` (and its ``record`` paths) may also read what the trading processes
obey, beside the health document: ``global_flags.<key>`` is ``global_flags.json`` as
the guard reads it (``mode``, ``failsafe_active``, ``reason``; ``global_flags.mode`` is
the read's failure reason, e.g. ``flags_invalid``, when it cannot be read), and
``gate.buy`` / ``gate.sell`` are the reasons a real :class:`~autoheal.guard.gate.TradingGate`
on the runtime directory gives for a new buy and a position-reducing sell (``ok`` when
allowed, ``degraded`` when paused, ``failsafe_active``, ...). The outage drills use
them to check, while the fault lasts, that buys are refused and sells still go through.

With a target (``--target CONFIG``, :mod:`autoheal.drills.stacks.target`) no stack is
started: the fault goes through the target's own queue and the target's health is
watched; ``orders_before_fault`` and ``new_orders_after_*`` are then not recorded and
the criteria on them are skipped.

Observations every drill of this kind records for its criteria: ``orders_before_fault``,
``restarts_added`` (all services, from the fault to the end), ``stop_file_present``,
``flags_failsafe_active``, ``flags_mode``, ``gate_buy_at_end`` and ``gate_sell_at_end``
(a real trading gate's reasons, ``ok`` when allowed), ``notifications`` (lines in
``notifications.log``), ``notification_kinds``, ``final_dor``, ``daemon_alive`` and,
with ``orders_after``, ``new_orders_after_<event>``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson

from autoheal.drills.context import DrillContext
from autoheal.drills.errors import DrillUnavailableError
from autoheal.drills.evaluate import MISSING, holds
from autoheal.drills.stacks.demo import DemoStack, feed_prices
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.drills.stacks.target import TargetStack
from autoheal.guard.gate import TradingGate
from autoheal.store import layout
from autoheal.store.flags import read_flags, stop_file_present

__all__ = ["daemon", "lookup", "watches_fired"]

POLL_S = 0.05
#: How long past its deadline an event is still waited for (for the report only).
OVERDUE_GRACE_S = 0.5


def lookup(doc: Mapping[str, Any], dotted: str) -> Any:
    """``components.feeder.stage`` in a nested document, or :data:`MISSING`."""
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def watches_fired(doc: Mapping[str, Any], watches: Sequence[Mapping[str, Any]],
                  seen: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The events whose predicate holds on this health document (pure).

    A watch with ``after = "<event>"`` counts only once that event was seen (in ``seen``
    or earlier in this same document's list), so ``dor_back`` means back *after* the fault.
    """
    fired: list[str] = []
    for w in watches:
        after = w.get("after")
        if after is not None and after not in seen and after not in fired:
            continue
        if holds(str(w.get("op", "==")), lookup(doc, str(w["path"])), w.get("value")):
            fired.append(str(w["event"]))
    return fired


Stack = DemoStack | TargetStack
#: Roots a watch path may start with besides the health document's own keys.
FLAGS_ROOT, GATE_ROOT = "global_flags", "gate"


def _paths(watches: Sequence[Mapping[str, Any]]) -> set[str]:
    out = {str(w.get("path", "")) for w in watches}
    for w in watches:
        out.update(str(v) for v in dict(w.get("record", {})).values())
    return out


def _flags_view(shared: Path) -> dict[str, Any]:
    """``global_flags.json`` as the guard reads it; an unreadable file names its reason."""
    read = read_flags(shared)
    if read.flags is None:
        return {"mode": read.reason, "failsafe_active": read.reason, "reason": read.detail}
    return read.flags.to_doc()


def _gate_view(gate: TradingGate) -> dict[str, str]:
    """What a real trading gate says now for the runtime as a whole: the reason for a new
    buy and for an exit (``ok`` when allowed).

    No symbol is named: a symbol's own circuit breaker, which the demo trader may open
    on its slow or failing calls, is the trader's business, not the daemon's.
    """
    return {"buy": gate.allowed("buy")[1],
            "sell": gate.allowed("sell", reduces_position=True)[1]}


def trading_dir(ctx: DrillContext, stack: Stack) -> tuple[Path, Path]:
    """The runtime directory and ``STOP.TXT`` the trading side reads: the daemon's.

    ``params.trading_runtime_dir`` (relative to the drill's directory) is a mutation
    hook only: trading processes that read another directory than the one the daemon
    writes (a relative path resolved from the wrong working directory), so that the
    flags and gate criteria can be shown to fail while everything else holds.
    """
    other = str(ctx.params.get("trading_runtime_dir", ""))
    if not other:
        return stack.shared, stack.stop_file
    rt = ctx.runtime_dir / other
    rt.mkdir(parents=True, exist_ok=True)
    return rt, rt / "STOP.TXT"


def trading_gate(ctx: DrillContext, stack: Stack) -> TradingGate:
    """A trading gate on the trading side's runtime directory and kill switch (reads only)."""
    return TradingGate(*trading_dir(ctx, stack))


def view(ctx: DrillContext, stack: Stack, watches: Sequence[Mapping[str, Any]],
         gate: TradingGate) -> dict[str, Any]:
    """The health document, plus the flags and the gate's answers when a watch reads them."""
    doc = stack.health()
    paths = _paths(watches)
    if any(p.split(".", 1)[0] == FLAGS_ROOT for p in paths):
        doc = {**doc, FLAGS_ROOT: _flags_view(trading_dir(ctx, stack)[0])}
    if any(p.split(".", 1)[0] == GATE_ROOT for p in paths):
        doc = {**doc, GATE_ROOT: _gate_view(gate)}
    return doc


def _all_overdue(ctx: DrillContext, pending: set[str]) -> bool:
    """Every pending event has an expectation whose deadline has passed: seen now or
    never, each fails the same, so waiting on cannot change the verdict."""
    if ctx.fault_at is None:
        return False
    deadlines = {e.event: ctx.scaled(e.within_s) + e.slack_s for e in ctx.scenario.expect}
    if not pending <= deadlines.keys():
        return False
    since = ctx.time_fn() - ctx.fault_at
    return all(since > deadlines[e] + OVERDUE_GRACE_S for e in pending)


async def _poll(ctx: DrillContext, stack: Stack, watches: Sequence[Mapping[str, Any]],
                deadline_s: float) -> None:
    """Record each watch's event the first time it holds, until all did or the deadline."""
    end = anyio.current_time() + deadline_s
    pending = {str(w["event"]) for w in watches}
    by_event = {str(w["event"]): w for w in watches}
    gate = trading_gate(ctx, stack)
    while pending and anyio.current_time() < end and not _all_overdue(ctx, pending):
        if not stack.alive():
            raise DrillUnavailableError(stack.gone_message())
        doc = view(ctx, stack, watches, gate)
        ctx.track(doc)
        for event in watches_fired(doc, watches, set(ctx.events)):
            if event in pending:
                ctx.event(event)
                pending.discard(event)
                for key, path in dict(by_event[event].get("record", {})).items():
                    ctx.observe(key, lookup(doc, str(path)))
        await anyio.sleep(POLL_S)


def _exchange(ctx: DrillContext) -> ExchangeHarness:
    if ctx.exchange is None:
        raise DrillUnavailableError("the fake exchange is not running")
    return ctx.exchange


async def _wait_orders(ctx: DrillContext, at_least: int, timeout_s: float) -> int:
    exchange, end = _exchange(ctx), anyio.current_time() + timeout_s
    while (n := await exchange.orders()) < at_least and anyio.current_time() < end:
        await anyio.sleep(POLL_S)
    return n


async def _inject(ctx: DrillContext, stack: Stack) -> None:
    p = ctx.params
    fault, target = str(p.get("fault", "kill")), str(p.get("target", "feeder"))
    duration = f"{ctx.scaled(float(p.get('fault_for_s', 60))):g}s"
    ctx.details["fault"] = {"fault": fault, "target": target, "for": duration}
    match fault:
        case "kill":
            result = await stack.chaos("kill", target)
        case "stall":
            result = await stack.chaos("stall", target, duration=duration)
        case "netcut":
            result = await stack.chaos("netcut", target, duration=duration,
                                              mode=str(p.get("mode", "blackhole")))
        case "latency":
            result = await stack.chaos("latency", target, duration=duration,
                                              ms=float(p.get("latency_ms", 2000)))
        case "feed_freeze" | "feed_skip" if isinstance(stack, DemoStack):
            result = await _feed_fault(ctx, fault, p)
        case "feed_freeze" | "feed_skip":
            raise DrillUnavailableError(
                f"{fault} needs the drill's own exchange (POST /admin/feed), not a target")
        case "fail_on_start" if isinstance(stack, DemoStack):
            # The operator's view of "a feeder that cannot start": its command line
            # changed for the worse; hot reload restarts it on the new argv.
            stack.render({target: [str(a) for a in p.get("fault_args", ["--fail-on-start"])]})
            stack.daemon.reload()
            result = {"fault": "fail_on_start", "component": target}
        case _:
            raise DrillUnavailableError(f"unknown fault {fault!r}")
    if fault in ("stall", "netcut", "latency"):
        ctx.fault_lasts(ctx.scaled(float(p.get("fault_for_s", 60))))
    ctx.details["chaos_result"] = result


async def _feed_fault(ctx: DrillContext, fault: str, p: Mapping[str, Any]) -> dict[str, Any]:
    """A stream fault at the drill's exchange; a freeze lasts ``fault_for_s`` (scaled)."""
    exchange, symbol = _exchange(ctx), str(p.get("symbol", "ETHUSDT"))
    if fault == "feed_skip":
        return await exchange.set_feed(skip={symbol: int(p.get("skip", 3))})
    lasts = ctx.scaled(float(p.get("fault_for_s", 60)))
    result = await exchange.set_feed(freeze=[symbol])
    ctx.fault_lasts(lasts)
    await anyio.sleep(lasts)  # beside the watch task: it keeps polling meanwhile
    await exchange.set_feed()
    return result


def _restarts(doc: Mapping[str, Any]) -> int:
    comps = doc.get("components", {})
    return sum(int(c.get("restarts", 0)) for c in comps.values() if isinstance(c, dict))


async def _count_orders_after(ctx: DrillContext, event: str, window_s: float) -> None:
    exchange = _exchange(ctx)
    if event not in ctx.events:
        return  # never reached: the event's own expectation fails and names it
    # One trader interval of grace: an order already past the gate when the kill
    # switch landed is not an order placed "from then on".
    await anyio.sleep(0.25)
    first = await exchange.orders()
    await anyio.sleep(window_s)
    ctx.observe(f"new_orders_after_{event}", await exchange.orders() - first)


def _kind(line: str) -> str:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "invalid"
    return str(doc.get("kind", "")) if isinstance(doc, dict) else "invalid"


def _final(ctx: DrillContext, stack: Stack, restarts_before: int) -> None:
    doc = stack.health()
    read = read_flags(stack.shared)
    notes = stack.shared / layout.NOTIFICATIONS
    ctx.observe("restarts_added", _restarts(doc) - restarts_before)
    ctx.observe("stop_file_present", stop_file_present(stack.stop_file))
    # Unreadable flags are recorded as such: a criterion then fails naming them.
    ctx.observe("flags_failsafe_active", read.flags.failsafe_active if read.flags else read.reason)
    ctx.observe("flags_mode", read.flags.mode if read.flags else read.reason)
    gate = _gate_view(trading_gate(ctx, stack))
    ctx.observe("gate_buy_at_end", gate["buy"])
    ctx.observe("gate_sell_at_end", gate["sell"])
    lines = notes.read_text(errors="replace").splitlines() if notes.exists() else []
    lines = lines[stack.notes_offset:]
    ctx.observe("notifications", len(lines))
    ctx.observe("notification_kinds", sorted({_kind(line) for line in lines}))
    ctx.observe("final_dor", doc.get("dor"))
    ctx.observe("daemon_alive", stack.alive())
    ctx.details["chaos_calls"] = stack.chaos_calls


async def daemon(ctx: DrillContext) -> None:
    """Bring up the stack (or check the target's), wait for DOR, inject the fault, and
    record the health timeline.

    Raises:
        DrillUnavailableError: the stack never reached DOR, the daemon died, or the
            target cannot take this drill.
    """
    p = ctx.params
    stack: Stack = DemoStack(ctx) if ctx.target is None else TargetStack(ctx, ctx.target)
    await stack.start()
    ready = [{"event": "ready", "path": "dor", "op": "==", "value": True}]
    await _poll(ctx, stack, ready, float(p.get("ready_timeout_s", 20.0)))
    if "ready" not in ctx.events:
        raise DrillUnavailableError(f"the daemon never reported dor=true; see {stack.shared}")
    if stack.has_exchange and p.get("wait_orders", True):
        ctx.observe("orders_before_fault", await _wait_orders(ctx, 1, 5.0))
    restarts_before = _restarts(stack.health())
    watches = list(p.get("watch", []))
    async with anyio.create_task_group() as feed:
        if p.get("feed_prices") and stack.has_exchange:
            feed.start_soon(functools.partial(
                feed_prices, stack.shared / "prices.json", str(p.get("symbol", "BTCUSDT")),
                ctx.rng, every_s=0.1))
        async with anyio.create_task_group() as tg:
            # Watch from before the fault: a fast heal must not slip between two polls.
            tg.start_soon(_poll, ctx, stack, watches,
                          ctx.scaled(float(p.get("observe_for_s", 120.0))) + 1.0)
            ctx.mark_fault()
            await _inject(ctx, stack)
        if "orders_after" in p and stack.has_exchange:
            await _count_orders_after(ctx, str(p["orders_after"]),
                                      float(p.get("orders_window_s", 1.6)))
        feed.cancel_scope.cancel()
    _final(ctx, stack, restarts_before)
    ctx.observe("events", sorted(ctx.events))

