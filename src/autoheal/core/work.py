"""The scratch of one :func:`~autoheal.core.machine.step`: the state being changed, the
actions so far. Built from the state at the start of a step, turned back into a
:class:`~autoheal.core.state.RuntimeState` at its end (:meth:`Work.snapshot`); never
escapes the step. The rules (``healing``, ``checks``, ``operator_rules``,
``fleet_rules``) are functions of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from autoheal.core.actions import Action, LogTransition, ProcessAction
from autoheal.core.policy import Policy
from autoheal.core.stages import Stage
from autoheal.core.state import ComponentState, DependencyState, ProbeState, RuntimeState

__all__ = ["Work", "with_probe"]


class Work:
    """One step's working copy of the state, and what it decided so far.

    Attributes:
        components, dependencies, failsafe, reduce_only, fleet, switch: the state being
            changed.
        now: the step's time; policy: its policy.
        actions: the actions so far, in order.
        reply_after: the action that answers the operator's command, if any.
    """

    def __init__(self, state: RuntimeState, now: float, policy: Policy) -> None:
        self.components: dict[str, ComponentState] = dict(state.components)
        self.dependencies: dict[str, DependencyState] = dict(state.dependencies)
        self.failsafe = state.failsafe
        self.reduce_only = state.reduce_only
        self.fleet = state.fleet
        self.switch = state.switch
        self.now = now
        self.policy = policy
        self.actions: list[Action] = []
        self.reply_after: ProcessAction | None = None

    def snapshot(self) -> RuntimeState:
        return RuntimeState(
            self.components,
            self.dependencies,
            self.failsafe,
            self.reduce_only,
            self.fleet,
            self.switch,
        )

    def dep_blocked(self, name: str) -> bool:
        """A dependency of ``name`` is failing: restarting cannot help."""
        spec = self.policy.components[name]
        return any(self.dependencies[d].failing for d in spec.dependencies)

    def dep_suspect(self, name: str) -> bool:
        """A dependency failed its last check but is not declared failing yet."""
        spec = self.policy.components[name]
        return any(
            p.ok is False for d in spec.dependencies for p in self.dependencies[d].probes.values()
        )

    def move(self, name: str, cs: ComponentState, to: Stage, reason: str) -> ComponentState:
        """Put ``name`` in stage ``to`` for ``reason`` (logged when the stage changes)."""
        heal = self.policy.components[name].heal
        new = replace(cs, stage=to, reason=reason)
        if cs.stage is not to:
            self.actions.append(
                LogTransition(name, cs.stage, to, reason, new.attempts, heal.max_restarts)
            )
        self.components[name] = new
        return new


def with_probe(
    probes: Mapping[str, ProbeState], probe: str, ps: ProbeState
) -> dict[str, ProbeState]:
    """``probes`` with ``probe`` set to ``ps`` (a new mapping)."""
    out = dict(probes)
    out[probe] = ps
    return out
