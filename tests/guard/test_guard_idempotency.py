"""Order idempotency: one order per signal across two real processes; pending is never resent."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import orjson
import pytest

from autoheal.guard import GuardError, OrderLedger, OrderOutcomeUnknownError, order_signature
from autoheal.guard.idempotency import ORDER_SIGS_RELPATH

from .conftest import wait_for


def test_idempotency_ten_rapid_duplicates_give_one_order(tmp_path, clock):
    ledger = OrderLedger(tmp_path, time_fn=clock)
    results = [ledger.check_and_record("BTCUSDT", "BUY", 0.001, 50000.0) for _ in range(10)]
    assert [dup for dup, _ in results] == [False] + [True] * 9
    assert len({sig for _, sig in results}) == 1
    assert (tmp_path / ORDER_SIGS_RELPATH).exists()


def test_idempotency_signature_normalises_values():
    assert order_signature("btc/usdt", "BUY", 0.0010, 50000) == order_signature(
        "BTCUSDT", "buy", "0.001", 50000.0
    )
    assert order_signature("BTCUSDT", "buy", 0.001) != order_signature("BTCUSDT", "sell", 0.001)
    assert order_signature("BTCUSDT", "buy", 0.001, 1) != order_signature(
        "BTCUSDT", "buy", 0.001, 2
    )
    for bad in (0, -1, float("nan"), float("inf"), "x"):
        with pytest.raises(ValueError):
            order_signature("BTCUSDT", "buy", bad)
    with pytest.raises(ValueError):
        order_signature("BTCUSDT", "hold", 1)


def test_idempotency_same_signal_after_ttl_is_accepted_and_expired_pruned(tmp_path, clock):
    ledger = OrderLedger(tmp_path, ttl_s=120, time_fn=clock)
    is_dup, sig = ledger.check_and_record("BTCUSDT", "buy", 0.001, 50000)
    assert is_dup is False
    ledger.mark_placed(sig)  # the TTL runs from the confirmed placement
    clock.advance(119)
    assert ledger.check_and_record("BTCUSDT", "buy", 0.001, 50000)[0] is True
    ledger.mark_placed(ledger.check_and_record("ETHUSDT", "buy", 1, 3000)[1])
    clock.advance(2)
    is_dup, sig = ledger.check_and_record("BTCUSDT", "buy", 0.001, 50000)
    assert is_dup is False
    ledger.mark_placed(sig)
    clock.advance(121)
    ledger.check_and_record("SOLUSDT", "buy", 1, 150)
    doc = orjson.loads((tmp_path / ORDER_SIGS_RELPATH).read_bytes())
    assert [e["symbol"] for e in doc["sigs"].values()] == ["SOLUSDT"]  # the rest were pruned


class Timeout(Exception): ...


class RequestTimeout(Exception): ...  # ccxt's name: an unknown outcome


class InsufficientFunds(Exception): ...


def test_idempotency_timed_out_placement_stays_pending_until_reconciled(tmp_path, clock):
    ledger = OrderLedger(tmp_path, time_fn=clock)
    sent = []

    def place():
        sent.append(1)
        raise RequestTimeout("timed out after 10s")

    with pytest.raises(OrderOutcomeUnknownError) as info:
        ledger.place("BTCUSDT", "buy", 0.001, None, place)
    sig = info.value.sig
    assert ledger.status(sig) == "pending"
    # A naive retry, even long after the TTL, never reaches the exchange.
    clock.advance(3600)
    ok_place = lambda: sent.append(1) or "order-1"  # noqa: E731
    assert ledger.place("BTCUSDT", "buy", 0.001, None, ok_place).status == "pending"
    assert ledger.check_and_record("BTCUSDT", "buy", 0.001)[0] is True
    # A reconcile that cannot tell keeps it pending.
    result = ledger.place(
        "BTCUSDT", "buy", 0.001, None, ok_place, reconcile_fn=lambda _e: "unknown"
    )
    assert result.status == "pending"
    assert len(sent) == 1
    # The exchange says it was filled: still no resend, it is a duplicate now.
    assert ledger.reconcile(sig, lambda entry: "placed" if entry["sig"] == sig else "?") == "placed"
    assert ledger.place("BTCUSDT", "buy", 0.001, None, ok_place).status == "duplicate"
    assert len(sent) == 1


def test_idempotency_reconciled_absent_allows_one_resend(tmp_path, clock):
    ledger = OrderLedger(tmp_path, time_fn=clock)
    with pytest.raises(OrderOutcomeUnknownError):
        ledger.place("ETHUSDT", "sell", 1, 3000, lambda: (_ for _ in ()).throw(TimeoutError()))
    result = ledger.place(
        "ETHUSDT", "sell", 1, 3000, lambda: "order-2", reconcile_fn=lambda _e: "absent"
    )
    assert (result.status, result.result) == ("placed", "order-2")
    assert ledger.place("ETHUSDT", "sell", 1, 3000, lambda: "order-3").status == "duplicate"


def test_idempotency_definite_failure_releases_the_signature(tmp_path, clock):
    ledger = OrderLedger(tmp_path, time_fn=clock)
    with pytest.raises(InsufficientFunds):
        ledger.place("BTCUSDT", "buy", 1, None, lambda: (_ for _ in ()).throw(InsufficientFunds()))
    assert ledger.check_and_record("BTCUSDT", "buy", 1)[0] is False


def test_idempotency_corrupt_file_blocks_until_repaired(tmp_path, clock, caplog):
    # It used to start fresh (fail open); see test_guard_ledger_fail_closed.py.
    path = tmp_path / ORDER_SIGS_RELPATH
    path.parent.mkdir()
    path.write_text("{ torn")
    ledger = OrderLedger(tmp_path, time_fn=clock)
    with pytest.raises(GuardError, match="unreadable"):
        ledger.check_and_record("BTCUSDT", "buy", 1)
    assert "ledger_unreadable" in caplog.text
    ledger.repair()
    assert ledger.check_and_record("BTCUSDT", "buy", 1)[0] is False


_SUBMITTER = textwrap.dedent(
    """
    import json, os, sys, time
    from autoheal.guard import OrderLedger
    runtime, go = sys.argv[1], sys.argv[2]
    ledger = OrderLedger(runtime)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0005)
    dups = [ledger.check_and_record("BTCUSDT", "BUY", 0.001, 50000.0)[0] for _ in range(10)]
    print(json.dumps(dups))
    """
)


@pytest.mark.slow
def test_idempotency_two_processes_one_acceptance(tmp_path):
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SUBMITTER, str(tmp_path), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [json.loads(proc.communicate(timeout=30)[0]) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    flat = [dup for out in outputs for dup in out]
    assert len(flat) == 20
    assert flat.count(False) == 1
    assert flat.count(True) == 19
    wait_for(lambda: all(p.returncode == 0 for p in procs), what="children exit 0")
