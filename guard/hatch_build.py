"""autoheal-guard's wheel: exactly the files of ../src/autoheal that autoheal's wheel leaves out.

One list, in ../pyproject.toml (``tool.hatch.build.targets.wheel.exclude``): autoheal
excludes those paths and this hook ships them, so the two wheels are disjoint and
together hold every file autoheal's single wheel held (tests/test_distributions.py).
An editable install ships nothing: ``dev-mode-dirs`` puts ../src on the path.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def guard_paths(repo: Path) -> list[str]:
    """The repository-relative paths (under src/) that belong to autoheal-guard."""
    with (repo / "pyproject.toml").open("rb") as f:
        config = tomllib.load(f)
    paths = config["tool"]["hatch"]["build"]["targets"]["wheel"]["exclude"]
    for path in paths:
        if not path.startswith("src/autoheal/") or not (repo / path).exists():
            raise ValueError(f"autoheal-guard: {path!r} is not a path under src/autoheal/")
    return list(paths)


class GuardFiles(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "standard":
            return
        repo = Path(self.root).resolve().parent
        for path in guard_paths(repo):
            build_data["force_include"][str(repo / path)] = path.removeprefix("src/")
