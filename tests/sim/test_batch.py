"""A small batch of seeds holds every invariant on the real daemon, and reaches the
"sometimes" cases (a batch that never does would test less than it seems to)."""

from __future__ import annotations

from collections import Counter

import pytest

from autoheal.sim.run import SOMETIMES, run_seed

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


def test_twenty_seeds_of_five_virtual_minutes_hold() -> None:
    coverage: Counter[str] = Counter()
    failures = []
    for seed in range(1, 21):
        out = run_seed(seed, 5)
        coverage.update(out.coverage)
        failures += [(seed, f["invariant"], f["detail"]) for f in out.failures]
        assert out.virtual_s >= 5 * 60
    assert failures == []
    assert [k for k in SOMETIMES if not coverage[k]] == []
