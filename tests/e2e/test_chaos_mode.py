"""Chaos mode with a real daemon, real faults and the real CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from autoheal.drills.stacks.simple import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

SLEEPER = "import time\nwhile True: time.sleep(1)"


def _health(rt: Path) -> dict:
    try:
        return orjson.loads((rt / "health_v2.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}


def _worker_pid(rt: Path) -> int | None:
    return _health(rt).get("components", {}).get("worker", {}).get("pid")


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoheal", *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("wb")
    try:
        return subprocess.Popen(cmd, stdout=fh, stderr=fh)
    finally:
        fh.close()


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@pytest.fixture
def exchange_behind_proxy(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The demo exchange and a fault proxy in front of it, both on OS-picked ports."""
    ex_file, px_file, ctl_file = tmp_path / "ex.json", tmp_path / "px.port", tmp_path / "px.control"
    exchange = _start(
        [
            sys.executable,
            "-m",
            "autoheal.demo.exchange",
            "--port",
            "0",
            "--port-file",
            str(ex_file),
        ],
        tmp_path / "exchange.log",
    )
    procs = [exchange]
    try:
        wait_for(ex_file.exists, 20, "exchange port file")
        ex_port = orjson.loads(ex_file.read_bytes())["port"]
        proxy = _start(
            [
                sys.executable,
                "-m",
                "autoheal.chaos.proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                f"127.0.0.1:{ex_port}",
                "--port-file",
                str(px_file),
                "--control-port-file",
                str(ctl_file),
            ],
            tmp_path / "proxy.log",
        )
        procs.append(proxy)
        wait_for(lambda: px_file.exists() and ctl_file.exists(), 20, "proxy port files")
        yield int(px_file.read_text()), ctl_file
    finally:
        for p in procs:
            _stop(p)


def _config(
    tmp: Path,
    *,
    env: str = "paper",
    proxy: tuple[int, Path] | None = None,
    protected: tuple[Path, ...] = (),
) -> Path:
    argv = orjson.dumps([sys.executable, "-c", SLEEPER]).decode()
    text = (
        f'environment = "{env}"\n[paths]\nruntime_dir = "rt"\nstop_file = "STOP.TXT"\n'
        '[policy]\nrestart_backoff = ["300ms"]\nverify_window = "3s"\n'
        '[daemon]\nheartbeat_interval = "200ms"\n'
        f"[services.worker]\nargv = {argv}\n"
    )
    if proxy is not None:
        port, control = proxy
        text += (
            'depends_on = ["exchange_rest"]\n'
            "[dependencies.exchange_rest]\n[[dependencies.exchange_rest.probes]]\n"
            f'kind = "http"\nurl = "http://127.0.0.1:{port}/api/ping"\n'
            'interval = "200ms"\ntimeout = "400ms"\n'
            f'[chaos]\nproxies = {{ exchange_rest = "{control}" }}\n'
        )
    if protected:
        files = orjson.dumps([str(p) for p in protected]).decode()
        table = "" if proxy is not None else "[chaos]\n"  # the proxy already opened [chaos]
        text += f"{table}protected_files = {files}\n"
    cfg = tmp / "autoheal.toml"
    cfg.write_text(text)
    return cfg


def test_chaos_refused_in_live_environment_nothing_started(tmp_path: Path) -> None:
    cfg = _config(tmp_path, env="live")
    result = _cli(cfg, "run", "--chaos")
    assert result.returncode == 3
    assert "live" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "rt").exists()  # nothing started, nothing written
    assert _cli(cfg, "chaos", "kill", "worker").returncode == 3


