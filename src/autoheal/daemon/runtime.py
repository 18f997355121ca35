"""The core's state, held by the shell: one value, changed in one place.

:class:`Runtime` is built first, from the state a previous daemon saved (or a fresh
one) and the policy, so that every part can be handed it as a plain value: the
probes ask it for a verdict, the health document and the fleet's summary read it.
Only :meth:`Runtime.step` changes it, and only the interpreter
(:mod:`autoheal.daemon.interpreter`) calls that, with the time of its one clock.
"""

from __future__ import annotations

from autoheal.core.machine import Decision, dor, flags_for, step
from autoheal.core.observations import Observation
from autoheal.core.policy import Policy
from autoheal.core.stages import Stage
from autoheal.core.state import RuntimeState

__all__ = ["Runtime"]


class Runtime:
    """The core's state and policy, and the next deadline the core asked for.

    Args:
        state: the state to start from (restored from ``autoheal_state.json``, or fresh).
        policy: the policy in force (a config reload replaces it).
    """

    def __init__(self, state: RuntimeState, policy: Policy) -> None:
        self.state = state
        self.policy = policy
        #: The core's next deadline (monotonic), or None.
        self.wake_at: float | None = None

    def step(self, obs: Observation, now: float) -> tuple[Decision, bool]:
        """Step the core and keep what it decided.

        Returns:
            The decision, and whether what the state file holds changed (what the
            daemon knows of the kill-switch files is not in it).

        Raises:
            IllegalCommandError, CommandRefusedError: an operator's command that does
                not apply (nothing changed).
        """
        decision = step(self.state, obs, now, self.policy)
        changed = decision.state.persisted() != self.state.persisted()
        self.state, self.wake_at = decision.state, decision.wake_at
        return decision, changed

    def current(self) -> RuntimeState:
        """The state now (a port for the parts that read it later, e.g. the fleet agent)."""
        return self.state

    def verdict(self, target: str, probe: str) -> bool | None:
        """The core's verdict on one probe: True, False, or None (not known yet)."""
        holder = self.state.components.get(target) or self.state.dependencies.get(target)
        ps = None if holder is None else holder.probes.get(probe)
        return None if ps is None else ps.ok

    def dor(self) -> bool:
        """Ready to trade (DESIGN.md §2)."""
        return dor(self.state, self.policy)

    def summary(self) -> str:
        """One line for the log and systemd's ``STATUS=``."""
        state = self.state
        failing = [n for n, cs in state.components.items() if cs.stage is not Stage.OBSERVE]
        return (
            f"DOR={'true' if self.dor() else 'false'} mode={flags_for(state).mode} "
            f"components={len(state.components)} not_observe={','.join(failing) or '-'}"
        )
