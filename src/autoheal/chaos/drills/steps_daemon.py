"""The ``daemon`` kind: runbook drills played against a real ``autoheal run`` and its demo stack.

A scenario of this kind names a config template (TOML with the usual placeholders
plus ``{exchange_port}``), a fault and a list of watches on ``health_v2.json``::

    kind = "daemon"
    [params]
    config = "daemon_demo.toml"        # beside the scenario files, or an absolute path
    fault = "kill"                     # kill | fail_on_start | netcut | latency | stall
    service = "feeder"
    fault_for_s = 60                   # runbook seconds (scaled)
    [[params.watch]]
    event = "detected"
    path = "failing_components"        # dotted path into health_v2.json
    op = "contains"
    value = "feeder"

The step renders the config into the drill's runtime directory with the scaled
policy (``policy_scaled`` durations multiplied by ``time_scale``), starts
``[sys.executable, "-m", "autoheal", "run", "--config", cfg]``, waits for
``dor == true``, applies the fault (SIGKILL by pidfile, SIGSTOP, the fault proxy's
cut or latency, or a service argv with ``--fail-on-start``), and polls
``health_v2.json`` until every watch has fired or the deadline passed. Each watch
that holds records its event the first time it holds; the scenario's ``[[expect]]``
entries put deadlines on them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from autoheal.chaos.drills.context import DrillContext
from autoheal.chaos.drills.evaluate import MISSING, holds
from autoheal.store.atomic import read_json

__all__ = ["DrillUnavailableError", "daemon", "daemon_available", "lookup", "watches_fired"]

HEALTH = "health_v2.json"


class DrillUnavailableError(RuntimeError):
    """The drill needs something this installation does not provide (yet)."""


def daemon_available() -> bool:
    """Whether ``autoheal run`` exists (the CLI has a handler for it)."""
    try:
        from autoheal import cli
    except ImportError:
        return False
    return "run" in getattr(cli, "_HANDLERS", {})


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


def _render_config(ctx: DrillContext, template: Path, exchange_port: int) -> Path:
    text = template.read_text(encoding="utf-8")
    for key, value in {"exchange_port": exchange_port}.items():
        text = text.replace("{" + key + "}", str(value))
    scaled = ctx.params.get("policy_scaled", {})
    policy = "\n".join(f'{k} = "{float(v) * ctx.scenario.time_scale:g}s"'
                       for k, v in scaled.items())
    out = ctx.runtime_dir / "drill_config.toml"
    out.write_text(text.replace("# {scaled_policy}", policy), encoding="utf-8")
    return out


async def _wait_health(ctx: DrillContext, watches: Sequence[Mapping[str, Any]],
                       deadline_s: float) -> None:
    end = anyio.current_time() + deadline_s
    pending = {str(w["event"]) for w in watches}
    while pending and anyio.current_time() < end:
        doc = read_json(ctx.runtime_dir / "shared_data" / HEALTH).doc or {}
        for event in watches_fired(doc, watches, set(ctx.events)):
            ctx.event(event)
            pending.discard(event)
        await anyio.sleep(0.05)


async def _apply_fault(ctx: DrillContext, fault: str, service: str) -> None:
    pidfile = ctx.runtime_dir / "shared_data" / f"{service}.pid"
    if fault in ("kill", "stall"):
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        if fault == "stall":
            async def resume() -> None:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            ctx.add_rollback("sigcont", resume)
        return
    raise DrillUnavailableError(f"fault {fault!r} needs the chaos command queue (autoheal chaos)")


async def daemon(ctx: DrillContext) -> None:
    """Start the daemon on a rendered config, apply the fault, record the health timeline.

    Raises:
        DrillUnavailableError: ``autoheal run`` is not available in this installation.
    """
    if not daemon_available():
        raise DrillUnavailableError("`autoheal run` is not available yet: daemon drills wait "
                                    "for the daemon")
    p = ctx.params
    ex = await ctx.start_exchange()
    template = Path(str(p.get("config", "")))
    if not template.is_absolute():
        template = Path(ctx.scenario.source).parent / template
    cfg = _render_config(ctx, template, int(ex.url.rsplit(":", 1)[1]))
    log = open(ctx.runtime_dir / "daemon.log", "wb")  # noqa: SIM115 - closed by the rollback
    proc = subprocess.Popen([sys.executable, "-m", "autoheal", "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=log)

    async def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await anyio.to_thread.run_sync(proc.wait, 10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            await anyio.to_thread.run_sync(proc.wait)
        log.close()

    ctx.add_rollback("stop_daemon", stop)
    ready = [{"event": "ready", "path": "dor", "op": "==", "value": True}]
    await _wait_health(ctx, ready, float(p.get("ready_timeout_s", 20.0)))
    if "ready" not in ctx.events:
        raise DrillUnavailableError("the daemon never reported dor=true")
    await _apply_fault(ctx, str(p.get("fault", "kill")), str(p.get("service", "feeder")))
    ctx.mark_fault()
    watches = list(p.get("watch", []))
    await _wait_health(ctx, watches, ctx.scaled(float(p.get("observe_for_s", 180.0))) + 5.0)
    ctx.observe("events", sorted(ctx.events))
