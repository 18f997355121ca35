"""Running one shipped drill, with its scenario's parameters changed, for the mutation tests."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import anyio

from autoheal.drills import DrillResult, Status, load_catalog, run_one


def run(tmp_path: Path, drill: str, **params: Any) -> DrillResult:
    """Run ``drill`` from the catalog with ``params`` set (data, not code)."""
    scenario = load_catalog()[drill]
    if params:
        scenario = scenario.with_params(**params)
    return anyio.run(partial(run_one, scenario, tmp_path / drill))


def violated(result: DrillResult) -> set[str]:
    """The criteria a FAILED drill names (anything but FAILED is a test failure)."""
    assert result.status is Status.FAILED, (result.status, result.details.get("error"))
    return {c.name for c in result.failed_criteria}
