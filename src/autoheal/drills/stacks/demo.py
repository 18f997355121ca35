"""The demo stack a ``daemon`` drill runs on: exchange, fault proxy, time-scaled config, daemon.

Everything is real and on loopback ports the OS picks: the fake exchange
(:class:`~autoheal.drills.stacks.exchange.ExchangeHarness`), the loopback fault
proxy in front of it (``python -m autoheal.chaos.proxy``), and ``autoheal run
--chaos`` on a config rendered from a template (:class:`DemoStack` brings them up in
that order and registers their rollbacks). Faults go through the daemon's command
queue as the CLI's (``autoheal chaos ...``) would (:mod:`.commands`), so they are
journaled and end by themselves exactly as an operator's would. Every process is
started by the harness (:mod:`.harness`) and owned by the drill's roster, with the
daemon's services: whatever happens, the drill's teardown leaves none of them behind.

The template (``scenarios/daemon_demo.toml.in``) is plain TOML with these markers,
replaced as text before the config is written:

* ``{proxy_port}``: the proxy's listening port (feeder, trader and REST probe use it);
* ``{proxy_control}``: the file holding the proxy's control port (``[chaos] proxies``);
* ``{feeder_extra}``, ``{trader_extra}``: extra argv items (``, "--fail-on-start"``);
* ``{name}`` for each entry of ``params.vars`` (e.g. ``{rest_timeout}``), with
  :data:`TEMPLATE_DEFAULTS` for the ones a caller leaves out (``{feeder_depends_on}``:
  ``["exchange_rest"]``; a mutation test empties it);
* the line ``# {scaled_policy}``: the ``[policy]`` keys, the runbook's numbers
  (:data:`~autoheal.drills.plan.RUNBOOK_POLICY`) with durations multiplied by the
  scenario's ``time_scale``, then ``params.policy_overrides`` (taken as they are, not
  scaled; :func:`~autoheal.drills.plan.scaled_policy`; written by :func:`policy_toml`).

The daemon's own placeholders (``{python}``, ``{runtime_dir}``, ``{stop_file}``) are
left for the config loader.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson

from autoheal.drills.catalog import SCENARIO_DIR
from autoheal.drills.context import DrillContext
from autoheal.drills.errors import DrillUnavailableError, StackError
from autoheal.drills.plan import scaled_policy
from autoheal.drills.stacks.commands import queue_chaos
from autoheal.drills.stacks.harness import (
    PY,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    DaemonProcess,
    ProcessRoster,
    Spawned,
    await_for,
)
from autoheal.store import layout
from autoheal.store.atomic import read_json, write_bytes_atomic, write_json_atomic

__all__ = [
    "DEFAULT_VARS",
    "TEMPLATE_DEFAULTS",
    "DaemonHarness",
    "DemoStack",
    "ProxyHarness",
    "feed_prices",
    "policy_toml",
    "render_config",
]

#: Template markers with a default value (``params.vars`` may override them).
TEMPLATE_DEFAULTS: Mapping[str, str] = {"feeder_depends_on": '["exchange_rest"]'}
#: The template's variables a scenario does not set (``params.vars`` overrides them).
DEFAULT_VARS = {"rest_timeout": "3s", "feeder_stop_signal": "SIGTERM", "ws_max_age": "1s"}


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def _argv_extra(items: Sequence[str]) -> str:
    return "".join(f", {_toml_value(str(i))}" for i in items)


def policy_toml(policy: Mapping[str, Any]) -> str:
    """The ``[policy]`` keys as TOML lines: what replaces the ``# {scaled_policy}`` line."""
    return "\n".join(f"{k} = {_toml_value(v)}" for k, v in policy.items())


def render_config(
    template: Path,
    target: Path,
    *,
    proxy_port: int,
    proxy_control: Path,
    policy: Mapping[str, Any],
    feeder_args: Sequence[str] = (),
    trader_args: Sequence[str] = (),
    variables: Mapping[str, Any] | None = None,
) -> Path:
    """Write the drill's config from ``template`` (atomically: the daemon may be watching it).

    Args:
        template: the template file.
        target: the config file to write.
        proxy_port: the fault proxy's listening port.
        proxy_control: the file with the proxy's control port.
        policy: the ``[policy]`` keys (see :func:`~autoheal.drills.plan.scaled_policy`).
        feeder_args: extra argv items for the feeder.
        trader_args: extra argv items for the trader.
        variables: more ``{name}`` markers and their text (``params.vars``).

    Returns:
        ``target``.
    """
    text = template.read_text(encoding="utf-8")
    for marker, value in {
        "{proxy_port}": str(proxy_port),
        "{proxy_control}": str(proxy_control),
        "{feeder_extra}": _argv_extra(feeder_args),
        "{trader_extra}": _argv_extra(trader_args),
        "# {scaled_policy}": policy_toml(policy),
        **{"{" + k + "}": str(v) for k, v in {**TEMPLATE_DEFAULTS, **(variables or {})}.items()},
    }.items():
        text = text.replace(marker, value)
    write_bytes_atomic(target, text.encode())
    return target


