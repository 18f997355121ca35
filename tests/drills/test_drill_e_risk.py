"""Drill E is decided by the real risk guard: gating allows, risk blocks, the limit is named."""

from __future__ import annotations

from pathlib import Path

from autoheal.drills import Status, run_drills
from tests.drills.test_drills import mutated


def test_drill_e_passes_with_the_limit_named(tmp_path: Path) -> None:
    report = run_drills(["live_gating_e"], work_dir=tmp_path / "w", progress=lambda _: None,
                        runtime_dir=tmp_path / "rt")
    (result,) = report.results
    assert result.status is Status.PASSED, result.failed_criteria or result.details
    assert list(result.gates_fired) == ["risk_notional_total"]
    first, second = result.details["risk"]["orders"]
    assert first["allowed"] is True and second["allowed"] is False
    assert second["reasons"] == [
        "risk_notional_total live_notional_after=1200 > max_live_notional_total=1000"]


def test_mutation_raising_the_limit_turns_drill_e_failed(tmp_path: Path) -> None:
    scenarios = mutated(tmp_path, "live_gating_e", "live_gating_e_limit_raised",
                        ("max_live_notional_total = 1000.0", "max_live_notional_total = 2000.0"))
    report = run_drills(["live_gating_e_limit_raised"], work_dir=tmp_path / "w",
                        scenario_dirs=[scenarios], progress=lambda _: None)
    (result,) = report.results
    assert result.status is Status.FAILED
    violated = {c.name: c.observed for c in result.failed_criteria}
    assert violated == {"would_send_order": "true", "risk_blocked": "false", "risk_reasons": "''",
                        "risk_limits_named": "''"}
    assert not report.passed
