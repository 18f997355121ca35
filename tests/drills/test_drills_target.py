"""``autoheal drill run --target CONFIG``: daemon drills against a running target's runtime.

The target is built here as an operator would run one: a fake exchange on port 0
behind a loopback fault proxy, a ``testnet`` config rendered from the drills' demo
template, and ``python -m autoheal run --chaos --config target.toml`` as a real
subprocess that the drills neither start nor stop. Its policy is the runbook's at
1/20, except ``stable_reset`` (3 s), so that a restart episode ends within a test.
The drills judge it by its own settings (``from target policy``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from autoheal.cli.drill import EXIT_REFUSED, drill_command
from autoheal.config import load_config
from autoheal.drills.catalog import SCENARIO_DIR, load_catalog
from autoheal.drills.plan import BASIS_TARGET, DrillTarget, exchange_criteria, scaled_policy
from autoheal.drills.preconditions import NOT_RUNNING, daemon_problem, fault_problem
from autoheal.drills.stacks.demo import ProxyHarness, queue_chaos, render_config
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.drills.stacks.harness import DaemonProcess
from autoheal.drills.stacks.target import DrillLock
from autoheal.store.atomic import read_json

VARS = {"rest_timeout": "250ms", "feeder_stop_signal": "SIGTERM", "ws_max_age": "1s"}
#: The target's policy: the runbook's at 1/20, with an episode that ends 3 s after it healed.
POLICY = scaled_policy(0.05, {"stable_reset": "3s"})


# ----------------------------------------------------------------------- pure checks


def _target(**changes: Any) -> DrillTarget:
    base: dict[str, Any] = dict(
        config=Path("/t/target.toml"), environment="testnet", runtime_dir=Path("/t/rt"),
        stop_file=Path("/t/STOP.TXT"), services=("feeder", "trader"),
        dependencies=("exchange_rest",), proxies=("exchange_rest",), protected_files=(),
        max_age_s=5.0)
    return DrillTarget(**{**base, **changes})


def test_fault_problem_names_what_a_target_cannot_take() -> None:
    t = _target()
    assert fault_problem({"fault": "kill", "target": "feeder"}, t) is None
    assert fault_problem({"fault": "netcut", "target": "exchange_rest"}, t) is None
    assert "not applicable against a target" in str(
        fault_problem({"fault": "fail_on_start", "target": "feeder"}, t))
    assert "no service 'hedger'" in str(fault_problem({"fault": "stall", "target": "hedger"}, t))
    assert "no dependency 'exchange_ws'" in str(
        fault_problem({"fault": "latency", "target": "exchange_ws"}, t))
    assert "no fault proxy" in str(
        fault_problem({"fault": "netcut", "target": "exchange_rest"}, _target(proxies=())))


def test_daemon_problem_requires_a_fresh_chaos_daemon_holding_the_lock() -> None:
    # health_v2.json is written when it changes: its age says nothing; the heartbeat's does.
    health = {"ts": 10.0, "daemon": {"pid": 42, "chaos": True, "stopped": False}}
    beat = {"pid": 42, "ts": 100.0}

    def problem(doc: object, holder: str | None, now: float = 101.0, hb: object = beat) -> str:
        return str(daemon_problem(doc, holder, now_wall=now, max_age_s=5.0, beat=hb))

    assert daemon_problem(health, "42", now_wall=101.0, max_age_s=5.0, beat=beat) is None
    assert "no daemon holds the lock" in problem(health, None)
    no_chaos = {**health, "daemon": {"pid": 42, "chaos": False}}
    assert "without --chaos" in problem(no_chaos, "42")
    assert "heartbeat is 20.0s old" in problem(health, "42", now=120.0)
    assert "pid 41" in problem(health, "41")
    assert "unreadable" in problem(b"junk", "42")
    assert "another daemon" in problem(health, "42", hb={"pid": 7, "ts": 100.0})
    assert "missing" in problem(health, "42", hb=None)
    for doc in (health, no_chaos, None):
        assert problem(doc, None).startswith(NOT_RUNNING)


def test_exchange_criteria_are_the_order_counts() -> None:
    catalog = load_catalog()
    assert set(exchange_criteria(catalog["feeder_cannot_start"])) == {
        "trader_was_trading", "zero_new_orders_after_failsafe"}
    assert exchange_criteria(catalog["kill_feeder"]) == []


def test_drill_target_from_config_guards_only_the_config(tmp_path: Path) -> None:
    cfg = load_config(render_config(
        SCENARIO_DIR / "daemon_demo.toml.in", tmp_path / "t.toml", proxy_port=45678,
        proxy_control=tmp_path / "ctl", policy=scaled_policy(0.05), variables=VARS))
    t = DrillTarget.from_config(cfg)
    assert (t.services, t.dependencies, t.proxies) == (
        ("feeder", "trader"), ("exchange_rest",), ("exchange_rest",))
    assert t.runtime_dir == tmp_path / "shared_data" and t.stop_file == tmp_path / "STOP.TXT"
    guard = t.protect()
    guard.capture()
    assert guard.describe()["files"] == [str(tmp_path / "t.toml")]
    assert t.max_age_s == 5.0  # 5 heartbeats of 200 ms is less than the 5 s floor


# ----------------------------------------------------------------------- a real target


def _wait_for(what: str, predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _health(runtime: Path) -> dict[str, Any]:
    doc = read_json(runtime / "health_v2.json").doc
    return doc if isinstance(doc, dict) else {}


@pytest.fixture(scope="module")
def target_cfg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A testnet target: exchange + fault proxy running, config rendered (no daemon yet)."""
    root = tmp_path_factory.mktemp("target")
    exchange = ExchangeHarness(root / "exchange", seed=3)
    anyio.run(exchange.start)
    proxy = ProxyHarness(root / "proxy", exchange.url.split("//", 1)[1])
    try:
        anyio.run(proxy.start)
        template = root / "target.toml.in"
        text = (SCENARIO_DIR / "daemon_demo.toml.in").read_text()
        template.write_text(text.replace('environment = "paper"', 'environment = "testnet"'))
        yield render_config(template, root / "target.toml", proxy_port=proxy.port,
                            proxy_control=proxy.control_file, policy=POLICY,
                            variables=VARS)
    finally:
        anyio.run(proxy.stop)
        anyio.run(exchange.stop)


