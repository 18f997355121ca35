"""The resource judgement (core.resources): which threshold a process tree crosses, and CPU %."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core import reasons as R
from autoheal.core.resources import (
    ResourceLimits,
    ResourceUsage,
    judge_resources,
    tree_cpu_percent,
)

pytestmark = [pytest.mark.timeout(60)]

MiB = 1024 * 1024
sizes = st.integers(min_value=0, max_value=1 << 40)
counts = st.integers(min_value=0, max_value=100_000)
percents = st.floats(min_value=0, max_value=10_000, allow_nan=False)


@st.composite
def usages(draw: st.DrawFn) -> ResourceUsage:
    return ResourceUsage(
        rss=draw(st.none() | sizes),
        cpu_percent=draw(st.none() | percents),
        fds=draw(st.none() | counts),
        threads=draw(st.none() | counts),
        processes=draw(st.integers(min_value=1, max_value=50)),
    )


@st.composite
def limits(draw: st.DrawFn) -> ResourceLimits:
    return ResourceLimits(
        max_rss=draw(st.none() | sizes.filter(bool)),
        max_cpu_percent=draw(st.none() | percents.filter(bool)),
        max_fds=draw(st.none() | counts.filter(bool)),
        max_threads=draw(st.none() | counts.filter(bool)),
    )


ORDER = [
    (R.RSS_HIGH, "rss", "max_rss"),
    (R.CPU_HIGH, "cpu_percent", "max_cpu_percent"),
    (R.FDS_HIGH, "fds", "max_fds"),
    (R.THREADS_HIGH, "threads", "max_threads"),
]


@given(usages(), limits())
def test_judge_resources_fails_on_the_first_crossed_limit_in_order(
    usage: ResourceUsage, lim: ResourceLimits
) -> None:
    verdict = judge_resources(usage, lim)
    crossed = [
        (reason, getattr(usage, measure), getattr(lim, limit))
        for reason, measure, limit in ORDER
        if getattr(usage, measure) is not None
        and getattr(lim, limit) is not None
        and getattr(usage, measure) > getattr(lim, limit)
    ]
    assert verdict.ok is (not crossed)
    if crossed:
        reason, value, limit = crossed[0]
        assert (verdict.reason, verdict.value, verdict.threshold) == (reason, value, limit)
        assert verdict.value is not None and verdict.threshold is not None
        assert verdict.value > verdict.threshold
    else:
        assert verdict.reason == ""


@given(usages(), limits())
def test_judge_resources_is_deterministic_and_names_every_crossing(
    usage: ResourceUsage, lim: ResourceLimits
) -> None:
    first, second = judge_resources(usage, lim), judge_resources(usage, lim)
    assert first == second
    if not first.ok:
        assert first.detail.count(">") == sum(
            1
            for _, measure, limit in ORDER
            if getattr(usage, measure) is not None
            and getattr(lim, limit) is not None
            and getattr(usage, measure) > getattr(lim, limit)
        )


@given(limits())
def test_unknown_measures_are_no_evidence(lim: ResourceLimits) -> None:
    assert judge_resources(ResourceUsage(None, None, None, None), lim).ok


@given(st.integers(min_value=1, max_value=1 << 40))
def test_a_tree_exactly_at_its_limit_passes_and_one_byte_more_fails(limit: int) -> None:
    lim = ResourceLimits(max_rss=limit)
    assert judge_resources(ResourceUsage(limit, None, None, None), lim).ok
    over = judge_resources(ResourceUsage(limit + 1, None, None, None), lim)
    assert (over.ok, over.reason, over.value, over.threshold) == (
        False,
        R.RSS_HIGH,
        limit + 1,
        limit,
    )


def test_judge_resources_ok_reports_the_first_configured_measure() -> None:
    v = judge_resources(ResourceUsage(50 * MiB, 12.5, 7, 3), ResourceLimits(max_fds=100))
    assert (v.ok, v.value, v.threshold) == (True, 7.0, 100.0)
    assert "rss 50.0 MiB" in v.detail and "cpu 12.5%" in v.detail


def test_judge_resources_detail_for_two_crossings() -> None:
    v = judge_resources(
        ResourceUsage(300 * MiB, None, None, 40, processes=3),
        ResourceLimits(max_rss=256 * MiB, max_threads=32),
    )
    assert v.reason == R.RSS_HIGH
    assert v.detail == "rss 300.0 MiB > 256.0 MiB; threads 40 > 32 (3 proc)"


cpu_maps = st.dictionaries(
    st.tuples(st.integers(1, 50), st.floats(0, 1e9, allow_nan=False)),
    st.floats(0, 1e6, allow_nan=False),
    max_size=8,
)


@given(cpu_maps, cpu_maps, st.floats(min_value=-10, max_value=1e4, allow_nan=False))
def test_tree_cpu_percent_is_never_negative_and_unknown_without_time_or_processes(
    before: dict[tuple[int, float], float], after: dict[tuple[int, float], float], dt: float
) -> None:
    got = tree_cpu_percent(before, after, dt)
    if dt <= 0 or not after:
        assert got is None
    else:
        assert got is not None and got >= 0


@given(
    st.floats(0, 1e5, allow_nan=False),
    st.floats(0, 100, allow_nan=False),
    st.floats(min_value=0.01, max_value=100, allow_nan=False),
)
def test_tree_cpu_percent_of_one_process_is_its_cpu_time_over_wall_time(
    start: float, used: float, dt: float
) -> None:
    key = (42, 1.0)
    got = tree_cpu_percent({key: start}, {key: start + used}, dt)
    assert got == pytest.approx(100.0 * used / dt, rel=1e-6, abs=1e-6)


def test_tree_cpu_percent_counts_a_newborn_whole_and_ignores_the_dead() -> None:
    before = {(1, 1.0): 10.0, (2, 1.0): 5.0}
    after = {(1, 1.0): 10.5, (3, 9.0): 0.25}  # 2 exited, 3 born in between
    assert tree_cpu_percent(before, after, 1.0) == pytest.approx(75.0)


def test_tree_cpu_percent_a_reused_pid_is_a_new_process() -> None:
    # Same PID, later start time: its CPU time is all new, not a drop from 100 s.
    assert tree_cpu_percent({(7, 1.0): 100.0}, {(7, 50.0): 0.5}, 1.0) == pytest.approx(50.0)
