"""Every transition of the outage-drill breaker table, with a fake clock, plus persistence."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import orjson
import pytest

from autoheal.guard import BreakerPolicy, CircuitBreaker
from autoheal.guard.breaker import BREAKER_FILENAME

POLICY = BreakerPolicy(failure_threshold=3, window_failures=0, cooldown_s=5.0)


def test_breaker_init_is_closed_and_allows(clock):
    breaker = CircuitBreaker(policy=POLICY, time_fn=clock)
    assert breaker.state() == "closed"
    assert breaker.allow_call("buy") == (True, None)


def test_breaker_trips_after_threshold_consecutive_failures(clock):
    breaker = CircuitBreaker(policy=POLICY, time_fn=clock)
    for _ in range(POLICY.failure_threshold - 1):
        assert breaker.record_failure(reason="exchange_502") == "closed"
    assert breaker.record_failure(reason="exchange_502") == "open"
    assert breaker.snapshot()["*"]["state"] == "open"
    assert breaker.allow_call("buy") == (False, "outage_circuit_breaker_active")


def test_breaker_success_resets_consecutive_count(clock):
    breaker = CircuitBreaker(policy=POLICY, time_fn=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state() == "closed"


def test_breaker_ignores_permanent_failures(clock):
    breaker = CircuitBreaker(policy=POLICY, time_fn=clock)
    for _ in range(10):
        breaker.record_failure(category="permanent", reason="insufficient_funds")
    assert breaker.state() == "closed"


def _tripped(clock):
    breaker = CircuitBreaker(policy=POLICY, time_fn=clock)
    for _ in range(3):
        breaker.record_failure(reason="exchange_502")
    return breaker


def test_breaker_stays_open_within_cooldown(clock):
    breaker = _tripped(clock)
    clock.advance(POLICY.cooldown_s - 0.001)
    assert breaker.state() == "open"
    assert breaker.snapshot()["*"]["cooldown_remaining_s"] == pytest.approx(0.001, abs=1e-3)


def test_breaker_half_open_after_cooldown(clock):
    breaker = _tripped(clock)
    clock.advance(POLICY.cooldown_s + 1)
    assert breaker.state() == "half_open"
    assert breaker.allow_call("buy") == (True, None)


def test_breaker_closes_after_required_successes(clock):
    breaker = _tripped(clock)
    clock.advance(POLICY.cooldown_s + 1)
    assert breaker.record_success() == "half_open"
    assert breaker.record_success() == "closed"
    assert breaker.allow_call("buy") == (True, None)


def test_breaker_failure_in_half_open_reopens_with_fresh_cooldown(clock):
    breaker = _tripped(clock)
    clock.advance(POLICY.cooldown_s + 1)
    breaker.record_success()
    assert breaker.record_failure(reason="timeout") == "open"
    clock.advance(POLICY.cooldown_s - 0.5)  # a stale cooldown would have ended long ago
    assert breaker.state() == "open"
    clock.advance(1.0)
    assert breaker.state() == "half_open"


def test_breaker_lets_risk_reducing_actions_through_while_open(clock):
    breaker = _tripped(clock)
    assert breaker.allow_call("SELL") == (True, None)
    strict = CircuitBreaker(
        policy=BreakerPolicy(failure_threshold=1, allow_risk_reducing_when_open=False),
        time_fn=clock,
    )
    strict.record_failure()
    assert strict.allow_call("sell") == (False, "outage_circuit_breaker_active")


def test_breaker_window_three_in_60s_trips(clock):
    breaker = CircuitBreaker(policy=BreakerPolicy(failure_threshold=0), time_fn=clock)
    breaker.record_failure()
    clock.advance(30)
    breaker.record_success()  # successes between do not save it: the window counts failures
    breaker.record_failure()
    clock.advance(30)
    assert breaker.record_failure() == "open"


def test_breaker_window_three_in_61s_does_not_trip(clock):
    breaker = CircuitBreaker(policy=BreakerPolicy(failure_threshold=0), time_fn=clock)
    breaker.record_failure()
    clock.advance(30)
    breaker.record_failure()
    clock.advance(31)
    assert breaker.record_failure() == "closed"


def test_breaker_default_policy_trips_on_three_rapid_failures(clock):
    breaker = CircuitBreaker(time_fn=clock)
    assert [breaker.record_failure() for _ in range(3)] == ["closed", "closed", "open"]


def test_breaker_keys_are_isolated(clock):
    breaker = CircuitBreaker(policy=POLICY, time_fn=clock)
    for _ in range(3):
        breaker.record_failure("BTC/USDT")
    assert breaker.state("BTCUSDT") == "open"
    assert breaker.state("ETHUSDT") == "closed"
    assert breaker.allow_call("buy", "btcusdt") == (False, "outage_circuit_breaker_active")
    assert breaker.allow_call("buy", "ETHUSDT") == (True, None)


def test_breaker_global_open_blocks_every_key(clock):
    breaker = CircuitBreaker(policy=POLICY, time_fn=clock)
    for _ in range(3):
        breaker.record_failure()
    assert breaker.allow_call("buy", "ETHUSDT") == (False, "outage_circuit_breaker_active")


def test_breaker_reset_and_reset_all(clock, tmp_path):
    breaker = CircuitBreaker(tmp_path, policy=POLICY, time_fn=clock)
    for key in ("BTCUSDT", "ETHUSDT"):
        for _ in range(3):
            breaker.record_failure(key)
    breaker.reset("BTCUSDT")
    assert breaker.state("BTCUSDT") == "closed"
    assert breaker.state("ETHUSDT") == "open"
    breaker.reset_all()
    assert breaker.snapshot() == {}


def test_breaker_persists_and_is_shared_between_instances(clock, tmp_path):
    one = CircuitBreaker(tmp_path, policy=POLICY, time_fn=clock)
    two = CircuitBreaker(tmp_path, policy=POLICY, time_fn=clock)
    one.record_failure("BTCUSDT")
    two.record_failure("BTCUSDT")
    one.record_failure("BTCUSDT")
    assert two.state("BTCUSDT") == "open"
    doc = orjson.loads((tmp_path / BREAKER_FILENAME).read_bytes())
    assert doc["keys"]["BTCUSDT"]["state"] == "open"


def test_breaker_corrupt_file_is_treated_as_closed(clock, tmp_path, caplog):
    (tmp_path / BREAKER_FILENAME).write_text("{ nope")
    breaker = CircuitBreaker(tmp_path, policy=POLICY, time_fn=clock)
    assert breaker.state() == "closed"
    assert "unreadable" in caplog.text
    breaker.record_failure()  # and the next write replaces it with a valid document
    assert (
        orjson.loads((tmp_path / BREAKER_FILENAME).read_bytes())["keys"]["*"][
            "consecutive_failures"
        ]
        == 1
    )


def test_breaker_future_timestamps_are_clamped(clock, tmp_path):
    """A file from before a reboot (monotonic clock restarted) restarts the cooldown."""
    one = CircuitBreaker(tmp_path, policy=POLICY, time_fn=lambda: 10_000.0)
    for _ in range(3):
        one.record_failure()
    after_reboot = CircuitBreaker(tmp_path, policy=POLICY, time_fn=clock)  # clock.now = 1000
    assert after_reboot.state() == "open"
    clock.advance(POLICY.cooldown_s)
    assert after_reboot.state() == "half_open"


@pytest.mark.slow
def test_breaker_persistence_across_processes(tmp_path):
    """Failures recorded by two real processes add up in one shared breaker."""
    script = textwrap.dedent(
        """
        import sys
        from autoheal.guard import BreakerPolicy, CircuitBreaker
        b = CircuitBreaker(sys.argv[1], BreakerPolicy(failure_threshold=4, window_failures=0,
                           cooldown_s=600))
        for _ in range(2):
            b.record_failure("SOLUSDT", reason="exchange_502")
        print(b.state("SOLUSDT"))
        """
    )
    states = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        states.append(out.stdout.strip())
    assert states == ["closed", "open"]
    here = CircuitBreaker(tmp_path, BreakerPolicy(cooldown_s=600))
    assert here.allow_call("buy", "SOL/USDT") == (False, "outage_circuit_breaker_active")
    assert here.snapshot()["SOLUSDT"]["last_reason"] == "exchange_502"


def test_breaker_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        BreakerPolicy(failure_threshold=0, window_failures=0)
    with pytest.raises(ValueError):
        BreakerPolicy(half_open_required_successes=0)
    with pytest.raises(ValueError):
        BreakerPolicy(cooldown_s=float("nan"))
