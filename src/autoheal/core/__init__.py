"""The pure core: every decision autoheal makes, as plain data in and plain data out.

Nothing here reads a clock, touches a file or a process, or imports anything but
the standard library's data modules; ``tests/core/test_purity.py`` enforces it.
"""

from autoheal.core.actions import (
    Action,
    LogTransition,
    RemoveStop,
    RestartProcess,
    SendNotice,
    StartProcess,
    StopProcess,
    WriteFlags,
    WriteStop,
)
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
from autoheal.core.machine import Decision, step
from autoheal.core.observations import (
    DeadlineReached,
    Observation,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorRestarted,
    OperatorStarted,
    OperatorStopped,
    ProbeFailed,
    ProbeSucceeded,
    ProcessExited,
    SpawnFinished,
)
from autoheal.core.policy import ComponentSpec, Policy
from autoheal.core.stages import Stage
from autoheal.core.state import ComponentState, RuntimeState, initial_state

__all__ = [
    "Action",
    "CommandRefusedError",
    "ComponentSpec",
    "ComponentState",
    "DeadlineReached",
    "Decision",
    "IllegalCommandError",
    "LogTransition",
    "Observation",
    "OperatorClearedFailsafe",
    "OperatorEnteredFailsafe",
    "OperatorRestarted",
    "OperatorStarted",
    "OperatorStopped",
    "Policy",
    "ProbeFailed",
    "ProbeSucceeded",
    "ProcessExited",
    "RemoveStop",
    "RestartProcess",
    "RuntimeState",
    "SendNotice",
    "SpawnFinished",
    "Stage",
    "StartProcess",
    "StopProcess",
    "WriteFlags",
    "WriteStop",
    "initial_state",
    "step",
]