@contextmanager
def target_daemon(cfg: Path, *, chaos: bool) -> Iterator[subprocess.Popen[bytes]]:
    """``autoheal run [--chaos] --config cfg``, stopped (SIGTERM, then SIGKILL) at the end,
    with whatever it left (the drills' harness)."""
    daemon = DaemonProcess(cfg, cfg.parent / "daemon.log", chaos=chaos)
    runtime = cfg.parent / "shared_data"
    try:
        _wait_for("the target's health from this daemon", lambda: (
            _health(runtime).get("daemon", {}).get("pid") == daemon.pid))
        yield daemon.popen
    finally:
        daemon.stop(15)
        daemon.roster.reap()


def _run(cfg: Path, names: list[str], tmp_path: Path, *,
         wait: str | None = None) -> tuple[int, dict[str, Any]]:
    report = tmp_path / "report.json"
    code = drill_command("run", names, target=str(cfg), fmt="json", report=str(report),
                         runtime_dir=tmp_path / "rt", wait=wait)
    return code, json.loads(report.read_text())


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_target_daemon_not_running_is_an_error_not_a_crash(
        target_cfg: Path, tmp_path: Path) -> None:
    code, doc = _run(target_cfg, ["live_gating_a", "kill_feeder"], tmp_path)
    assert code == 1
    gating, drill = doc["drills"]
    assert drill["status"] == "ERROR"
    assert NOT_RUNNING in drill["details"]["error"]
    assert "no daemon holds the lock" in drill["details"]["error"]
    # Guard-kind drills ignore the target: their own temp dirs, as without one.
    assert gating["status"] == "PASSED" and "ran_against" not in gating["details"]
    assert doc["target"] == {"config": str(target_cfg), "drills": ["kill_feeder"]}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_target_daemon_without_chaos_is_an_error(target_cfg: Path, tmp_path: Path) -> None:
    with target_daemon(target_cfg, chaos=False) as popen:
        code, doc = _run(target_cfg, ["kill_feeder"], tmp_path)
        assert popen.poll() is None
    assert code == 1
    (drill,) = doc["drills"]
    assert drill["status"] == "ERROR"
    assert f"{NOT_RUNNING}: the daemon (pid {popen.pid}) runs without --chaos" in \
        drill["details"]["error"]
    assert "chaos_heal" not in " ".join(drill["details"]["rollback"])  # nothing injected


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_daemon_drills_run_against_the_target_and_leave_it_running(
        target_cfg: Path, tmp_path: Path) -> None:
    runtime = target_cfg.parent / "shared_data"
    config_sha = hashlib.sha256(target_cfg.read_bytes()).hexdigest()
    with target_daemon(target_cfg, chaos=True) as popen:
        _wait_for("the target's DOR", lambda: _health(runtime).get("dor") is True)
        t0 = time.monotonic()
        code, doc = _run(target_cfg, ["kill_feeder", "network_cut"], tmp_path)
        took = time.monotonic() - t0
        by_name = {d["name"]: d for d in doc["drills"]}
        assert code == 0, {n: (d["status"], d["details"].get("error"),
                               [c for c in d["criteria"] if not c["held"]])
                           for n, d in by_name.items()}
        assert doc["target"] == {"config": str(target_cfg),
                                 "drills": ["kill_feeder", "network_cut"]}
        for drill in by_name.values():
            assert drill["status"] == "PASSED"
            assert isinstance(drill["time_to_detect_s"], float)
            assert isinstance(drill["time_to_recover_s"], float)
            assert drill["details"]["ran_against"] == f"target {target_cfg}"
            assert drill["details"]["daemon_pid"] == str(popen.pid)
            assert "chaos_heal" in " ".join(drill["details"]["rollback"])
            # Only the config is guarded: flags and health are what the drill moves.
            assert drill["details"]["protected"]["files"] == [str(target_cfg)]
            # Judged by the target's own clock, and the report says so.
            assert drill["details"]["time_basis"] == BASIS_TARGET
            assert "drill_lock" in drill["details"]["rollback"][-1]  # released last
        assert doc["time_basis"] == BASIS_TARGET
        # The cut lasted what the target's own probes need (not the scenario's 1/20).
        cut = by_name["network_cut"]["details"]
        assert cut["fault"]["for"] == f"{cut['target_timing']['fault_for_s']:g}s"
        assert by_name["kill_feeder"]["details"]["chaos_result"]["fault"] == "kill"
        print(f"target drills took {took:.2f}s: " + ", ".join(
            f"{n} detect {d['time_to_detect_s']:.2f}s recover {d['time_to_recover_s']:.2f}s"
            for n, d in by_name.items()))
        # The target is still ours to run: same daemon, DOR back.
        assert popen.poll() is None
        _wait_for("the target's DOR after the drills", lambda: _health(runtime).get("dor") is True)

        # A fault that would rewrite the config is refused; the config is untouched.
        code, doc = _run(target_cfg, ["feeder_cannot_start"], tmp_path / "fcs")
        (drill,) = doc["drills"]
        assert code == 1 and drill["status"] == "ERROR"
        assert "not applicable against a target" in drill["details"]["error"]
        assert set(drill["details"]["skipped_criteria"]) == {
            "trader_was_trading", "zero_new_orders_after_failsafe"}
        assert popen.poll() is None
    assert hashlib.sha256(target_cfg.read_bytes()).hexdigest() == config_sha
    assert not (target_cfg.parent / "STOP.TXT").exists()


