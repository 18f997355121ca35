"""The loss-limit drills (issue 24), each passing and each failed by its mutation.

``phantom_loss_read`` and ``drawdown_from_peak`` run the demo trader's risk-checked
order path in-process against the fake exchange process; ``daily_loss_survives_restart``
runs the real demo trader process twice (SIGKILL between) on one runtime directory.
Each mutation is data (a scenario parameter) and must name exactly the criteria it breaks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoheal.drills import Status
from tests.drills.mutants import run, violated

pytestmark = [pytest.mark.timeout(60)]


@pytest.mark.parametrize(
    "drill", ["phantom_loss_read", "drawdown_from_peak", "daily_loss_survives_restart"]
)
def test_the_drill_passes(tmp_path: Path, drill: str) -> None:
    result = run(tmp_path, drill)
    assert result.status is Status.PASSED, (result.failed_criteria, result.details.get("error"))


MUTATIONS: list[tuple[str, dict[str, Any], set[str]]] = [
    # Every breaching read latches: the first phantom halts trading (and with fewer
    # buys placed, the last sell has nothing left to reduce).
    (
        "phantom_loss_read",
        {"risk_limits": {"max_drawdown": 100.0, "loss_breach_reads": 1}},
        {
            "latched_after_one_phantom",
            "buy_after_one_phantom",
            "latched_after_nan",
            "buy_after_good_read",
            "latched_after_two",
            "sell_after_latch",
        },
    ),
    # The fall measured from the day's first equity: the day is up, nothing latches.
    (
        "drawdown_from_peak",
        {"measure": "day_start"},
        {"event:drawdown_latched", "latched_after_fall", "buy_after_latch", "latch_reason"},
    ),
    # The day kept in memory only: the restarted trader forgot the first loss.
    (
        "daily_loss_survives_restart",
        {"durable_day": False},
        {"event:loss_latched", "realized_after_restart", "latch_reason", "buys_after_limit"},
    ),
]


@pytest.mark.parametrize(("drill", "params", "expected"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_the_mutation_fails_exactly_the_named_criteria(
    tmp_path: Path, drill: str, params: dict[str, Any], expected: set[str]
) -> None:
    result = run(tmp_path, drill, **params)
    assert violated(result) == expected
    bad = {c.name: c.observed for c in result.failed_criteria}
    if drill == "daily_loss_survives_restart":  # the restarted trader forgot the first loss
        assert (bad["realized_after_restart"], bad["buys_after_limit"]) == ("-15", "1")
