"""The one staleness rule (:mod:`autoheal.core.liveness`), and that its readers use it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import autoheal
from autoheal.core.liveness import stale_after_s

SRC = Path(autoheal.__file__).parent


@pytest.mark.parametrize(
    ("interval", "limit"),
    [(0.05, 5.0), (0.2, 5.0), (1.0, 5.0), (1.5, 7.5), (2.0, 10.0), (60.0, 300.0)],
)
def test_stale_after_is_five_beats_never_under_five_seconds(interval: float, limit: float) -> None:
    assert stale_after_s(interval) == limit


def _copies_of_the_rule(path: Path) -> list[int]:
    """Lines holding ``max(5.0, 5 * ...)``: the rule written out instead of imported."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "max"
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == 5
            and isinstance(node.args[1], ast.BinOp)
            and isinstance(node.args[1].left, ast.Constant)
            and node.args[1].left.value == 5
        ):
            found.append(node.lineno)
    return found


def test_the_rule_has_one_home() -> None:
    copies = {
        str(path.relative_to(SRC)): lines
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "liveness.py" and (lines := _copies_of_the_rule(path))
    }
    assert copies == {}
