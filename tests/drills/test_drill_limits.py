"""The execution-limits drill: the real guard refuses; a limit out of reach turns it FAILED."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.drills import Status, run_drills
from tests.drills.test_drills import mutated

pytestmark = [pytest.mark.timeout(60)]


def test_execution_limits_passes_and_names_the_three_limits(tmp_path: Path) -> None:
    report = run_drills(["execution_limits"], work_dir=tmp_path / "w", progress=lambda _: None)
    (result,) = report.results
    assert result.status is Status.PASSED, result.failed_criteria or result.details
    assert list(result.gates_fired) == [
        "risk_collar_window",
        "risk_price_collar",
        "risk_message_rate",
    ]
    answers = [step["answer"] for step in result.details["script"]]
    assert answers[2] == "risk_collar_window"  # 106 after 100 within 60 s, inside 2 % of its mark


@pytest.mark.parametrize(
    ("replacement", "broken"),
    [
        (
            ("collar_window_pct = 5", "collar_window_pct = 50"),
            {"window_step_refused": "'ok'", "event:collar_window_refused": "never"},
        ),
        (
            ("price_collar_pct = 2", "price_collar_pct = 50"),
            {"off_mark_refused": "'risk_collar_window'"},
        ),
        (
            ("max_submits_per_s = 3", "max_submits_per_s = 100"),
            {"fourth_submit": "'ok'", "event:message_rate_refused": "never"},
        ),
    ],
    ids=["window_collar_out_of_reach", "order_collar_out_of_reach", "message_limit_out_of_reach"],
)
def test_each_limit_out_of_reach_fails_the_drill_naming_it(
    tmp_path: Path, replacement: tuple[str, str], broken: dict[str, str]
) -> None:
    scenarios = mutated(tmp_path, "execution_limits", "execution_limits_mutant", replacement)
    report = run_drills(
        ["execution_limits_mutant"],
        work_dir=tmp_path / "w",
        scenario_dirs=[scenarios],
        progress=lambda _: None,
    )
    (result,) = report.results
    assert result.status is Status.FAILED
    violated = {c.name: c.observed for c in result.failed_criteria}
    assert set(violated) == set(broken), violated
    for name, observed in broken.items():
        if name.startswith("event:"):
            continue
        assert violated[name] == observed
