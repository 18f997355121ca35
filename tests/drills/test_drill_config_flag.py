"""``autoheal drill run --config X`` means "which config", never "drive X's daemon"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoheal.cli import main
from autoheal.drills import Status


def _config(tmp_path: Path) -> Path:
    """A paper config whose runtime directory exists, with no daemon running on it."""
    (tmp_path / "rt").mkdir()
    cfg = tmp_path / "autoheal.toml"
    cfg.write_text('environment = "paper"\n[paths]\nruntime_dir = "rt"\n'
                   '[services.feeder]\nargv = ["/bin/true"]\n')
    return cfg


def test_config_is_not_a_target_report_goes_to_its_runtime_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    monkeypatch.chdir(tmp_path)
    code = main(["drill", "run", "--config", str(cfg), "--format", "json", "live_gating_c"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"--target {cfg}" in out.err and "not a target" in out.err
    doc = json.loads(out.out)
    assert "target" not in doc
    (report,) = (tmp_path / "rt" / "drills").glob("*.json")
    assert json.loads(report.read_text())["passed"] is True


def test_config_and_a_different_target_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text(cfg.read_text())
    code = main(["drill", "run", "--config", str(cfg), "--target", str(other), "kill_feeder"])
    assert code == 2
    assert "different files" in capsys.readouterr().err
    assert not (tmp_path / "rt" / "drills").exists()


def test_config_that_does_not_load_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("environment = 42\n")
    assert main(["drill", "run", "--config", str(bad), "live_gating_a"]) == 2
    assert "config error" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kill_feeder_with_config_and_no_daemon_runs_on_its_own_stack(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Before: --config silently meant --target, and with no daemon on that runtime the
    # drill was an ERROR ("target daemon not running"). Now it brings up its own stack.
    cfg = _config(tmp_path)
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "r.json"
    code = main(["drill", "run", "--config", str(cfg), "--report", str(report), "kill_feeder"])
    out = capsys.readouterr()
    assert code == 0, out.out
    doc = json.loads(report.read_text())
    assert "target" not in doc
    (drill,) = doc["drills"]
    assert drill["status"] == str(Status.PASSED)
    assert "ran_against" not in drill["details"]
    assert drill["details"]["daemon_pid"] > 0  # its own daemon, started and stopped
    # The config's runtime directory holds only the report and the drill history (and
    # its lock): no fault went into it.
    assert sorted(p.name for p in (tmp_path / "rt").iterdir()) == [
        "drill_history.json", "drill_history.json.lock", "drills"]
