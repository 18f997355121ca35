"""ProbeRunner with scripted probes under trio's MockClock: an hour of intervals takes milliseconds.

The probes here are tiny honest implementations of the ``Probe`` protocol (not
mocks of our code); the clock is trio's virtual clock via ``anyio.current_time``.
"""

from __future__ import annotations

import logging

import anyio
import pytest
from trio.testing import MockClock

from autoheal.probes import (
    CONN_TIMEOUT,
    PROBE_ERROR,
    PROBE_TIMEOUT,
    ProbeResult,
    ProbeRunner,
    run_probe,
)

OK = ProbeResult(True, "", 1.0, 2.0)


@pytest.fixture
def anyio_backend():
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


class ScriptedProbe:
    """Returns (or raises, or sleeps then returns) the next step of a script, repeating the last."""

    def __init__(self, *steps: object, delay: float = 0.0) -> None:
        self.steps = list(steps)
        self.delay = delay
        self.calls = 0

    async def check(self) -> ProbeResult:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if self.delay:
            await anyio.sleep(self.delay)
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step()
        return step  # type: ignore[return-value]


class Recorder:
    """An emit callback that records (time, result) and sets ``done`` after ``n`` results."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: list[tuple[float, ProbeResult]] = []
        self.done = anyio.Event()

    def __call__(self, result: ProbeResult) -> None:
        self.seen.append((anyio.current_time(), result))
        if len(self.seen) >= self.n:
            self.done.set()

    @property
    def times(self) -> list[float]:
        return [t for t, _ in self.seen]

    @property
    def reasons(self) -> list[str]:
        return [r.reason for _, r in self.seen]


async def run_until_done(runner: ProbeRunner, rec: Recorder) -> None:
    with anyio.fail_after(10_000):
        await runner.run(stop=rec.done)


def make_runner(probe: object, rec: Recorder, **kw: float) -> ProbeRunner:
    kw.setdefault("interval", 5.0)
    kw.setdefault("timeout", 1.0)
    return ProbeRunner(probe, rec, clock=anyio.current_time, **kw)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_runner_checks_every_interval_from_check_start() -> None:
    rec = Recorder(4)
    runner = make_runner(ScriptedProbe(OK, delay=0.5), rec, interval=5.0)
    t0 = anyio.current_time()
    await run_until_done(runner, rec)
    # emitted after each 0.5 s check; checks start at 0, 5, 10, 15 (fixed rate, no drift)
    assert [t - t0 for t in rec.times] == pytest.approx([0.5, 5.5, 10.5, 15.5])
    assert runner.last_wake == "interval"
    assert runner.checks == 4


@pytest.mark.anyio
async def test_runner_wakes_at_recheck_at_plus_slack_not_at_interval() -> None:
    rec = Recorder(2)
    t0 = anyio.current_time()
    fresh = ProbeResult(True, "", 0.0, 3.0, recheck_at=t0 + 3.0)
    runner = make_runner(ScriptedProbe(fresh, OK), rec, interval=60.0, recheck_slack=0.005)
    await run_until_done(runner, rec)
    assert rec.times[1] - t0 == pytest.approx(3.005)
    assert runner.last_wake == "recheck"


@pytest.mark.anyio
async def test_runner_past_recheck_at_sleeps_min_gap_instead_of_spinning() -> None:
    rec = Recorder(5)
    t0 = anyio.current_time()
    past = ProbeResult(True, "", 0.0, 3.0, recheck_at=t0 - 100)
    runner = make_runner(ScriptedProbe(past), rec, interval=60.0, min_gap=0.25)
    await run_until_done(runner, rec)
    gaps = [b - a for a, b in zip(rec.times, rec.times[1:], strict=False)]
    assert gaps == pytest.approx([0.25] * 4)


@pytest.mark.anyio
async def test_runner_timeout_becomes_probe_timeout() -> None:
    rec = Recorder(2)
    t0 = anyio.current_time()
    runner = make_runner(ScriptedProbe(OK, delay=30.0), rec, interval=5.0, timeout=2.0)
    await run_until_done(runner, rec)
    first = rec.seen[0][1]
    assert (first.ok, first.reason) == (False, PROBE_TIMEOUT)
    assert first.value == pytest.approx(2.0)
    assert rec.times[0] - t0 == pytest.approx(2.0)
    assert rec.times[1] - t0 == pytest.approx(7.0)


class TimeoutAwareProbe(ScriptedProbe):
    def __init__(self) -> None:
        super().__init__(OK, delay=30.0)
        self.timeouts: list[float] = []

    def timed_out(self, after: float) -> ProbeResult:
        self.timeouts.append(after)
        return ProbeResult(False, CONN_TIMEOUT, after, None)


@pytest.mark.anyio
async def test_runner_timeout_asks_a_timeout_aware_probe() -> None:
    rec = Recorder(1)
    probe = TimeoutAwareProbe()
    await run_until_done(make_runner(probe, rec, timeout=1.5), rec)
    assert rec.reasons == [CONN_TIMEOUT]
    assert probe.timeouts == pytest.approx([1.5])


@pytest.mark.anyio
async def test_runner_probe_exception_is_a_result_logged_once_per_streak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boom = RuntimeError("disk on fire")
    rec = Recorder(6)
    probe = ScriptedProbe(boom, boom, boom, OK, boom, boom)
    with caplog.at_level(logging.WARNING, logger="autoheal.probes.runner"):
        await run_until_done(make_runner(probe, rec, interval=1.0), rec)
    assert rec.reasons == [PROBE_ERROR] * 3 + [""] + [PROBE_ERROR] * 2
    assert "RuntimeError: disk on fire" in rec.seen[0][1].detail
    logged = [r for r in caplog.records if "probe_error" in r.getMessage()]
    assert len(logged) == 2  # once for each streak, with the traceback
    assert all(r.exc_info for r in logged)


@pytest.mark.anyio
async def test_runner_probe_returning_garbage_is_probe_error() -> None:
    rec = Recorder(1)
    await run_until_done(make_runner(ScriptedProbe({"ok": True}), rec), rec)
    assert rec.reasons == [PROBE_ERROR]
    assert "dict" in rec.seen[0][1].detail


@pytest.mark.anyio
async def test_runner_poke_checks_again_at_once() -> None:
    rec = Recorder(2)
    runner = make_runner(ScriptedProbe(OK), rec, interval=100.0)
    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_until_done, runner, rec)
        await anyio.sleep(7.0)
        runner.poke()
    assert rec.times[1] - t0 == pytest.approx(7.0)
    assert runner.last_wake == "poke"


@pytest.mark.anyio
async def test_runner_poke_during_a_check_triggers_another_right_after() -> None:
    rec = Recorder(2)
    runner = make_runner(ScriptedProbe(OK, delay=1.0), rec, interval=100.0, timeout=5.0)
    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_until_done, runner, rec)
        await anyio.sleep(0.5)  # the first check is in flight
        runner.poke()
    # first check ends at 1.0, the poked one starts then and ends at 2.0
    assert [t - t0 for t in rec.times] == pytest.approx([1.0, 2.0])


@pytest.mark.anyio
async def test_run_probe_awaits_an_async_emit_and_returns_on_stop() -> None:
    stop = anyio.Event()
    got: list[ProbeResult] = []

    async def emit(result: ProbeResult) -> None:
        await anyio.sleep(0.1)
        got.append(result)
        if len(got) == 3:
            stop.set()

    with anyio.fail_after(1000):
        await run_probe(
            ScriptedProbe(OK), emit, interval=2.0, timeout=1.0, clock=anyio.current_time, stop=stop
        )
    assert got == [OK, OK, OK]


@pytest.mark.anyio
async def test_runner_is_cancellable_mid_check() -> None:
    rec = Recorder(1)
    runner = make_runner(ScriptedProbe(OK, delay=50.0), rec, timeout=100.0)
    with anyio.move_on_after(3.0) as scope:
        await runner.run()
    assert scope.cancelled_caught
    assert rec.seen == []


@pytest.mark.parametrize(("interval", "timeout"), [(0, 1), (1, 0), (-1, 1)])
def test_runner_rejects_non_positive_interval_or_timeout(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        ProbeRunner(ScriptedProbe(OK), lambda r: None, interval=interval, timeout=timeout)


@pytest.mark.anyio
async def test_runner_sleeps_past_the_interval_until_a_passing_results_deadline() -> None:
    """Event-driven (issue 14): a fresh heartbeat is not looked at again until it would go
    stale; a failing result keeps the interval, to see a recovery soon."""
    rec = Recorder(3)
    t0 = anyio.current_time()
    fresh = ProbeResult(True, "", 0.0, 15.0, recheck_at=t0 + 15.0)
    failing = ProbeResult(False, "heartbeat_stale", 16.0, 15.0, recheck_at=t0 + 100.0)
    runner = make_runner(ScriptedProbe(fresh, failing, OK), rec, interval=1.0)
    await run_until_done(runner, rec)
    assert [t - t0 for t in rec.times] == pytest.approx([0.0, 15.005, 16.005])
    assert runner.last_wake == "interval"
