"""`autoheal drill` through the real CLI: an operator's own scenario folder, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import autoheal.drills
from autoheal.cli import main

SHIPPED = Path(autoheal.drills.__file__).parent / "scenarios"


def test_operator_scenario_folder_adds_a_drill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    text = (SHIPPED / "sell_without_position.toml").read_text()
    own = text.replace('name = "sell_without_position"', 'name = "my_sell_check"', 1)
    (folder / "my_sell_check.toml").write_text(own)
    monkeypatch.chdir(tmp_path)
    assert main(["drill", "list", "--scenarios", str(folder)]) == 0
    assert "my_sell_check" in capsys.readouterr().out
    report = tmp_path / "report.json"
    code = main(
        [
            "drill",
            "run",
            "my_sell_check",
            "--scenarios",
            str(folder),
            "--format",
            "json",
            "--report",
            str(report),
        ]
    )
    assert code == 0
    doc = json.loads(report.read_text())
    assert [d["name"] for d in doc["drills"]] == ["my_sell_check"]
    assert doc["drills"][0]["status"] == "PASSED"


def test_unknown_drill_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["drill", "run", "no_such_drill"]) == 2
