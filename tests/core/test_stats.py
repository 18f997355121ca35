"""Nearest-rank percentiles: a few exact cases, then the defining properties under hypothesis."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.stats import nearest_rank, p95, percentile

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
samples_st = st.lists(finite, min_size=1, max_size=60)
q_st = st.one_of(st.integers(0, 100), st.floats(0, 100, allow_nan=False))


@pytest.mark.parametrize(
    ("q", "n", "rank"),
    [
        (95, 20, 19),  # 0.95 * 20 is 19 exactly: not the maximum
        (95, 21, 20),
        (95, 1, 1),
        (95, 100, 95),
        (50, 4, 2),
        (50, 5, 3),
        (100, 7, 7),
        (0, 7, 1),
        (99.9, 1000, 999),  # read as decimal 99.9, not its binary neighbour above it
        (0.1, 1000, 1),
    ],
)
def test_nearest_rank_exact_cases(q: float, n: int, rank: int) -> None:
    assert nearest_rank(q, n) == rank


def test_p95_of_twenty_ordered_samples_is_the_nineteenth() -> None:
    samples = [float(i) for i in range(1, 21)]
    assert p95(reversed(samples)) == 19.0


@pytest.mark.parametrize("bad_q", [-0.5, 100.5, math.inf, math.nan])
def test_percentile_rejects_out_of_range_q(bad_q: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], bad_q)


def test_percentile_rejects_empty_and_nan_samples() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 95)
    with pytest.raises(ValueError, match="NaN"):
        percentile([1.0, math.nan], 95)


@given(samples_st, q_st)
def test_percentile_is_a_sample_with_the_nearest_rank_property(
    samples: list[float], q: float
) -> None:
    value = percentile(samples, q)
    n = len(samples)
    assert value in samples
    at_or_below = sum(1 for x in samples if x <= value)
    below = sum(1 for x in samples if x < value)
    # At least q % of the samples are <= value ...
    assert at_or_below >= max(1, math.ceil(q * n / 100 - 1e-9))
    # ... and value is the smallest such sample: fewer than the rank lie strictly below.
    assert below < nearest_rank(q, n)


@given(samples_st, q_st, q_st)
def test_percentile_is_monotone_in_q(samples: list[float], q1: float, q2: float) -> None:
    lo, hi = sorted((q1, q2))
    assert percentile(samples, lo) <= percentile(samples, hi)


@given(samples_st, st.randoms(use_true_random=False))
def test_percentile_ignores_order_and_leaves_input_alone(samples: list[float], rnd) -> None:
    shuffled = list(samples)
    rnd.shuffle(shuffled)
    before = list(shuffled)
    assert p95(shuffled) == p95(samples)
    assert shuffled == before


@given(samples_st)
def test_percentile_extremes_are_min_and_max(samples: list[float]) -> None:
    assert percentile(samples, 0) == min(samples)
    assert percentile(samples, 100) == max(samples)


@given(st.integers(1, 10_000), q_st)
def test_nearest_rank_is_within_bounds(n: int, q: float) -> None:
    assert 1 <= nearest_rank(q, n) <= n
