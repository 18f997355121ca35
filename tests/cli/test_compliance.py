"""``autoheal compliance``: the matrix read from the configured runtime's real drill history."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from autoheal.cli import main
from autoheal.core.compliance import DrillRecord, history_doc
from autoheal.core.compliance_matrix import CONTROLS, drill_names
from autoheal.drills.history import history_path, read_history

pytestmark = [pytest.mark.timeout(120)]


def _config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "rt").mkdir(exist_ok=True)
    cfg = tmp_path / "autoheal.toml"
    cfg.write_text(
        'environment = "paper"\n[paths]\nruntime_dir = "rt"\n'
        '[services.feeder]\nargv = ["/bin/true"]\n' + extra
    )
    return cfg


def _write_history(tmp_path: Path, records: dict[str, DrillRecord]) -> None:
    history_path(tmp_path / "rt").write_text(json.dumps(history_doc(records)))


def _compliance(cfg: Path, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, dict]:
    code = main(["compliance", "--config", str(cfg), "--json", *more])
    return code, json.loads(capsys.readouterr().out)


def test_drill_run_records_history_that_compliance_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = time.time()
    drills = ["execution_limits", "live_gating_e", "duplicate_signals"]
    assert main(["drill", "run", "--config", str(cfg), *drills]) == 0
    capsys.readouterr()
    records, how = read_history(tmp_path / "rt")
    assert how == "ok" and records is not None
    assert set(records) == set(drills)
    assert all(
        r.status == "PASSED" and before <= r.finished_at <= time.time() + 1
        for r in records.values()
    )
    # the reports' folder holds reports only (autoheal metrics reads each as one)
    assert not list((tmp_path / "rt" / "drills").glob("*history*"))

    code, doc = _compliance(cfg, capsys)
    assert code == 1  # the other drills were never run here
    rows = {r["key"]: r for r in doc["rows"]}
    assert rows["rts6_15_1_b"]["verdict"] == "passed"  # execution_limits + live_gating_e
    assert rows["rts6_15_1_c"]["verdict"] == "passed"  # execution_limits + duplicate_signals
    assert rows["rts6_15_3"]["verdict"] == "never_run"
    drill = rows["rts6_15_1_b"]["drills"][1]
    assert drill["name"] == "live_gating_e" and drill["status"] == "PASSED"
    assert 0 <= drill["age_s"] < 60


def test_every_row_proven_exits_0_and_text_names_each_article(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    now = time.time()
    _write_history(
        tmp_path, {n: DrillRecord(n, "PASSED", now - 30, 1.0, 12.0) for n in drill_names()}
    )
    assert main(["compliance", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    for control in CONTROLS:
        assert control.article in out
    assert f"{len(CONTROLS)}/{len(CONTROLS)} controls proven" in out


def test_a_pass_older_than_the_window_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    cfg = _config(tmp_path, '[compliance]\nwindow = "1h"\n')
    _write_history(tmp_path, {n: DrillRecord(n, "PASSED", now - 7200, 1.0) for n in drill_names()})
    code, doc = _compliance(cfg, capsys)
    assert code == 1 and doc["window_s"] == 3600
    assert {r["verdict"] for r in doc["rows"]} == {"stale"}
    code, doc = _compliance(cfg, capsys, "--window", "3h")
    assert code == 0 and doc["passed"]


def test_a_corrupt_history_is_unknown_never_passed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    history_path(tmp_path / "rt").write_bytes(b'{"schema": 1, "drills": {"x": ')
    code, doc = _compliance(cfg, capsys)
    assert code == 1
    assert doc["history"] == {
        "path": str(history_path(tmp_path / "rt")),
        "read": "invalid",
        "ok": False,
    }
    assert {r["verdict"] for r in doc["rows"]} == {"unknown"}


def test_bad_window_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    assert main(["compliance", "--config", str(cfg), "--window", "soon"]) == 2
    assert "--window soon" in capsys.readouterr().err
    bad = _config(tmp_path, '[compliance]\nwindow = "0s"\n')
    assert main(["compliance", "--config", str(bad)]) == 2
    assert "compliance.window" in capsys.readouterr().err


def test_a_later_failure_unproves_a_row_that_passed_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["drill", "run", "--config", str(cfg), "execution_limits", "live_gating_e"]) == 0
    # The same drill, mutated (a scenario folder replaces a shipped one of the same name):
    # it now expects the gate to refuse, so it reports FAILED.
    shipped = Path(__file__).parents[2] / "src/autoheal/drills/scenarios/live_gating_e.toml"
    mutated = tmp_path / "scenarios"
    mutated.mkdir()
    text = shipped.read_text()
    assert 'name = "would_send_order"\nop = "=="\nexpected = false' in text
    (mutated / "live_gating_e.toml").write_text(
        text.replace(
            'name = "would_send_order"\nop = "=="\nexpected = false',
            'name = "would_send_order"\nop = "=="\nexpected = true',
        )
    )
    assert (
        main(["drill", "run", "--config", str(cfg), "--scenarios", str(mutated), "live_gating_e"])
        == 1
    )
    capsys.readouterr()
    code, doc = _compliance(cfg, capsys)
    row = next(r for r in doc["rows"] if r["key"] == "rts6_15_1_b")
    assert code == 1 and row["verdict"] == "failed"
    drill = row["drills"][1]
    assert drill["name"] == "live_gating_e"
    assert drill["status"] == "FAILED" and drill["last_passed_at"] is not None
