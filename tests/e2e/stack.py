"""A real demo stack under a real daemon, time-scaled, for end-to-end tests.

:class:`Stack` starts the fake exchange (``python -m autoheal.demo.exchange``)
on a loopback port picked by the kernel, writes a config into ``tmp_path`` whose
timings are seconds instead of minutes (the runbook's shape: 2 failed checks,
growing backoff, a verify window, 3 restarts), and runs ``python -m autoheal
run`` on it with stderr in a file. Tests wait on conditions with
:meth:`Stack.wait_for` (a deadline, never a fixed sleep); on timeout it fails
with the last ``health_v2.json`` and the daemon's log tail, which is what one
needs to see why.

Teardown is part of the contract: every process the stack or the daemon
started is remembered (PID plus start time, so a reused PID is not mistaken
for ours); after the daemon's SIGTERM none of them may remain. Leftovers are
killed either way, and reported as a failure when the test itself passed.

The processes are started, stopped and remembered by the drills' harness
(:mod:`autoheal.drills.stacks.harness`: the exchange, the daemon, the roster that
reaps); this module adds the config and the pytest side (a failure names the last
health document and the daemon's log tail).

Use it as a context manager::

    with Stack(tmp_path, feeder_args=("--fail-on-start",)) as stack:
        stack.start()
        stack.wait_for(lambda h: h["dor"], 10, "DOR true")
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from autoheal.drills.errors import ExchangeError
from autoheal.drills.stacks.exchange import ExchangeProcess
from autoheal.drills.stacks.harness import DaemonProcess, ProcessRoster, Spawned, autoheal_argv
from autoheal.store.atomic import read_json

T = TypeVar("T")

PY = sys.executable
POLL_S = 0.05
START_TIMEOUT_S = 10.0

__all__ = ["Stack", "process_gone", "toml_str"]


def toml_str(value: str) -> str:
    """A TOML basic string holding ``value``."""
    return json.dumps(value)


def _toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def process_gone(proc: psutil.Process) -> bool:
    """True when ``proc`` (PID plus start time) no longer runs; a zombie counts as gone."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Stack:
    """Exchange + daemon (+ feeder and trader under it) in ``tmp_path``.

    Args:
        tmp_path: the test's directory; everything lives below it.
        feeder_args: extra argv for the feeder (e.g. ``("--fail-on-start",)``).
        trader_args: extra argv for the trader.
        restart_backoff: the policy's backoff list.
        max_restarts: the policy's restart budget.
        verify_window: how long a restarted component has to prove healthy.
        heartbeat_max_age: the services' heartbeat probe limit.
        stop_timeout: the services' stop grace before SIGKILL.
        with_trader: whether the trader is supervised too.
    """

    def __init__(
        self,
        tmp_path: Path,
        *,
        feeder_args: Sequence[str] = (),
        trader_args: Sequence[str] = (),
        restart_backoff: Sequence[str] = ("300ms", "600ms", "1200ms"),
        max_restarts: int = 3,
        verify_window: str = "3s",
        heartbeat_max_age: str = "1.5s",
        stop_timeout: str = "1s",
        with_trader: bool = True,
    ) -> None:
        self.tmp = tmp_path
        self.runtime_dir = tmp_path / "rt"
        self.stop_file = tmp_path / "STOP.TXT"
        self.config_path = tmp_path / "autoheal.toml"
        self.exchange_dir = tmp_path / "exchange"
        self.port_file = self.exchange_dir / "port.json"
        self.feeder_args = tuple(feeder_args)
        self.trader_args = tuple(trader_args)
        self.restart_backoff = tuple(restart_backoff)
        self.max_restarts = max_restarts
        self.verify_window = verify_window
        self.heartbeat_max_age = heartbeat_max_age
        self.stop_timeout = stop_timeout
        self.with_trader = with_trader
        self.port: int | None = None
        self.exchange: subprocess.Popen[bytes] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_log = tmp_path / "daemon.log"
        self._daemon_runs = 0
        self._exchange: ExchangeProcess | None = None
        self._daemon: DaemonProcess | None = None
        self.roster = ProcessRoster()
        self.last_health: dict[str, Any] | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        leaked = self.close()
        if leaked and exc_type is None:
            pytest.fail(f"processes left behind after the daemon stopped: {leaked}")

    def start(self) -> None:
        """Exchange, config, daemon: then wait until every service has a PID."""
        self.start_exchange()
        self.write_config()
        self.start_daemon()

    def start_exchange(self, port: int | None = None) -> int:
        """Start the fake exchange (port 0 unless given) and return its port."""
        self._exchange = ExchangeProcess(
            self.exchange_dir,
            port=port or 0,
            runtime_dir=self.exchange_dir,
            port_file=self.port_file,
            roster=self.roster,
        )
        self.exchange = self._exchange.popen
        try:
            doc = self._exchange.wait_listening(START_TIMEOUT_S)
        except ExchangeError:
            text = self._exchange.log_text()
            pytest.fail(f"the fake exchange did not start (rc={self.exchange.poll()}):\n{text}")
        self.port = int(doc["port"])
        return self.port

    def stop_exchange(self, sig: int = signal.SIGTERM) -> None:
        """Signal the exchange and wait for it to exit."""
        if self._exchange is not None:
            self._exchange.stop(5, sig)

    def write_config(self) -> None:
        """The time-scaled config for the current exchange port."""
        assert self.port is not None, "start the exchange first"
        base = f"http://127.0.0.1:{self.port}"
        feeder = [
            PY,
            "-m",
            "autoheal.demo.feeder",
            "--exchange",
            base,
            "--runtime-dir",
            str(self.runtime_dir),
            "--heartbeat-interval",
            "0.2",
            "--stale-after",
            "1",
            "--max-backoff",
            "0.5",
            *self.feeder_args,
        ]
        trader = [
            PY,
            "-m",
            "autoheal.demo.trader",
            "--exchange",
            base,
            "--runtime-dir",
            str(self.runtime_dir),
            "--stop-file",
            str(self.stop_file),
            "--interval",
            "0.2",
            "--heartbeat-interval",
            "0.2",
            "--retries",
            "2",
            "--backoff",
            "0.05",
            "--http-timeout",
            "0.5",
            *self.trader_args,
        ]
        services = [("feeder", feeder)] + ([("trader", trader)] if self.with_trader else [])
        parts = [
            'environment = "paper"\n',
            "[paths]",
            f"runtime_dir = {toml_str(str(self.runtime_dir))}",
            f"stop_file = {toml_str(str(self.stop_file))}\n",
            "[policy]",
            "failures_before_restart = 2",
            f"restart_backoff = {_toml_list(self.restart_backoff)}",
            f"verify_window = {toml_str(self.verify_window)}",
            'verify_min_uptime = "100ms"',
            f"max_restarts = {self.max_restarts}",
            'stable_reset = "30s"\n',
            "[daemon]",
            'heartbeat_interval = "200ms"',
            "stop_services_on_exit = true\n",
        ]
        for name, argv in services:
            parts += [
                f"[services.{name}]",
                f"argv = {_toml_list(argv)}",
                f"stop_timeout = {toml_str(self.stop_timeout)}",
                'depends_on = ["exchange_rest"]\n',
                f"[[services.{name}.probes]]",
                'kind = "process"\n',
                f"[[services.{name}.probes]]",
                'kind = "heartbeat"',
                f"max_age = {toml_str(self.heartbeat_max_age)}",
                'interval = "200ms"\n',
            ]
        parts += [
            "[dependencies.exchange_rest]\n",
            "[[dependencies.exchange_rest.probes]]",
            'kind = "http"',
            f"url = {toml_str(base + '/api/ping')}",
            'interval = "200ms"',
            'timeout = "500ms"',
            "expect_status = [200]\n",
        ]
        self.config_path.write_text("\n".join(parts))

    def start_daemon(self) -> subprocess.Popen[bytes]:
        """Start ``autoheal run`` (stderr to ``daemon.log``, then ``daemon-2.log``, ...)."""
        self._daemon_runs += 1
        if self._daemon_runs > 1:
            self.daemon_log = self.tmp / f"daemon-{self._daemon_runs}.log"
        self._daemon = DaemonProcess(self.config_path, self.daemon_log, roster=self.roster)
        self.daemon = self._daemon.popen
        return self.daemon

    def run_autoheal_bg(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """``python -m autoheal ARGS --config CFG`` in the background, output to ``log``."""
        return Spawned(autoheal_argv(*args, config=self.config_path), log, roster=self.roster).popen

    def run_autoheal(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """``python -m autoheal ARGS --config CFG`` to completion, output captured."""
        return subprocess.run(
            autoheal_argv(*args, config=self.config_path),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop_daemon(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal the daemon and return its exit status."""
        assert self._daemon is not None
        self.track_services()
        self._daemon.send(sig)
        try:
            return self._daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            self._daemon.kill()
            pytest.fail(f"daemon did not exit within {timeout}s of {sig}:\n{self.log_tail()}")

    def close(self) -> list[str]:
        """Stop everything; return the processes that outlived the daemon (now killed)."""
        leaked: list[str] = []
        daemon = self._daemon
        if daemon is not None:
            if daemon.alive():
                self.track_services()
                daemon.send(signal.SIGTERM)
                try:
                    daemon.wait(15)
                except subprocess.TimeoutExpired:
                    leaked.append(f"daemon pid {daemon.pid} ignored SIGTERM")
                    daemon.kill()
            daemon.wait()
        if self._exchange is not None:
            self._exchange.stop(5)
        return leaked + self.roster.reap()

    # ------------------------------------------------------------------ observing

    def track(self, pid: int) -> None:
        """Remember a process the test started, to be killed at teardown if left."""
        self.roster.add(pid, "started by the test")

    def track_services(self) -> None:
        """Remember every live descendant of the daemon (services run in their own sessions)."""
        if self._daemon is not None:
            self._daemon.own_services()

    def health(self) -> dict[str, Any] | None:
        """The current ``health_v2.json`` (None while missing or unreadable)."""
        doc = read_json(self.runtime_dir / "health_v2.json").doc
        if isinstance(doc, dict):
            self.last_health = doc
            self.roster.add_components(doc)
            return doc
        return None

    def file_json(self, name: str) -> Any:
        """A JSON file in the runtime directory, or None."""
        return read_json(self.runtime_dir / name).doc

    def component(self, name: str) -> dict[str, Any]:
        """One component's entry in the current health document."""
        doc = self.health() or {}
        return dict((doc.get("components") or {}).get(name) or {})

    def wait_for(self, predicate: Callable[[dict[str, Any]], T], timeout: float, what: str) -> T:
        """Poll ``health_v2.json`` every 50 ms until ``predicate(doc)`` is truthy.

        Returns:
            The predicate's truthy value.

        Raises:
            pytest.fail.Exception: on timeout or when the daemon exits, with the last
                health document and the daemon's log tail.
        """
        deadline = time.monotonic() + timeout
        while True:
            doc = self.health()
            if doc is not None:
                try:
                    value = predicate(doc)
                except (KeyError, TypeError, IndexError):
                    value = None
                if value:
                    return value
            if self.daemon is not None and self.daemon.poll() is not None:
                self._fail(f"daemon exited {self.daemon.returncode} while waiting for {what}")
            if time.monotonic() > deadline:
                self._fail(f"timed out after {timeout}s waiting for {what}")
            time.sleep(POLL_S)

    def wait_until(self, condition: Callable[[], T], timeout: float, what: str) -> T:
        """Like :meth:`wait_for` for any condition (files, logs, processes)."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                self.health()
                self._fail(f"timed out after {timeout}s waiting for {what}")
            time.sleep(POLL_S)

    def _fail(self, message: str) -> None:
        health = json.dumps(self.last_health, indent=1)[-4000:] if self.last_health else "none"
        extra = ""
        if self.exchange is not None and self.exchange.poll() not in (None, 0, -signal.SIGTERM):
            tail = self.log_text(self.exchange_dir / "exchange.log").splitlines()[-15:]
            extra = (
                f"\n--- the fake exchange CRASHED (rc={self.exchange.returncode}):\n"
                + "\n".join(tail)
            )
        pytest.fail(
            f"{message}\n--- last health_v2.json:\n{health}\n"
            f"--- daemon log tail:\n{self.log_tail()}{extra}",
            pytrace=False,
        )

    def log_text(self, path: Path | None = None) -> str:
        """The daemon's log (or another file) so far."""
        try:
            return (path or self.daemon_log).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_lines(self, token: str, path: Path | None = None) -> list[str]:
        """Lines of the daemon's log containing ``token``."""
        return [line for line in self.log_text(path).splitlines() if token in line]

    def service_log(self, name: str) -> str:
        """A service's stdout/stderr log under ``runtime_dir/logs``."""
        return self.log_text(self.runtime_dir / "logs" / f"{name}.log")

    def exchange_stats(self) -> dict[str, Any]:
        """The fake exchange's ``/admin/stats`` (orders are counted there)."""
        assert self.port is not None
        resp = httpx.get(f"http://127.0.0.1:{self.port}/admin/stats", timeout=5)
        resp.raise_for_status()
        return dict(resp.json())
