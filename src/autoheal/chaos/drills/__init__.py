"""Drills: scenarios as data, a runner under the blast-radius guard, text and JSON reports.

``run_drills(names, ...)`` plays scenarios from ``autoheal/chaos/scenarios/*.toml``
(plus any directories given) and returns a :class:`Report`; ``drill_command`` is
the ``autoheal drill list|run`` entry.
"""

from autoheal.chaos.drills.catalog import load_catalog
from autoheal.chaos.drills.command import drill_command
from autoheal.chaos.drills.model import (
    Criterion,
    DrillResult,
    Report,
    Scenario,
    ScenarioError,
    Status,
    parse_scenario,
)
from autoheal.chaos.drills.runner import run_drills, run_one

__all__ = [
    "Criterion",
    "DrillResult",
    "Report",
    "Scenario",
    "ScenarioError",
    "Status",
    "drill_command",
    "load_catalog",
    "parse_scenario",
    "run_drills",
    "run_one",
]
