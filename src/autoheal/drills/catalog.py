"""Where scenarios come from: the files shipped in ``autoheal/drills/scenarios/`` plus any
directories an operator adds."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from autoheal.drills.model import Scenario, ScenarioError, load_scenario_file

__all__ = ["SCENARIO_DIR", "load_catalog", "select"]

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


def load_catalog(extra_dirs: Iterable[Path] = ()) -> dict[str, Scenario]:
    """Every scenario by name; a later directory's file replaces a shipped one of that name.

    Raises:
        ScenarioError: a file is invalid, or its ``name`` is not its file's stem.
    """
    found: dict[str, Scenario] = {}
    for directory in (SCENARIO_DIR, *map(Path, extra_dirs)):
        for path in sorted(directory.glob("*.toml")):
            scenario = load_scenario_file(path)
            if scenario.name != path.stem:
                raise ScenarioError(f"{path}: name: {scenario.name!r} must match the file name")
            found[scenario.name] = scenario
    return found


def select(catalog: dict[str, Scenario], names: Iterable[str] | None) -> list[Scenario]:
    """The scenarios to run: the named ones in order, or every ``default`` one.

    Raises:
        ScenarioError: an unknown name (the message lists the known ones).
    """
    if not names:
        return [s for s in catalog.values() if s.default]
    out = []
    for name in names:
        if name not in catalog:
            raise ScenarioError(f"unknown drill {name!r}; known: {', '.join(sorted(catalog))}")
        out.append(catalog[name])
    return out
