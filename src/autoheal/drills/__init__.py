"""Drills: scenarios as data, a runner under the blast-radius guard, text and JSON reports.

``run_drills(names, ...)`` plays scenarios from ``autoheal/drills/scenarios/*.toml``
(plus any directories given) and returns a :class:`Report`. The ``autoheal drill
list|run`` command is :mod:`autoheal.cli.drill` (nothing here imports the CLI).
"""

from autoheal.drills.catalog import load_catalog
from autoheal.drills.model import (
    Criterion,
    DrillResult,
    Report,
    Scenario,
    ScenarioError,
    Status,
    parse_scenario,
)
from autoheal.drills.runner import run_drills, run_one

__all__ = [
    "Criterion",
    "DrillResult",
    "Report",
    "Scenario",
    "ScenarioError",
    "Status",
    "load_catalog",
    "parse_scenario",
    "run_drills",
    "run_one",
]
