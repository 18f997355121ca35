"""Drill ``scoped_kill_symbol`` (issue 24) passes, and fails under each of its mutations.

The drill runs in-process against the demo venue's real HTTP server (one small
subprocess) with ccxt's own binanceusdm class. Mutations (scenario parameters):
``scope_cancel = false`` (the guard ignores a scoped halt: the halted symbol's orders
stay) and ``scope_only = false`` (the scoped kill cancels every own order: the other
symbol's go too).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from autoheal.drills import DrillResult, Status, load_catalog, run_one

pytestmark = [pytest.mark.timeout(60)]

DRILL = "scoped_kill_symbol"


def _run(tmp_path: Path, **params: Any) -> DrillResult:
    scenario = load_catalog()[DRILL]
    if params:
        scenario = scenario.with_params(**params)
    return anyio.run(partial(run_one, scenario, tmp_path / DRILL))


def test_the_scoped_kill_drill_passes(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.status is Status.PASSED, (result.status, result.details.get("error"))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"scope_cancel": False}, {"event:scope_orders_gone", "halted_open_after"}),
        ({"scope_only": False}, {"other_open_after"}),
    ],
    ids=["scope_cancel", "scope_only"],
)
def test_each_mutation_fails_exactly_its_criteria(
    tmp_path: Path, params: dict[str, Any], expected: set[str]
) -> None:
    result = _run(tmp_path, **params)
    assert result.status is Status.FAILED, (result.status, result.details.get("error"))
    assert {c.name for c in result.failed_criteria} == expected
