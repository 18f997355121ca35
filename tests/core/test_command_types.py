"""The command types and what each asks of the core: one enum, one table (core/commands.py)."""

from __future__ import annotations

import pytest

from autoheal.core import (
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorRestarted,
    OperatorSetReduceOnly,
    OperatorStarted,
    OperatorStopped,
)
from autoheal.core.commands import COMPONENT_COMMANDS, CommandType, is_chaos, observation_for


@pytest.mark.parametrize(
    ("command_type", "expected"),
    [
        ("restart", OperatorRestarted("feeder", "why", "alice")),
        ("stop", OperatorStopped("feeder", "why", "alice")),
        ("start", OperatorStarted("feeder", "why", "alice")),
        ("failsafe_enter", OperatorEnteredFailsafe("why", "alice")),
        ("failsafe_clear", OperatorClearedFailsafe("why", "alice")),
        ("failsafe_reduce_only", OperatorSetReduceOnly("why", "alice")),
    ],
)
def test_command_type_asks_the_core_its_observation(command_type: str, expected: object) -> None:
    target = "feeder" if command_type in COMPONENT_COMMANDS else ""
    assert observation_for(command_type, target, "why", "alice") == expected
    assert observation_for(CommandType(command_type), target, "why", "alice") == expected


@pytest.mark.parametrize("command_type", ["breaker_reset", "chaos_kill", "chaos_heal", "nope", ""])
def test_command_types_the_core_does_not_step_ask_nothing(command_type: str) -> None:
    assert observation_for(command_type, "feeder", "why", "alice") is None


def test_command_type_values_are_the_journals_words() -> None:
    # Journals written by earlier versions hold these strings: they never change.
    assert [t.value for t in CommandType] == [
        "restart",
        "stop",
        "start",
        "failsafe_enter",
        "failsafe_clear",
        "failsafe_reduce_only",
        "breaker_reset",
        "failsafe_enter_scope",
        "failsafe_clear_scope",
        "risk_enable",
    ]
    assert {"restart", "stop", "start"} == COMPONENT_COMMANDS
    assert is_chaos("chaos_stall") and not is_chaos("restart")
