"""The replay invariant can fail: the journal or the state differs from a replay of the steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.config import load_config
from autoheal.core import ProcessExited, initial_state, step
from autoheal.core.actions import LogTransition
from autoheal.daemon import wiring
from autoheal.daemon.effects import Effects
from autoheal.sim.files import config_text
from autoheal.sim.replay import Replayer, StepLog
from autoheal.store.journal import Journal

pytestmark = [pytest.mark.timeout(30)]


def journal_transitions(effects: Effects, actions: tuple[object, ...], drop: int = -1) -> None:
    """Journal the transitions through the daemon's own effects (all but index ``drop``)."""
    moves = [a for a in actions if isinstance(a, LogTransition)]
    for i, a in enumerate(moves):
        if i != drop:
            effects.execute(a)


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "autoheal.toml"
    path.write_text(config_text(0))
    policy = wiring.build_policy(load_config(path))
    (tmp_path / "rt").mkdir()
    with Journal.open(tmp_path / "rt") as journal:
        yield policy, journal, Effects(tmp_path / "rt", wall=lambda: 0.0, journal=journal)


def test_the_same_steps_and_journal_hold_then_a_lost_row_and_a_foreign_state_fail(
    setup,  # type: ignore[no-untyped-def]
) -> None:
    policy, journal, effects = setup
    state = initial_state(policy)
    log = StepLog(first_event=0)
    obs = ProcessExited("feeder", "process_exited", 1)
    log.record(state, obs, 10.0, policy)
    decision = step(state, obs, 10.0, policy)
    assert any(isinstance(a, LogTransition) for a in decision.actions)
    journal_transitions(effects, decision.actions)
    replayer = Replayer(log)
    assert replayer.check(journal, decision.state) == []
    # The daemon's state changed behind the core's back (said once).
    assert replayer.check(journal, state) == ["the daemon's state is not the replayed one"]
    assert replayer.check(journal, state) == []
    replayer = Replayer(log)
    assert replayer.check(journal, decision.state) == []

    # A second step whose transition never reached the journal.
    obs2 = ProcessExited("trader", "process_exited", 1)
    log.record(decision.state, obs2, 11.0, policy)
    second = step(decision.state, obs2, 11.0, policy)
    journal_transitions(effects, second.actions, drop=0)
    found = replayer.check(journal, second.state)
    assert len(found) == 1 and "replayed [('trader'" in found[0], found