class ProxyHarness:
    """One loopback fault proxy in front of ``upstream`` (``host:port``), ports picked by the OS.

    Args:
        directory: where its port files and log go.
        upstream: ``host:port`` of the exchange.
        roster: where its process is recorded.
    """

    def __init__(
        self, directory: Path, upstream: str, *, roster: ProcessRoster | None = None
    ) -> None:
        self.directory = directory
        self.upstream = upstream
        self.port_file = directory / "exchange_proxy.port"
        self.control_file = directory / "exchange_proxy.control"
        self.port = 0
        self.pid = 0
        self.roster = roster
        self._proc: Spawned | None = None

    def _port(self) -> int | None:
        if self.port_file.exists() and self.control_file.exists():
            return int(self.port_file.read_text().strip())
        if self._proc is None or not self._proc.alive():
            raise StackError(f"fault proxy did not start; see {self.directory}")
        return None

    async def start(self) -> ProxyHarness:
        """Start it and wait until both port files exist.

        Raises:
            StackError: it exited or did not publish its ports in time.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [PY, "-m", "autoheal.chaos.proxy", "--listen", "127.0.0.1:0"]
        argv += ["--upstream", self.upstream, "--port-file", str(self.port_file)]
        argv += ["--control-port-file", str(self.control_file)]
        self._proc = Spawned(argv, self.directory / "exchange_proxy.log", roster=self.roster)
        self.pid = self._proc.pid
        try:
            self.port = await await_for(self._port, START_TIMEOUT_S, "the fault proxy's ports")
        except (TimeoutError, StackError) as exc:
            await self.stop()
            raise StackError(f"fault proxy did not start; see {self.directory}") from exc
        return self

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; returns the exit status."""
        proc, self._proc = self._proc, None
        return None if proc is None else await anyio.to_thread.run_sync(proc.stop, STOP_TIMEOUT_S)


class DaemonHarness:
    """``autoheal run --chaos --config CFG`` as a subprocess, and chaos commands for it.

    Args:
        config: the rendered config file.
        runtime_dir: its ``paths.runtime_dir`` (the journal and the health file).
        log_path: the daemon's stderr.
        roster: where it and (when it is stopped) its services are recorded.
    """

    def __init__(
        self,
        config: Path,
        runtime_dir: Path,
        log_path: Path,
        *,
        roster: ProcessRoster | None = None,
    ) -> None:
        self.config = config
        self.runtime_dir = runtime_dir
        self.log_path = log_path
        self.roster = roster
        self._proc: DaemonProcess | None = None
        self.chaos_calls: list[dict[str, Any]] = []

    @property
    def pid(self) -> int:
        return 0 if self._proc is None else self._proc.pid

    def start(self) -> DaemonHarness:
        """Start the daemon in chaos mode (it refuses a ``live`` environment itself)."""
        self._proc = DaemonProcess(self.config, self.log_path, chaos=True, roster=self.roster)
        return self

    def alive(self) -> bool:
        """Whether it runs; once it does not, the services its last health document names
        join the roster (nobody else will stop them now)."""
        if self._proc is not None and self._proc.alive():
            return True
        self.own_services()
        return False

    def own_services(self) -> None:
        """Put its services in the roster: those its health document names and, while it
        runs, its descendants."""
        if self.roster is None:
            return
        doc = read_json(self.runtime_dir / layout.HEALTH).doc
        if isinstance(doc, dict):
            self.roster.add_components(doc)
        if self._proc is not None:
            self._proc.own_services()

    def reload(self) -> None:
        """SIGHUP: reload the config now (the file watcher would too, a little later)."""
        if self._proc is not None:
            self._proc.send(signal.SIGHUP)

    async def stop(self) -> int | None:
        """SIGTERM (the daemon stops its services), SIGKILL after a grace period; its
        services are in the roster first, so a daemon that could not stop them leaves
        them to the drill's teardown."""
        await anyio.to_thread.run_sync(self.own_services)
        proc, self._proc = self._proc, None
        return None if proc is None else await anyio.to_thread.run_sync(proc.stop, STOP_TIMEOUT_S)

    async def chaos(
        self, fault: str, target: str = "", *, timeout_s: float = 20.0, **payload: Any
    ) -> dict[str, Any]:
        """Queue ``chaos_<fault>`` in this daemon's journal and wait
        (:func:`~autoheal.drills.stacks.commands.queue_chaos`).

        Raises:
            ChaosCommandError: the daemon refused or failed it, or did not answer in time.
        """
        return await queue_chaos(
            self.runtime_dir, fault, target, timeout_s=timeout_s, calls=self.chaos_calls, **payload
        )


