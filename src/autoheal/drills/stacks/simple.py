"""A real ``autoheal run`` over simple services, for end-to-end tests and benchmarks.

The services are plain Python children (no exchange): each writes
``<runtime_dir>/<name>.heartbeat.json`` every 0.2 s and, on SIGTERM, appends the
wall-clock moment it was signalled to ``<runtime_dir>/<name>.sigterm`` before it
exits (the command-latency benchmark reads that file). The policy is time-scaled
(backoff 300 ms / 600 ms, verify window 3 s) so that healing takes seconds.

Everything waits on a condition under a deadline (:func:`wait_for`), never a fixed
sleep. The daemon is started and stopped by the drills' harness
(:mod:`autoheal.drills.stacks.harness`), and :meth:`Runtime.close` SIGTERMs it, then
kills whatever it left, by identity (its services, taken before it stops; those its
pidfiles name and whose command line is one of this runtime's services). It imports
no test framework: the tests (``tests/e2e/``) and the benchmarks
(``benchmarks/command_latency.py``, ...) share it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import psutil

from autoheal.drills.errors import StackError
from autoheal.drills.stacks.harness import (
    SYSTEMD_ENV,
    DaemonProcess,
    ProcessRoster,
    autoheal_argv,
    wait_for,
)
from autoheal.store import layout
from autoheal.store.journal import Event, Journal

__all__ = [
    "SERVICE_CODE",
    "Runtime",
    "alive",
    "read_doc",
    "service_toml",
    "toml_str",
    "wait_for",
    "write_config",
]

DAEMON_START_S = 20.0
CLI_TIMEOUT_S = 30.0

SERVICE_CODE = """\
import json, os, signal, sys, time
rt, name = sys.argv[1], sys.argv[2]
if os.path.exists(os.path.join(rt, name + ".crash")):
    sys.exit(3)  # a test made this service unable to start
def on_term(signum, frame):
    with open(os.path.join(rt, name + ".sigterm"), "a") as f:
        f.write(repr(time.time()) + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
path = os.path.join(rt, name + ".heartbeat.json")
seq = 0
while True:
    seq += 1
    doc = dict(component=name, pid=os.getpid(), ts=time.time(), seq=seq)
    tmp = path + ".tmp." + str(os.getpid())
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)
    time.sleep(0.2)
"""


def toml_str(value: str) -> str:
    """A TOML basic string holding ``value``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def service_toml(name: str) -> str:
    """The config table of one simple service with a process and a heartbeat probe."""
    argv = ", ".join(toml_str(a) for a in ("{python}", "-c", SERVICE_CODE, "{runtime_dir}", name))
    return f"""
[services.{name}]
argv = [{argv}]
stop_timeout = "2s"

[[services.{name}.probes]]
kind = "process"
interval = "200ms"

[[services.{name}.probes]]
kind = "heartbeat"
max_age = "2s"
interval = "200ms"
"""


def write_config(
    root: Path,
    services: Sequence[str] = ("feeder",),
    *,
    status_listen: bool = False,
    webhook_url: str | None = None,
    secret_env: str | None = None,
    stop_services_on_exit: bool = True,
) -> Path:
    """Write ``root/autoheal.toml`` for a runtime in ``root/rt`` and return its path."""
    text = f"""\
environment = "paper"

[paths]
runtime_dir = {toml_str(str(root / "rt"))}
stop_file = {toml_str(str(root / "STOP.TXT"))}

[policy]
failures_before_restart = 2
restart_backoff = ["300ms", "600ms"]
verify_window = "3s"
verify_min_uptime = "100ms"
max_restarts = 3
stable_reset = "10m"

[daemon]
heartbeat_interval = "200ms"
stop_services_on_exit = {"true" if stop_services_on_exit else "false"}
status_listen = {toml_str("127.0.0.1:0" if status_listen else "")}
log_file = ""
"""
    text += "".join(service_toml(n) for n in services)
    if webhook_url is not None:
        text += f"""
[[webhooks]]
name = "ops"
url = {toml_str(webhook_url)}
format = "generic"
timeout = "2s"
"""
        if secret_env is not None:
            text += f"secret_env = {toml_str(secret_env)}\n"
    path = root / "autoheal.toml"
    path.write_text(text)
    return path


def read_doc(path: Path) -> Any:
    """A JSON document, or None if missing or unreadable (a reader mid-rename sees one or
    the other, but a hand-written garbage file may be there)."""
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


class _OwnPids:
    """``rt._children.update(pids)``: a test that kills the daemon itself hands over the
    services it leaves this way; each PID is owned at once, by identity."""

    def __init__(self, roster: ProcessRoster) -> None:
        self._roster = roster

    def add(self, pid: int) -> None:
        self._roster.add(pid, "handed over")

    def update(self, pids: Iterable[int]) -> None:
        for pid in pids:
            self.add(pid)


