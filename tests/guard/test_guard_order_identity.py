"""Order identity in the ledger: keys, conflicting reuse, kept results, unknown outcomes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.guard.errors import OrderOutcomeUnknownError
from autoheal.guard.idempotency import (
    KEY_CONFLICT,
    IdempotencyKeyConflictError,
    OrderLedger,
    order_signature,
)
from tests.guard.conftest import FakeClock


class Timeout(Exception):
    """Named like httpx's read timeout: classified transient, outcome unknown."""


Timeout.__name__ = "ReadTimeout"


def test_same_key_same_order_is_a_duplicate_with_the_kept_result(tmp_path, clock) -> None:
    ledger = OrderLedger(tmp_path, time_fn=clock)
    calls: list[int] = []

    def send() -> dict[str, object]:
        calls.append(1)
        return {"order_id": "demo-1", "filled": 0.001}

    first = ledger.place("BTCUSDT", "buy", 0.001, 60000, send, key="signal-42")
    again = ledger.place("btc/usdt", "BUY", "0.0010", "60000.0", send, key="signal-42")
    assert first.status == "placed" and again.status == "duplicate"
    assert again.result == {"order_id": "demo-1", "filled": 0.001} and len(calls) == 1
    assert again.sig == "signal-42"


def test_same_key_different_parameters_is_an_error_not_a_duplicate(tmp_path, clock) -> None:
    ledger = OrderLedger(tmp_path, time_fn=clock)
    ledger.place("BTCUSDT", "buy", 0.001, 60000, lambda: {"ok": 1}, key="k")
    for other in (("BTCUSDT", "buy", 0.002, 60000), ("BTCUSDT", "sell", 0.001, 60000),
                  ("ETHUSDT", "buy", 0.001, 60000), ("BTCUSDT", "buy", 0.001, 60001)):
        with pytest.raises(IdempotencyKeyConflictError) as info:
            ledger.place(*other, lambda: pytest.fail("sent"), key="k")
        assert info.value.reason == KEY_CONFLICT and "k" in str(info.value)
    with pytest.raises(IdempotencyKeyConflictError):  # also while its outcome is unknown
        ledger.check_and_record_key("pending-key", "BTCUSDT", "buy", 1)
        ledger.check_and_record_key("pending-key", "BTCUSDT", "buy", 2)


def test_signature_keyed_repeat_returns_the_result_until_the_ttl(tmp_path, clock) -> None:
    ledger = OrderLedger(tmp_path, time_fn=clock, ttl_s=120)
    placed = ledger.place("BTCUSDT", "buy", 0.001, None, lambda: {"order_id": "x"})
    assert placed.sig == order_signature("BTCUSDT", "buy", 0.001)
    clock.advance(119)
    assert ledger.place("BTCUSDT", "buy", 0.001, None, lambda: {}).result == {"order_id": "x"}
    clock.advance(2)
    assert ledger.result(placed.sig) is None  # expired with its record
    assert not ledger.keep_result("missing", {"a": 1})
    assert not ledger.keep_result(placed.sig, object())


def test_unknown_outcome_is_reconciled_before_anything_is_sent_for_that_key(tmp_path,
                                                                            clock) -> None:
    ledger = OrderLedger(tmp_path, time_fn=clock)
    sent: list[str] = []

    def lost() -> dict[str, str]:
        sent.append("first")
        raise Timeout("read timed out")

    with pytest.raises(OrderOutcomeUnknownError):
        ledger.place("BTCUSDT", "buy", 0.001, 60000, lost, key="k1")
    asked: list[str] = []

    def at_exchange(entry: dict[str, object]) -> str:
        asked.append(str(entry["sig"]))
        return "placed"

    again = ledger.place("BTCUSDT", "buy", 0.001, 60000, lambda: sent.append("resend"),
                         reconcile_fn=at_exchange, key="k1")
    assert asked == ["k1"] and sent == ["first"]  # asked, never resent
    assert again.status == "duplicate" and ledger.status("k1") == "placed"
    # Without a way to ask, it stays pending and is never sent blind.
    with pytest.raises(OrderOutcomeUnknownError):
        ledger.place("BTCUSDT", "sell", 0.001, 60000, lost, key="k2")
    assert ledger.place("BTCUSDT", "sell", 0.001, 60000, lambda: sent.append("blind"),
                        key="k2").status == "pending"
    assert sent == ["first", "first"]


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([1, 2])), max_size=20))
def test_a_key_names_one_order_forever(uses: list[tuple[str, int]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ledger = OrderLedger(tmp, time_fn=FakeClock())
        first: dict[str, int] = {}
        sent: list[str] = []
        for key, qty in uses:
            try:
                result = ledger.place("BTCUSDT", "buy", qty, None,
                                      lambda k=key: sent.append(k) or {"k": k}, key=key)
            except IdempotencyKeyConflictError:
                assert first[key] != qty
                continue
            first.setdefault(key, qty)
            assert first[key] == qty and result.status in ("placed", "duplicate")
        assert sorted(sent) == sorted(first)  # each key sent exactly once


def test_entry_shows_who_is_sending_and_why_it_is_pending(tmp_path, clock) -> None:
    ledger = OrderLedger(tmp_path, time_fn=clock)
    _, sig = ledger.check_and_record("BTCUSDT", "buy", 0.001)
    entry = ledger.entry(sig)
    assert entry is not None and entry["reason"] == "in_flight" and entry["pid"] > 0
    ledger.mark_pending(sig, "conn_reset")
    assert ledger.entry(sig)["reason"] == "conn_reset"
    assert ledger.entry("nope") is None