def test_chaos_kill_and_corrupt_then_heal(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    rt = tmp_path / "rt"
    daemon = _start(
        [sys.executable, "-m", "autoheal", "run", "--chaos", "--config", str(cfg)],
        tmp_path / "daemon.log",
    )
    try:
        first = wait_for(
            lambda: _health(rt).get("components", {}).get("worker", {}).get("pid"),
            20,
            "worker started",
        )
        result = _cli(cfg, "chaos", "kill", "worker")
        assert result.returncode == 0, result.stderr
        wait_for(
            lambda: (pid := _health(rt)["components"]["worker"]["pid"]) and pid != first,
            20,
            "a new worker",
        )
        victim = rt / "state_bus.json"
        victim.write_bytes(b'{"ok": 1}\n')
        assert _cli(cfg, "chaos", "corrupt", "state_bus.json", "--for", "30s").returncode == 0
        assert victim.read_bytes() == b"{ invalid json"
        # a file outside the runtime directory is refused
        outside = _cli(cfg, "chaos", "corrupt", "../autoheal.toml")
        assert outside.returncode == 1
        assert "outside" in outside.stderr
        assert _cli(cfg, "chaos", "heal").returncode == 0
        assert victim.read_bytes() == b'{"ok": 1}\n'
        events = _cli(cfg, "events", "--json").stdout
        kinds = [orjson.loads(line)["kind"] for line in events.splitlines()]
        assert "chaos_action" in kinds
        assert "chaos_ended" in kinds
    finally:
        assert _stop(daemon) == 0


def _degraded(rt: Path) -> dict | None:
    doc = _health(rt)
    return doc if doc.get("degraded") else None


def test_chaos_netcut_degrades_and_ends_by_itself(
    tmp_path: Path, exchange_behind_proxy: tuple[int, Path]
) -> None:
    cfg = _config(tmp_path, proxy=exchange_behind_proxy)
    rt = tmp_path / "rt"
    daemon = _start(
        [sys.executable, "-m", "autoheal", "run", "--chaos", "--config", str(cfg)],
        tmp_path / "daemon.log",
    )
    try:
        wait_for(lambda: _health(rt).get("dor"), 20, "DOR true")
        # --no-wait: the CLI is gone at once; the fault must still end by itself
        result = _cli(cfg, "chaos", "netcut", "exchange_rest", "--for", "2s", "--no-wait")
        assert result.returncode == 0, result.stderr
        doc = wait_for(lambda: _degraded(rt), 20, "DEGRADED")
        assert doc["dor"] is False
        assert doc["dependencies"]["exchange_rest"]["reason"] in ("CONN_TIMEOUT", "CONN_ERROR")
        assert "exchange_rest" in doc["failing_components"]
        flags = orjson.loads((rt / "global_flags.json").read_bytes())
        assert flags["mode"] == "DEGRADED"
        assert doc["components"]["worker"]["restarts"] == 0
        wait_for(lambda: _health(rt).get("dor"), 30, "recovery after the fault ended")
        assert orjson.loads((rt / "global_flags.json").read_bytes())["mode"] == "NORMAL"
        events = [orjson.loads(x) for x in _cli(cfg, "events", "--json").stdout.splitlines()]
        changes = [e for e in events if e["kind"] == "probe_changed"]
        assert any(e["component"] == "exchange_rest" and e["reason"] != "ok" for e in changes)
        assert any(e["component"] == "exchange_rest" and e["reason"] == "ok" for e in changes)
    finally:
        assert _stop(daemon) == 0


def test_chaos_needs_a_chaos_daemon(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert _cli(cfg, "chaos", "kill", "worker").returncode == 1  # no daemon at all
    rt = tmp_path / "rt"
    daemon = _start(
        [sys.executable, "-m", "autoheal", "run", "--config", str(cfg)], tmp_path / "daemon.log"
    )
    try:
        wait_for(
            lambda: _health(rt).get("components", {}).get("worker", {}).get("pid"), 20, "worker"
        )
        result = _cli(cfg, "chaos", "kill", "worker")
        assert result.returncode == 3
        assert "--chaos" in result.stderr
    finally:
        assert _stop(daemon) == 0


def test_chaos_refused_when_stop_conditions_cannot_be_established(tmp_path: Path) -> None:
    cfg = _config(tmp_path, protected=(tmp_path / "positions_of_record.json",))
    result = _cli(cfg, "run", "--chaos")
    assert result.returncode == 3
    assert "does not exist" in result.stderr
    assert not (tmp_path / "rt").exists()


def test_protected_file_touched_heals_faults_and_stops_chaos(tmp_path: Path) -> None:
    protected = tmp_path / "positions_of_record.json"
    protected.write_text('{"BTCUSDT": 1}\n')
    cfg = _config(tmp_path, protected=(protected,))
    rt = tmp_path / "rt"
    daemon = _start(
        [sys.executable, "-m", "autoheal", "run", "--chaos", "--config", str(cfg)],
        tmp_path / "daemon.log",
    )
    try:
        wait_for(
            lambda: _health(rt).get("components", {}).get("worker", {}).get("pid"), 20, "worker"
        )
        victim = rt / "state_bus.json"
        victim.write_bytes(b'{"ok": 1}\n')
        assert _cli(cfg, "chaos", "corrupt", "state_bus.json", "--for", "60s").returncode == 0
        assert victim.read_bytes() == b"{ invalid json"
        protected.write_text('{"BTCUSDT": 0}\n')  # the blast radius is breached
        wait_for(lambda: victim.read_bytes() == b'{"ok": 1}\n', 5, "the fault healed")
        refused = _cli(cfg, "chaos", "kill", "worker")
        assert refused.returncode == 3
        assert "protected" in refused.stderr
        kinds = [orjson.loads(x)["kind"] for x in _cli(cfg, "events", "--json").stdout.splitlines()]
        assert "chaos_aborted" in kinds
    finally:
        assert _stop(daemon) == 0