class Runtime:
    """One runtime directory, its config, a daemon subprocess and CLI calls.

    Args:
        root: a fresh folder (``tmp_path``).
        services: names of the simple services to supervise.
        env: extra environment for the daemon and the CLI.
        config_kw: passed on to :func:`write_config`.
    """

    def __init__(
        self,
        root: Path,
        services: Sequence[str] = ("feeder",),
        *,
        env: dict[str, str] | None = None,
        **config_kw: Any,
    ) -> None:
        self.root = root
        self.services = tuple(services)
        self.config = write_config(root, services, **config_kw)
        self.runtime_dir = root / "rt"
        self.stop_file = root / "STOP.TXT"
        self.log_path = root / "daemon.log"
        self.env = {**os.environ, **(env or {})}
        for name in SYSTEMD_ENV:
            self.env.pop(name, None)
        self.roster = ProcessRoster()
        self.daemon: subprocess.Popen[bytes] | None = None
        self._daemon: DaemonProcess | None = None
        self._children = _OwnPids(self.roster)

    # ------------------------------------------------------------------ daemon

    def start_daemon(
        self, *, wait_ready: bool = True, fd_limit: int | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``autoheal run``; by default wait until every service is up and probed.

        Args:
            wait_ready: wait until every service is up and probed.
            fd_limit: run the daemon with this RLIMIT_NOFILE (soft and hard), e.g. so
                that a flood of connections can exhaust its descriptors for real.
        """
        self._daemon = DaemonProcess(
            self.config, self.log_path, env=self.env, fd_limit=fd_limit, roster=self.roster
        )
        self.daemon = self._daemon.popen
        if wait_ready:
            wait_for(self._ready, DAEMON_START_S, "the daemon to be ready")
        return self.daemon

    def _ready(self) -> bool:
        if self.daemon is not None and self.daemon.poll() is not None:
            raise StackError(f"daemon exited {self.daemon.returncode}:\n{self.log_text()[-4000:]}")
        doc = self.health()
        if not doc or doc.get("daemon", {}).get("pid") != self.daemon_pid():
            return False
        comps = doc.get("components", {})
        return all(
            comps.get(n, {}).get("ok") is True and comps[n].get("pid") for n in self.services
        )

    def daemon_pid(self) -> int | None:
        return None if self.daemon is None else self.daemon.pid

    def stop_daemon(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the daemon (its services owned first) and wait for it, SIGKILL after
        ``timeout``; returns its exit code."""
        proc, daemon = self.daemon, self._daemon
        if proc is None or daemon is None or daemon.popen is not proc:
            return None
        code = daemon.stop(timeout)
        self.daemon = None
        return code

    def close(self) -> None:
        """Stop the daemon, then kill any of its services still alive (ours only)."""
        self.stop_daemon()
        for name in self.services:
            self.roster.add_pidfile(
                self.runtime_dir / (name + layout.PIDFILE_SUFFIX), f"service {name}"
            )
        # Not our children (the daemon or a direct CLI started them): gone or a zombie
        # left for init to reap is enough.
        self.roster.reap()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ CLI

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Run ``autoheal ARGS --config CFG`` as a real subprocess."""
        return subprocess.run(
            autoheal_argv(*args, config=self.config),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cli_popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``autoheal ARGS`` without waiting (for races)."""
        return subprocess.Popen(
            autoheal_argv(*args, config=self.config),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # ------------------------------------------------------------------ files

    def health(self) -> dict[str, Any] | None:
        doc = read_doc(self.runtime_dir / layout.HEALTH)
        return doc if isinstance(doc, dict) else None

    def flags(self) -> Any:
        return read_doc(self.runtime_dir / layout.FLAGS)

    def beats(self) -> int:
        """The daemon heartbeat's ``seq`` (0 while unreadable): one more every beat.

        health_v2.json is rewritten only when what it says changes; to let the daemon
        run a few beats, wait for this to grow instead.
        """
        doc = read_doc(self.runtime_dir / layout.DAEMON_HEARTBEAT)
        seq = doc.get("seq") if isinstance(doc, dict) else None
        return seq if isinstance(seq, int) else 0

    def wait_beats(self, count: int, timeout: float = 10.0) -> None:
        """Return once the daemon has beaten ``count`` more times."""
        start = self.beats()
        wait_for(lambda: self.beats() >= start + count, timeout, f"{count} more daemon beats")

    def pidfile(self, name: str) -> int | None:
        try:
            return int((self.runtime_dir / (name + layout.PIDFILE_SUFFIX)).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def health_pid(self, name: str) -> int | None:
        doc = self.health() or {}
        pid = doc.get("components", {}).get(name, {}).get("pid")
        return pid if isinstance(pid, int) else None

    def healthy_pid(self, name: str) -> int | None:
        """The PID when pidfile and health agree, the process runs and the probes pass."""
        doc = self.health() or {}
        comp = doc.get("components", {}).get(name, {})
        pid = self.pidfile(name)
        if pid is None or comp.get("pid") != pid or comp.get("ok") is not True:
            return None
        return pid if psutil.pid_exists(pid) else None

    def events(self, **filters: Any) -> list[Event]:
        """Journal events (oldest first), e.g. ``events(command_id=...)``."""
        path = self.runtime_dir / layout.JOURNAL
        if not path.exists():
            return []
        with Journal.open(path) as journal:
            return journal.events(limit=10_000, **filters)

    def kinds(self, **filters: Any) -> list[str]:
        return [e.kind for e in self.events(**filters)]


def alive(pid: int | None) -> bool:
    """True while ``pid`` is a running, non-zombie process."""
    if pid is None:
        return False
    try:
        status: str = psutil.Process(pid).status()
    except psutil.Error:
        return False
    return bool(status != psutil.STATUS_ZOMBIE)