class DemoStack:
    """The running pieces of one ``daemon`` drill on its own stack, for the fault and the
    final observations (a target's counterpart: :class:`~.target.TargetStack`)."""

    has_exchange = True
    notes_offset = 0

    def __init__(self, ctx: DrillContext) -> None:
        self.ctx = ctx
        self.shared = ctx.runtime_dir / "shared_data"
        self.stop_file = ctx.runtime_dir / "STOP.TXT"
        self.config = ctx.runtime_dir / "drill_config.toml"
        template = Path(str(ctx.params.get("config", "daemon_demo.toml.in")))
        if not template.is_absolute():
            beside = Path(ctx.scenario.source).parent / template
            # An operator's scenario in its own directory may use the shipped template.
            template = beside if beside.exists() else SCENARIO_DIR / template
        self.template = template
        self.proxy: ProxyHarness | None = None
        self.daemon = DaemonHarness(
            self.config, self.shared, ctx.runtime_dir / "daemon.log", roster=ctx.processes
        )

    def health(self) -> dict[str, Any]:
        doc = read_json(self.shared / layout.HEALTH).doc
        if not isinstance(doc, dict):
            return {}
        self.ctx.processes.add_components(doc)  # its services are the drill's too
        return doc

    def alive(self) -> bool:
        return self.daemon.alive()

    def gone_message(self) -> str:
        return f"the daemon exited; see {self.daemon.log_path}"

    @property
    def chaos_calls(self) -> list[dict[str, Any]]:
        return self.daemon.chaos_calls

    async def chaos(self, fault: str, target: str = "", **payload: Any) -> dict[str, Any]:
        return await self.daemon.chaos(fault, target, **payload)

    def render(self, extra: Mapping[str, Sequence[str]] | None = None) -> None:
        p, extra = self.ctx.params, extra or {}
        if self.proxy is None:
            raise DrillUnavailableError("no fault proxy")
        render_config(
            self.template,
            self.config,
            proxy_port=self.proxy.port,
            proxy_control=self.proxy.control_file,
            policy=scaled_policy(self.ctx.scenario.time_scale, p.get("policy_overrides", {})),
            feeder_args=[*p.get("feeder_args", []), *extra.get("feeder", [])],
            trader_args=[*p.get("trader_args", []), *extra.get("trader", [])],
            variables={**DEFAULT_VARS, **p.get("vars", {})},
        )

    async def start(self) -> None:
        ctx = self.ctx
        ex = await ctx.start_exchange()
        self.proxy = proxy = ProxyHarness(
            ctx.runtime_dir / "proxy", ex.url.split("//", 1)[1], roster=ctx.processes
        )

        async def stop_proxy() -> None:
            ctx.details["proxy_exit"] = await proxy.stop()

        ctx.add_rollback("stop_proxy", stop_proxy)
        await proxy.start()
        ctx.details["proxy_pid"] = proxy.pid
        self.render()
        self.daemon.start()

        async def stop_daemon() -> None:
            ctx.details["daemon_exit"] = await self.daemon.stop()

        ctx.add_rollback("stop_daemon", stop_daemon)
        ctx.details["daemon_pid"] = self.daemon.pid

        async def heal() -> Any:
            # Undo any fault still active (a stalled process gets its SIGCONT) before
            # the daemon stops; a daemon that is gone has nothing left to heal.
            if not self.daemon.alive():
                return "daemon gone"
            return (await self.daemon.chaos("heal", timeout_s=5.0)).get("healed")

        ctx.add_rollback("chaos_heal", heal)


async def feed_prices(path: Path, symbol: str, rng: random.Random, *, every_s: float) -> None:
    """Stand in for a market-data source: a fresh, moving price every ``every_s``.

    With the feeder down, the trader's last price never changes, and its idempotency
    guard (same symbol, side, qty and price within the TTL) then blocks every repeat
    by itself: the drill could not tell a working kill switch from a broken one.
    A moving price leaves the trading gate as the only thing that can stop orders.
    """
    price = 60_000.0
    while True:
        price = round(price * (1 + rng.uniform(-0.001, 0.001)), 2)
        now = time.time()
        write_json_atomic(
            path, {"ts": now, "prices": {symbol: {"price": price, "ts": now}}}, durable=False
        )
        await anyio.sleep(every_s)
