"""The ``daemon_template`` kind: a daemon drill on a small stack of the scenario's own
services (:class:`~autoheal.drills.stacks.template.TemplateStack`), for the drills of
issue 23 whose subject is the daemon's judging of one service, not the trading stack
(``flapping_probe``, ``config_error_exit``; ``memory_leak``, ``exec_probe``, ``tcp_probe``).

Its ``[params]``, besides the ``daemon`` kind's ``watch`` and ``observe_for_s``::

    config = "flapping_probe.toml.in"  # the template, beside the scenario or shipped
    vars = { window = "failures = 2" }  # {name} markers and their text (mutation hook)
    policy_overrides = {}               # [policy] keys set as given (# {scaled_policy})
    wait_ready = true                   # wait for dor=true before the fault
    fault = "touch"                     # touch: create fault_file in shared_data/;
    fault_file = "flapper.flap"         # start: the daemon's start is the fault itself

Observations: the ``daemon`` kind's (``restarts_added``, ``stop_file_present``,
``flags_*``, ``notification_kinds``, ``final_dor``, ``daemon_alive``, ...), plus
``stop_file_reason`` (the first line of ``STOP.TXT``) and ``journal_reasons`` (the
reasons of every journaled event, sorted, once each).
"""

from __future__ import annotations

from autoheal.drills.context import DrillContext
from autoheal.drills.errors import DrillUnavailableError
from autoheal.drills.stacks.template import TemplateStack
from autoheal.drills.steps.daemon import _final, _poll, _restarts
from autoheal.store.flags import read_stop_line
from autoheal.store.journal import Journal, JournalError

__all__ = ["daemon_template"]


def _journal_reasons(stack: TemplateStack) -> list[str] | str:
    try:
        with Journal.open(stack.shared) as journal:
            return sorted({e.reason for e in journal.events(limit=10_000) if e.reason})
    except JournalError as exc:
        return f"(journal unreadable: {exc})"


async def daemon_template(ctx: DrillContext) -> None:
    """Start the small stack, wait for DOR (unless the start is the fault), make the
    fault, and record the health timeline.

    Raises:
        DrillUnavailableError: the stack never reached DOR, or the daemon died.
    """
    p = ctx.params
    stack = TemplateStack(ctx)
    fault = str(p.get("fault", "touch"))
    if fault == "start":
        ctx.mark_fault()  # the start is the fault: time it from here
    await stack.start()
    if bool(p.get("wait_ready", True)):
        ready = [{"event": "ready", "path": "dor", "op": "==", "value": True}]
        await _poll(ctx, stack, ready, float(p.get("ready_timeout_s", 20.0)))
        if "ready" not in ctx.events:
            raise DrillUnavailableError(f"the daemon never reported dor=true; see {stack.shared}")
    restarts_before = _restarts(stack.health())
    watches = list(p.get("watch", []))
    if fault == "touch":
        ctx.mark_fault()
        (stack.shared / str(p["fault_file"])).touch()
        ctx.details["fault"] = {"fault": fault, "file": str(p["fault_file"])}
    elif fault != "start":
        raise DrillUnavailableError(f"unknown fault {fault!r} (expected touch or start)")
    await _poll(ctx, stack, watches, ctx.scaled(float(p.get("observe_for_s", 10.0))) + 1.0)
    _final(ctx, stack, restarts_before)
    ctx.observe("stop_file_reason", read_stop_line(stack.stop_file))
    ctx.observe("journal_reasons", _journal_reasons(stack))
    ctx.observe("events", sorted(ctx.events))
