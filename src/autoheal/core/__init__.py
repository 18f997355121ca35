"""The pure core: every decision autoheal makes, as plain data in and plain data out.

Nothing here reads a clock, touches a file or a process, or imports anything but
the standard library's data modules; ``tests/core/test_purity.py`` enforces it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoheal.core.actions import (
        Action,
        LogSwitchEvent,
        LogTransition,
        RemoveRiskLatch,
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
        ConfigReloaded,
        DeadlineReached,
        FleetDetached,
        FleetLost,
        FleetSwitchRead,
        Observation,
        OperatorClearedFailsafe,
        OperatorEnteredFailsafe,
        OperatorRestarted,
        OperatorSetReduceOnly,
        OperatorStarted,
        OperatorStopped,
        ProbeFailed,
        ProbeSucceeded,
        ProcessExited,
        RiskLatchSeen,
        SpawnFinished,
        SwitchFilesRead,
        SwitchWriteFailed,
        SwitchWriteLanded,
    )
    from autoheal.core.policy import ComponentSpec, Policy
    from autoheal.core.stages import Stage
    from autoheal.core.state import ComponentState, RuntimeState, initial_state

# Imported on first use: `autoheal status` needs only durations, not the machine.
_LAZY: dict[str, str] = {
    "Action": "autoheal.core.actions",
    "CommandRefusedError": "autoheal.core.errors",
    "ComponentSpec": "autoheal.core.policy",
    "ComponentState": "autoheal.core.state",
    "DeadlineReached": "autoheal.core.observations",
    "Decision": "autoheal.core.machine",
    "FleetDetached": "autoheal.core.observations",
    "FleetLost": "autoheal.core.observations",
    "FleetSwitchRead": "autoheal.core.observations",
    "IllegalCommandError": "autoheal.core.errors",
    "LogSwitchEvent": "autoheal.core.actions",
    "LogTransition": "autoheal.core.actions",
    "Observation": "autoheal.core.observations",
    "OperatorClearedFailsafe": "autoheal.core.observations",
    "OperatorSetReduceOnly": "autoheal.core.observations",
    "OperatorEnteredFailsafe": "autoheal.core.observations",
    "OperatorRestarted": "autoheal.core.observations",
    "OperatorStarted": "autoheal.core.observations",
    "ConfigReloaded": "autoheal.core.observations",
    "OperatorStopped": "autoheal.core.observations",
    "Policy": "autoheal.core.policy",
    "ProbeFailed": "autoheal.core.observations",
    "ProbeSucceeded": "autoheal.core.observations",
    "ProcessExited": "autoheal.core.observations",
    "RemoveRiskLatch": "autoheal.core.actions",
    "RemoveStop": "autoheal.core.actions",
    "RestartProcess": "autoheal.core.actions",
    "RiskLatchSeen": "autoheal.core.observations",
    "RuntimeState": "autoheal.core.state",
    "SendNotice": "autoheal.core.actions",
    "SpawnFinished": "autoheal.core.observations",
    "SwitchFilesRead": "autoheal.core.observations",
    "SwitchWriteFailed": "autoheal.core.observations",
    "SwitchWriteLanded": "autoheal.core.observations",
    "Stage": "autoheal.core.stages",
    "StartProcess": "autoheal.core.actions",
    "StopProcess": "autoheal.core.actions",
    "WriteFlags": "autoheal.core.actions",
    "WriteStop": "autoheal.core.actions",
    "initial_state": "autoheal.core.state",
    "step": "autoheal.core.machine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Action",
    "CommandRefusedError",
    "ComponentSpec",
    "ComponentState",
    "ConfigReloaded",
    "DeadlineReached",
    "Decision",
    "FleetDetached",
    "FleetLost",
    "FleetSwitchRead",
    "IllegalCommandError",
    "LogSwitchEvent",
    "LogTransition",
    "Observation",
    "OperatorClearedFailsafe",
    "OperatorEnteredFailsafe",
    "OperatorRestarted",
    "OperatorSetReduceOnly",
    "OperatorStarted",
    "OperatorStopped",
    "Policy",
    "ProbeFailed",
    "ProbeSucceeded",
    "ProcessExited",
    "RemoveRiskLatch",
    "RemoveStop",
    "RestartProcess",
    "RiskLatchSeen",
    "RuntimeState",
    "SendNotice",
    "SpawnFinished",
    "Stage",
    "StartProcess",
    "StopProcess",
    "SwitchFilesRead",
    "SwitchWriteFailed",
    "SwitchWriteLanded",
    "WriteFlags",
    "WriteStop",
    "initial_state",
    "step",
]
