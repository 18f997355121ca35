"""Issue 9, defect 5: the order ledger fails closed.

An unreadable ``runtime/order_sigs.json`` blocks new orders (``ledger_unreadable``)
until repaired, with the bad file kept aside and an alert; and the durable pending
mark is written before an order is sent, so a crash between record and send never
lets the same signal be resent, not even after the TTL.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoheal.guard import OrderLedger
from autoheal.guard.errors import GuardError
from autoheal.guard.idempotency import ORDER_SIGS_RELPATH
from autoheal.store.alerts import alert_path, read_alerts
from autoheal.store.atomic import ReadResult


def _corrupt(runtime, content: bytes = b"{ torn") -> bytes:
    path = runtime / ORDER_SIGS_RELPATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return content


def test_unreadable_ledger_refuses_new_orders_ledger_unreadable(tmp_path, clock, caplog):
    caplog.set_level(logging.WARNING)
    original = _corrupt(tmp_path)
    ledger = OrderLedger(tmp_path, time_fn=clock)
    sent: list[int] = []

    result = ledger.place("BTCUSDT", "buy", 0.001, None, lambda: sent.append(1))
    assert result.status == "refused"
    assert result.reason == "ledger_unreadable"
    with pytest.raises(GuardError) as info:
        ledger.check_and_record("ETHUSDT", "sell", 1, 3000)
    assert info.value.reason == "ledger_unreadable"
    assert sent == []

    # The bad file is kept aside, byte for byte, never deleted.
    kept = sorted(tmp_path.joinpath("runtime").glob("order_sigs.json.corrupt-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == original
    # One alert naming the kept-aside file, and one log line however often it is asked.
    alert = read_alerts(tmp_path)["ledger_unreadable"]
    assert alert["file"] == str(kept[0])
    assert alert["detail"]
    for _ in range(5):
        with pytest.raises(GuardError):
            ledger.check_and_record("BTCUSDT", "buy", 2)
    logged = [r for r in caplog.records if "ledger_unreadable" in r.getMessage()]
    assert len(logged) == 1

    # The block is on disk: a fresh instance (another process, a restart) refuses as well.
    again = OrderLedger(tmp_path, time_fn=clock)
    assert again.place("BTCUSDT", "buy", 0.001, None, lambda: sent.append(1)).status == "refused"
    clock.advance(86_400)  # and time does not repair it
    assert again.place("BTCUSDT", "buy", 0.001, None, lambda: sent.append(1)).status == "refused"
    assert sent == []


def test_repair_unblocks_the_ledger_and_clears_the_alert(tmp_path, clock):
    _corrupt(tmp_path, b"\x00\xff binary")
    ledger = OrderLedger(tmp_path, time_fn=clock)
    with pytest.raises(GuardError):
        ledger.check_and_record("BTCUSDT", "buy", 1)
    assert ledger.repair() is True
    assert not alert_path(tmp_path, "ledger_unreadable").exists()
    assert ledger.check_and_record("BTCUSDT", "buy", 1)[0] is False
    assert ledger.repair() is False  # nothing to repair
    # The kept-aside file is still there for the operator.
    assert list(tmp_path.joinpath("runtime").glob("order_sigs.json.corrupt-*"))


def test_operator_removing_the_blocked_ledger_is_a_repair(tmp_path, clock):
    _corrupt(tmp_path, b"[1, 2, 3]")
    ledger = OrderLedger(tmp_path, time_fn=clock)
    assert ledger.place("BTCUSDT", "buy", 1, None, lambda: "x").status == "refused"
    (tmp_path / ORDER_SIGS_RELPATH).unlink()
    assert ledger.place("BTCUSDT", "buy", 1, None, lambda: "x").status == "placed"


@pytest.mark.parametrize(
    "content",
    [
        b'{"schema": 1, "sigs": []}',
        b'{"schema": 1}',
        b'{"schema": 1, "sigs": {"abc": "pending"}}',
        b'{"schema": 1, "sigs": {"abc": {"status": "mystery", "ts": 1}}}',
    ],
)
def test_wrongly_shaped_ledger_is_unreadable_not_empty(tmp_path, clock, content):
    _corrupt(tmp_path, content)
    with pytest.raises(GuardError):
        OrderLedger(tmp_path, time_fn=clock).check_and_record("BTCUSDT", "buy", 1)


def test_record_is_a_durable_pending_mark_before_any_send(tmp_path, clock):
    ledger = OrderLedger(tmp_path, ttl_s=120, time_fn=clock)
    is_dup, sig = ledger.check_and_record("BTCUSDT", "buy", 0.001, 50000)
    assert is_dup is False
    doc = orjson.loads((tmp_path / ORDER_SIGS_RELPATH).read_bytes())
    assert doc["sigs"][sig]["status"] == "pending"
    clock.advance(10 * 120)
    assert ledger.status(sig) == "pending"
    assert ledger.check_and_record("BTCUSDT", "buy", 0.001, 50000)[0] is True


# -- the crash between record and send, with a real process and a real SIGKILL ----------

_RECORD_THEN_WAIT = textwrap.dedent(
    """
    import sys
    from autoheal.guard import OrderLedger
    ledger = OrderLedger(sys.argv[1])
    is_dup, sig = ledger.check_and_record("BTCUSDT", "buy", "0.001", "50000")
    print(sig if not is_dup else "dup", flush=True)
    sys.stdin.readline()           # "send" would come here; we are killed first
    print("sent", flush=True)
    """
)


@pytest.mark.slow
def test_crash_between_record_and_send_never_resends_after_ttl(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _RECORD_THEN_WAIT, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        sig = proc.stdout.readline().strip()
        assert len(sig) == 32, sig
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    # A new process, long after the TTL (its monotonic clock an hour ahead).
    later = OrderLedger(tmp_path, ttl_s=120, time_fn=lambda: time.monotonic() + 3600)
    assert later.status(sig) == "pending"
    sent: list[int] = []
    result = later.place("BTCUSDT", "buy", 0.001, 50000, lambda: sent.append(1))
    assert (result.status, result.sig) == ("pending", sig)
    assert later.check_and_record("BTCUSDT", "buy", 0.001, 50000) == (True, sig)
    assert sent == []
    # Only the exchange's answer settles it.
    assert later.reconcile(sig, lambda _entry: "absent") is None
    assert later.place("BTCUSDT", "buy", 0.001, 50000, lambda: "order-1").status == "placed"


# -- the decision as a pure function ----------------------------------------------------

_scalar = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4)
)
_json = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
# Records that are mostly well-formed, so both outcomes are explored.
_record = st.fixed_dictionaries(
    {"status": st.sampled_from(["placed", "pending", "recorded", "filled", None])},
    optional={"ts": _scalar, "reason": _scalar, "symbol": _scalar},
)
_sigs = (
    st.dictionaries(st.text(max_size=8), _record, max_size=4)
    | st.dictionaries(st.text(max_size=8), _record | _json, max_size=4)
    | _json
)


@settings(max_examples=300, deadline=None)
@given(sigs=_sigs, extra=st.dictionaries(st.sampled_from(["schema", "clock", "x"]), _json))
def test_parse_ledger_never_silently_drops_a_record(sigs, extra):
    from autoheal.guard.idempotency import parse_ledger

    doc = {**extra, "sigs": sigs}
    view = parse_ledger(ReadResult(doc))
    if view.problem is None:
        # Accepted only when every record is a well-formed one: nothing was dropped.
        assert isinstance(sigs, dict)
        assert set(view.sigs) == set(sigs)
        assert all(e["status"] in ("placed", "pending") for e in view.sigs.values())
    else:
        assert view.sigs == {}


@settings(max_examples=200, deadline=None)
@given(reason=st.sampled_from(["unreadable", "too_large", "invalid", "not_object"]))
def test_parse_ledger_unreadable_file_is_a_problem_missing_file_is_empty(reason):
    from autoheal.guard.idempotency import parse_ledger

    assert parse_ledger(ReadResult(None, reason, "x")).problem is not None
    missing = parse_ledger(ReadResult(None, "missing"))
    assert (missing.problem, missing.sigs) == (None, {})
