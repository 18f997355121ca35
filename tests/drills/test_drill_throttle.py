"""The repeated-execution drill (issue 24): passing, and failed by each mutation.

``repeated_execution_throttle`` runs two strategies of the demo trader's risk-checked
order path in-process against the fake exchange process, and the operator's enable
through the CLI's own journaled path. Each mutation is data (a scenario parameter)
and must name exactly the criteria it breaks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoheal.drills import Status
from tests.drills.mutants import run, violated

pytestmark = [pytest.mark.timeout(60)]


def test_the_drill_passes(tmp_path: Path) -> None:
    result = run(tmp_path, "repeated_execution_throttle")
    assert result.status is Status.PASSED, (result.failed_criteria, result.details.get("error"))


MUTATIONS: list[tuple[str, dict[str, Any], set[str]]] = [
    # Executions never counted: nothing is disabled, grid keeps buying.
    (
        "none",
        {"latch": "none"},
        {
            "event:scope_disabled",
            "latched_scopes",
            "latch_executions",
            "grid_buy_while_disabled",
            "refused_with_token",
            "grid_buy_after_other_enable",
            "enabled_scope",
        },
    ),
    # The latch kept in memory only: the file never holds it, so the operator's enable
    # finds nothing to lift and grid stays disabled for good.
    (
        "memory",
        {"latch": "memory"},
        {
            "event:scope_disabled",
            "event:re_enabled",
            "latched_scopes",
            "latch_executions",
            "enabled_scope",
            "grid_buy_after_enable",
        },
    ),
]


@pytest.mark.parametrize(("mode", "params", "expected"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_the_mutation_fails_exactly_the_named_criteria(
    tmp_path: Path, mode: str, params: dict[str, Any], expected: set[str]
) -> None:
    result = run(tmp_path, "repeated_execution_throttle", **params)
    assert violated(result) == expected
