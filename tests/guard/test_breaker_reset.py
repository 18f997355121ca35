"""The operator's breaker reset (:mod:`autoheal.guard.breaker_reset`) on a real breaker file
and a real journal: what it resets, what it leaves, what it journals, and its key rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.guard import BreakerPolicy, CircuitBreaker
from autoheal.guard.breaker_reset import ALL, normalize_key, submit_reset
from autoheal.store.commands import Command, KeyConflictError
from autoheal.store.journal import Journal


def _trip(runtime_dir: Path, *keys: str) -> CircuitBreaker:
    breaker = CircuitBreaker(runtime_dir, BreakerPolicy(cooldown_s=600.0))
    for key in keys:
        for _ in range(3):
            breaker.record_failure(key, reason="exchange_502")
        assert breaker.state(key) == "open"
    return breaker


def test_reset_closes_the_named_key_and_leaves_the_others(tmp_path: Path) -> None:
    breaker = _trip(tmp_path, "BTCUSDT", "ETHUSDT")
    command = submit_reset(tmp_path, ["BTCUSDT"], reason="exchange back", user="op", timeout=5.0)
    assert command.status == "succeeded"
    assert command.result == {"reset": {"BTCUSDT": "open"}, "absent": []}
    assert breaker.state("BTCUSDT") == "closed"
    assert breaker.state("ETHUSDT") == "open"
    with Journal.open(tmp_path) as journal:
        kinds = [e.kind for e in journal.events(limit=50) if e.command_id == command.id]
    assert kinds == [
        "started",
        "breaker_reset.started",
        "breaker_reset.succeeded",
        "result_written",
    ]


def test_all_closes_every_key(tmp_path: Path) -> None:
    breaker = _trip(tmp_path, "BTCUSDT", "*")
    command = submit_reset(tmp_path, [ALL], reason="fresh start", user="op", timeout=5.0)
    assert command.status == "succeeded"
    assert breaker.state("BTCUSDT") == "closed"
    assert breaker.state("*") == "closed"


def test_a_reused_key_returns_the_recorded_result_and_resets_nothing_again(
    tmp_path: Path,
) -> None:
    breaker = _trip(tmp_path, "BTCUSDT")
    first = submit_reset(
        tmp_path, ["BTCUSDT"], reason="r", user="op", timeout=5.0, idempotency_key="k1"
    )
    _trip(tmp_path, "BTCUSDT")  # open again: the duplicate must not close it
    seen: list[Command] = []
    again = submit_reset(
        tmp_path,
        ["BTCUSDT"],
        reason="r",
        user="op",
        timeout=5.0,
        idempotency_key="k1",
        on_duplicate=seen.append,
    )
    assert [c.id for c in seen] == [first.id]
    assert again.id == first.id and again.status == "succeeded"
    assert breaker.state("BTCUSDT") == "open"


def test_a_reused_key_with_other_keys_is_refused_and_nothing_is_queued(tmp_path: Path) -> None:
    submit_reset(tmp_path, ["BTCUSDT"], reason="r", user="op", timeout=5.0, idempotency_key="k1")
    with pytest.raises(KeyConflictError):
        submit_reset(
            tmp_path, ["ETHUSDT"], reason="r", user="op", timeout=5.0, idempotency_key="k1"
        )


@pytest.mark.parametrize(
    ("given", "stored"),
    [("*", "*"), (" * ", "*"), ("btc-usdt", "BTCUSDT"), ("BTC/USDT", "BTCUSDT")],
)
def test_keys_are_normalised_as_the_guard_stores_them(given: str, stored: str) -> None:
    assert normalize_key(given) == stored
