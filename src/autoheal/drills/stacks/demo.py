"""The demo stack a ``daemon`` drill runs on: exchange, fault proxy, time-scaled config, daemon.

Everything is real and on loopback ports the OS picks: the fake exchange
(:class:`~autoheal.drills.stacks.exchange.ExchangeHarness`), the loopback fault
proxy in front of it (``python -m autoheal.chaos.proxy``), and ``autoheal run
--chaos`` on a config rendered from a template. Faults go through the daemon's
command queue with the real CLI (``autoheal chaos ...``), so they are journaled
and end by themselves exactly as an operator's would.

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
  scaled; :func:`~autoheal.drills.plan.scaled_policy`).

The daemon's own placeholders (``{python}``, ``{runtime_dir}``, ``{stop_file}``) are
left for the config loader.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson

from autoheal.drills.errors import ChaosCommandError
from autoheal.store.atomic import write_bytes_atomic, write_json_atomic

__all__ = [
    "TEMPLATE_DEFAULTS",
    "DaemonHarness",
    "ProxyHarness",
    "queue_chaos",
    "render_config",
]

#: Template markers with a default value (``params.vars`` may override them).
TEMPLATE_DEFAULTS: Mapping[str, str] = {"feeder_depends_on": '["exchange_rest"]'}
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0


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
        "# {scaled_policy}": "\n".join(f"{k} = {_toml_value(v)}" for k, v in policy.items()),
        **{"{" + k + "}": str(v) for k, v in {**TEMPLATE_DEFAULTS, **(variables or {})}.items()},
    }.items():
        text = text.replace(marker, value)
    write_bytes_atomic(target, text.encode())
    return target


async def _stop_popen(popen: subprocess.Popen[bytes], timeout_s: float) -> int:
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
    try:
        return await anyio.to_thread.run_sync(popen.wait, timeout_s)
    except subprocess.TimeoutExpired:
        popen.kill()
        return await anyio.to_thread.run_sync(popen.wait)


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


class ProxyHarness:
    """One loopback fault proxy in front of ``upstream`` (``host:port``), ports picked by the OS.

    Args:
        directory: where its port files and log go.
        upstream: ``host:port`` of the exchange.
    """

    def __init__(self, directory: Path, upstream: str) -> None:
        self.directory = directory
        self.upstream = upstream
        self.port_file = directory / "exchange_proxy.port"
        self.control_file = directory / "exchange_proxy.control"
        self.port = 0
        self.pid = 0
        self._popen: subprocess.Popen[bytes] | None = None

    async def start(self) -> ProxyHarness:
        """Start it and wait until both port files exist.

        Raises:
            RuntimeError: it exited or did not publish its ports in time.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "autoheal.chaos.proxy", "--listen", "127.0.0.1:0",
                "--upstream", self.upstream, "--port-file", str(self.port_file),
                "--control-port-file", str(self.control_file)]
        self._popen = _spawn(argv, self.directory / "exchange_proxy.log")
        self.pid = self._popen.pid
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self.port_file.exists() and self.control_file.exists()):
            if self._popen.poll() is not None or time.monotonic() > deadline:
                await self.stop()
                raise RuntimeError(f"fault proxy did not start; see {self.directory}")
            await anyio.sleep(0.02)
        self.port = int(self.port_file.read_text().strip())
        return self

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; returns the exit status."""
        popen, self._popen = self._popen, None
        return None if popen is None else await _stop_popen(popen, STOP_TIMEOUT_S)


class DaemonHarness:
    """``autoheal run --chaos --config CFG`` as a subprocess, and chaos commands for it.

    Args:
        config: the rendered config file.
        runtime_dir: its ``paths.runtime_dir`` (the journal and the health file).
        log_path: the daemon's stderr.
    """

    def __init__(self, config: Path, runtime_dir: Path, log_path: Path) -> None:
        self.config = config
        self.runtime_dir = runtime_dir
        self.log_path = log_path
        self._popen: subprocess.Popen[bytes] | None = None
        self.chaos_calls: list[dict[str, Any]] = []

    @property
    def pid(self) -> int:
        return 0 if self._popen is None else self._popen.pid

    def start(self) -> DaemonHarness:
        """Start the daemon in chaos mode (it refuses a ``live`` environment itself)."""
        argv = [sys.executable, "-m", "autoheal", "run", "--chaos", "--config", str(self.config)]
        self._popen = _spawn(argv, self.log_path)
        return self

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def reload(self) -> None:
        """SIGHUP: reload the config now (the file watcher would too, a little later)."""
        if self._popen is not None and self._popen.poll() is None:
            self._popen.send_signal(signal.SIGHUP)

    async def stop(self) -> int | None:
        """SIGTERM (the daemon stops its services), SIGKILL after a grace period."""
        popen, self._popen = self._popen, None
        return None if popen is None else await _stop_popen(popen, STOP_TIMEOUT_S)

    async def chaos(self, fault: str, target: str = "", *, timeout_s: float = 20.0,
                    **payload: Any) -> dict[str, Any]:
        """Queue ``chaos_<fault>`` in this daemon's journal and wait (:func:`queue_chaos`).

        The same durable command ``autoheal chaos`` submits (checksum, expiry, journaled
        ``chaos_action``), without the start-up time of a second interpreter, so the
        fault lands within the daemon's queue poll of the drill's time zero.

        Raises:
            ChaosCommandError: the daemon refused or failed it, or did not answer in time.
        """
        return await queue_chaos(self.runtime_dir, fault, target, timeout_s=timeout_s,
                                 calls=self.chaos_calls, **payload)


async def queue_chaos(runtime_dir: Path, fault: str, target: str = "", *,
                      timeout_s: float = 20.0, calls: list[dict[str, Any]] | None = None,
                      **payload: Any) -> dict[str, Any]:
    """Queue ``chaos_<fault>`` in the journal of ``runtime_dir`` and wait for the result.

    Works for any daemon running with ``--chaos`` on that runtime directory: the
    drill's own (:class:`DaemonHarness`) or a target's (``--target CONFIG``).

    Args:
        runtime_dir: the daemon's ``paths.runtime_dir``.
        fault: ``kill``, ``stall``, ``latency``, ``netcut``, ``corrupt`` or ``heal``.
        target: the component, dependency or file.
        timeout_s: how long to wait for the daemon's result.
        calls: a list to append a record of this call to (for the report).
        payload: ``duration`` (``"3s"``), ``ms``, ``mode``.

    Returns:
        The daemon's result document.

    Raises:
        ChaosCommandError: the daemon refused or failed it, or did not answer in time.
    """
    from autoheal.store import commands as queue
    from autoheal.store.journal import Journal

    def submit_and_wait() -> queue.Command:
        with Journal.open(runtime_dir) as journal:
            submitted = queue.submit(
                journal, f"chaos_{fault}", target, {"reason": "drill", **payload},
                "autoheal-drill", ttl=max(60.0, 2 * timeout_s))
            return queue.wait_result(journal, submitted.command.id, timeout_s)

    started = time.monotonic()
    command = await anyio.to_thread.run_sync(submit_and_wait)
    if calls is not None:
        calls.append({"fault": fault, "target": target, **payload, "status": command.status,
                      "took_s": round(time.monotonic() - started, 3)})
    if command.status != "succeeded":
        raise ChaosCommandError(f"chaos {fault} {target}: {command.status} "
                                f"{orjson.dumps(command.result).decode()}")
    return dict(command.result)


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
