"""Each planted bug is found within 200 seeds, by the invariant that should catch it.

The seed ranges start at 1 and the runs are short (a few virtual minutes), so each
search ends after a handful of seeds; the budget (200) is what the test asserts.
The table in docs/simulation.md comes from the same searches.
"""

from __future__ import annotations

import pytest

from autoheal.sim.plants import PLANTS
from autoheal.sim.run import run_seed

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

BUDGET = 200

#: plant → (virtual minutes a seed, the invariant that must catch it).
EXPECTED = {
    "spawn_gate_open": (5, "no_start_in_failsafe"),
    "budget_off_by_one": (5, "restart_budget"),
    "missing_stop_cleared_at_start": (5, "only_operator_clears"),
    "key_conflict_joined": (2, "key_one_command_once"),
    "replay_requeued": (2, "key_one_command_once"),
    "dead_claim_never_settled": (5, "liveness"),
    "transition_unjournaled": (5, "replay_same_transitions"),
    "state_saved_when_write_failed": (5, "saved_state_durable"),
    "fleet_run_clears_local_halt": (5, "only_operator_clears"),
}


def first_failure(plant: str, minutes: float) -> tuple[int, str] | None:
    for seed in range(1, BUDGET + 1):
        failures = run_seed(seed, minutes, plant=plant).failures
        if failures:
            return seed, failures[0]["invariant"]
    return None


def test_every_plant_has_an_expectation() -> None:
    assert set(EXPECTED) == set(PLANTS)


@pytest.mark.parametrize("plant", sorted(EXPECTED))
def test_a_planted_bug_is_found_within_the_budget(plant: str) -> None:
    minutes, invariant = EXPECTED[plant]
    found = first_failure(plant, minutes)
    assert found is not None, f"{plant} not found in {BUDGET} seeds"
    seed, caught_by = found
    assert caught_by == invariant, f"{plant}: seed {seed} failed {caught_by}"
    # The same seed without the mutation holds (the failure is the mutation's).
    assert run_seed(seed, minutes).failures == []
