"""Execution limits (issue 24; RTS 6 Art. 15(1)(a) and (d)) as a drill: the real guard, a script.

Kind ``risk_execution_limits`` (``execution_limits``): the real
:class:`~autoheal.guard.risk.RiskGuard` with the scenario's ``[risk]`` limits, on a
clock the script moves (no sleeping: a minute of market in a few milliseconds). Each
step of ``params.script`` sets the time ``t`` and the mark, and then either checks a
buy at ``price`` (``order``), or sends ``count`` submits (``send``), or asks whether a
cancel and a modify may go out now (``messages``); a step's ``observe = NAME`` records
its answer (``"ok"`` or the refusing tokens, comma-joined). What the drill shows:

* the price collar per order refuses a price too far from the mark
  (``risk_price_collar``) while the mark itself may drift;
* the collar over a window refuses a price that stepped, within the window, too far
  from the window's oldest mark, although each step was inside the per-order collar
  (``risk_collar_window``), and lets it through once that mark has left the window;
* past ``max_submits_per_s`` a further submit is refused (``risk_message_rate``) while
  a cancel still goes out (a refused cancel would keep risk open), and a second later
  submits pass again.

The mutations are the limits themselves made out of reach (tests/drills/test_drill_limits.py).
"""

from __future__ import annotations

from typing import Any

from autoheal.drills.context import DrillContext
from autoheal.guard.risk import RiskBook, RiskGuard, RiskOrder, parse_limits, to_decimal

__all__ = ["execution_limits"]


class _ScriptClock:
    """The guard's clock: the time of the script's current step."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _answer(allowed: bool, reasons: tuple[str, ...] | list[str]) -> str:
    return "ok" if allowed else ",".join(sorted({r.split(":", 1)[0] for r in reasons}))


async def execution_limits(ctx: DrillContext) -> None:
    p = ctx.params
    symbol = str(p.get("symbol", "BTCUSDT"))
    strategy = str(p.get("strategy", "grid"))
    clock = _ScriptClock()
    limits = parse_limits(p.get("risk_limits") or {}, "params.risk_limits")
    guard = RiskGuard(
        limits, None, time_fn=clock, wall_fn=lambda: 1.7e9 + clock.now, strategy=strategy
    )
    qty = to_decimal(p.get("qty", "0.001"), "params.qty")
    ctx.mark_fault()
    answers: list[dict[str, Any]] = []
    for i, step in enumerate(p.get("script") or []):
        key = f"params.script[{i}]"
        clock.now = float(step["t"])
        mark = to_decimal(step["mark"], f"{key}.mark")
        book = RiskBook(marks={symbol: mark})
        if "order" in step:
            price = to_decimal(step["order"], f"{key}.order")
            allowed, reasons = guard.check(RiskOrder(symbol, "buy", qty, price), book)
            if allowed:
                guard.note_sent()
            answer = _answer(allowed, reasons)
        elif "send" in step:
            refused: list[str] = []
            for _ in range(int(step["send"])):
                allowed, reasons = guard.check(RiskOrder(symbol, "buy", qty, mark), book)
                if allowed:
                    guard.note_sent()
                else:
                    refused += list(reasons)
            answer = _answer(not refused, refused)
        else:
            cancel_ok, cancel_why = guard.check_message("cancel")
            if cancel_ok:
                guard.note_message("cancel")
            modify_ok, modify_why = guard.check_message("modify")
            cancel, modify = _answer(cancel_ok, [cancel_why]), _answer(modify_ok, [modify_why])
            answer = f"cancel={cancel} modify={modify}"
        answers.append({"t": clock.now, "mark": str(mark), "answer": answer})
        if "observe" in step:
            ctx.observe(str(step["observe"]), answer)
            if answer != "ok":
                for token in answer.replace("=", ",").split(","):
                    if token.startswith("risk_"):
                        ctx.gate(token)
        if step.get("event") and "risk_" in answer:  # the step's refusal happened
            ctx.event(str(step["event"]))
    ctx.details["script"] = answers
    ctx.details["limits"] = {k: str(v) for k, v in (p.get("risk_limits") or {}).items()}