def _component(runtime: Path, name: str) -> dict[str, Any]:
    comp = _health(runtime).get("components", {}).get(name, {})
    return comp if isinstance(comp, dict) else {}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_drill_waits_for_the_preconditions_or_is_refused_naming_them(
        target_cfg: Path, tmp_path: Path) -> None:
    """A feeder inside its restart episode holds a kill_feeder back: refused after a short
    wait (exit 3, nothing injected), then, with a longer one, it waits and passes. A drill
    lock held by someone else refuses a drill the same way."""
    runtime = target_cfg.parent / "shared_data"
    with target_daemon(target_cfg, chaos=True) as popen:
        _wait_for("the target's DOR and no open episode", lambda: _health(runtime).get(
            "dor") is True and all(c.get("attempts") == 0 for c in _health(runtime).get(
                "components", {}).values()), timeout_s=30.0)
        anyio.run(lambda: queue_chaos(runtime, "kill", "feeder", timeout_s=10.0))
        _wait_for("the kill in the health document",
                  lambda: _component(runtime, "feeder").get("attempts", 0) >= 1)

        code, doc = _run(target_cfg, ["kill_feeder"], tmp_path / "short", wait="0.5s")
        (drill,) = doc["drills"]
        assert code == EXIT_REFUSED and drill["status"] == "ERROR"
        refused = drill["details"]["refused"]
        assert refused.startswith("preconditions not met after 0.5s: ") and "feeder" in refused
        assert "chaos_calls" not in drill["details"]  # nothing injected
        assert "chaos_heal" not in " ".join(drill["details"]["rollback"])

        t0 = time.monotonic()
        code, doc = _run(target_cfg, ["kill_feeder"], tmp_path / "long", wait="20s")
        (drill,) = doc["drills"]
        assert code == 0, (drill["details"].get("error"),
                           [c for c in drill["criteria"] if not c["held"]])
        pre = drill["details"]["preconditions"]
        assert pre["waited_s"] > 0.5 and any("feeder" in w for w in pre["waited_for"])
        print(f"waited {pre['waited_s']}s for {pre['waited_for']}; "
              f"drill took {time.monotonic() - t0:.2f}s")

        lock = DrillLock(runtime)
        assert lock.try_acquire() is None
        try:
            code, doc = _run(target_cfg, ["network_cut"], tmp_path / "locked", wait="0.5s")
        finally:
            lock.release()
        (drill,) = doc["drills"]
        assert code == EXIT_REFUSED
        assert drill["details"]["refused"].startswith(f"another drill (pid {os.getpid()})")
        assert popen.poll() is None
