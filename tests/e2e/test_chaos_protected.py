"""Chaos never reaches protected state (issue 9, defect 8), with a real daemon and the real CLI.

``chaos corrupt`` refuses the journal, the state file, the flags, the stop file and the
order ledger whatever the config says; a hot reload to ``environment = "live"`` heals
every fault and refuses every later one (exit 3), journaled as ``chaos_disabled``.
"""

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


def _config_text(env: str) -> str:
    argv = orjson.dumps([sys.executable, "-c", SLEEPER]).decode()
    # The stop file inside the runtime directory: only the built-in protection keeps
    # ``chaos corrupt STOP.TXT`` from halting trading.
    return (
        f'environment = "{env}"\n[paths]\nruntime_dir = "rt"\nstop_file = "rt/STOP.TXT"\n'
        '[policy]\nrestart_backoff = ["300ms"]\nverify_window = "3s"\n'
        '[daemon]\nheartbeat_interval = "200ms"\n'
        f"[services.worker]\nargv = {argv}\n"
    )


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoheal", *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _events(cfg: Path) -> list[dict]:
    return [orjson.loads(x) for x in _cli(cfg, "events", "--json").stdout.splitlines()]


def _worker_pid(rt: Path) -> int | None:
    try:
        doc = orjson.loads((rt / "health_v2.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return doc.get("components", {}).get("worker", {}).get("pid")


@pytest.fixture
def chaos_daemon(tmp_path: Path) -> Iterator[Path]:
    """A ``run --chaos`` daemon on a paper config; yields the config path."""
    cfg = tmp_path / "autoheal.toml"
    cfg.write_text(_config_text("paper"))
    (tmp_path / "rt").mkdir()  # the stop file's folder must exist (check-config)
    with (tmp_path / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "autoheal", "run", "--chaos", "--config", str(cfg)],
            stdout=log,
            stderr=log,
        )
    try:
        wait_for(lambda: _worker_pid(tmp_path / "rt"), 20, "worker started")
        yield cfg
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        try:
            assert daemon.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
            raise


def _snapshot(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def test_chaos_corrupt_refuses_protected_runtime_files(chaos_daemon: Path) -> None:
    cfg = chaos_daemon
    rt = cfg.parent / "rt"
    (rt / "runtime").mkdir(exist_ok=True)
    (rt / "runtime" / "order_sigs.json").write_bytes(b'{"sigs": {}}\n')
    (rt / "state_alias.json").symlink_to(rt / "autoheal_state.json")
    names = [
        "journal.sqlite3",
        "journal.sqlite3-wal",
        "journal.sqlite3-shm",
        "autoheal_state.json",
        "global_flags.json",
        "STOP.TXT",
        "runtime/order_sigs.json",
        "state_alias.json",  # a symlink to the state file is the state file
    ]
    for name in names:
        before = _snapshot(rt / name)
        result = _cli(cfg, "chaos", "corrupt", name, "--for", "30s")
        assert result.returncode == 3, (name, result.stdout, result.stderr)
        assert "protected" in result.stderr and "never corrupts" in result.stderr, name
        after = _snapshot(rt / name)
        if name.startswith("journal"):
            assert after is None or not after.startswith(b"{ invalid json"), name
        else:
            assert after == before, name
    assert not (rt / "STOP.TXT").exists()
    # An ordinary runtime file is still fair game.
    (rt / "state_bus.json").write_bytes(b'{"ok": 1}\n')
    assert _cli(cfg, "chaos", "corrupt", "state_bus.json", "--for", "30s").returncode == 0
    assert _cli(cfg, "chaos", "heal").returncode == 0
    assert (rt / "state_bus.json").read_bytes() == b'{"ok": 1}\n'


def test_reload_to_live_refuses_chaos_commands(chaos_daemon: Path) -> None:
    cfg = chaos_daemon
    rt = cfg.parent / "rt"
    # An operator's second config for the same runtime: the CLI's own "live" check
    # cannot stand in for the daemon's here, so this proves the daemon refuses.
    paper = cfg.parent / "paper.toml"
    paper.write_text(_config_text("paper"))
    victim = rt / "state_bus.json"
    victim.write_bytes(b'{"ok": 1}\n')
    assert _cli(paper, "chaos", "corrupt", "state_bus.json", "--for", "60s").returncode == 0
    assert victim.read_bytes() == b"{ invalid json"

    cfg.write_text(_config_text("live"))  # hot reload: the daemon polls the file's stat
    disabled = wait_for(
        lambda: [e for e in _events(paper) if e["kind"] == "chaos_disabled"], 20, "chaos_disabled"
    )
    assert disabled[0]["reason"] == "environment_live"
    assert victim.read_bytes() == b'{"ok": 1}\n'  # the active fault was healed

    pid = _worker_pid(rt)
    refused = _cli(paper, "chaos", "kill", "worker")
    assert refused.returncode == 3, refused.stderr
    assert "live" in refused.stderr
    assert _worker_pid(rt) == pid
    assert _cli(cfg, "chaos", "kill", "worker").returncode == 3  # the CLI's own gate too


def test_reload_to_an_invalid_live_config_still_ends_chaos(chaos_daemon: Path) -> None:
    cfg = chaos_daemon
    rt = cfg.parent / "rt"
    paper = cfg.parent / "paper.toml"
    paper.write_text(_config_text("paper"))
    victim = rt / "state_bus.json"
    victim.write_bytes(b'{"ok": 1}\n')
    assert _cli(paper, "chaos", "corrupt", "state_bus.json", "--for", "60s").returncode == 0
    # "live", plus a typo that makes the whole file invalid: the reload is refused...
    cfg.write_text(_config_text("live") + "[daemon.typo]\n")
    wait_for((rt / "alerts" / "config_invalid.json").exists, 20, "config_invalid alert")
    # ...but chaos is over all the same.
    wait_for(
        lambda: [e for e in _events(paper) if e["kind"] == "chaos_disabled"], 20, "chaos_disabled"
    )
    assert victim.read_bytes() == b'{"ok": 1}\n'
    assert _cli(paper, "chaos", "kill", "worker").returncode == 3
