"""What the fleet switch's reading says, exactly (``core/fleet.py``, issue 28).

The boundaries of a record (version 0, the size limit, the length of each text), the
problem each bad record is reported with, the alerts a bad record raises and a valid
one clears, and what a host summary becomes: written against the survivors of
``scripts/mutation src/autoheal/core/fleet.py`` (docs/mutation.md).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.actions import ClearAlert, RaiseAlert
from autoheal.core.fleet import (
    MAX_RECORD_BYTES,
    FleetLink,
    HostView,
    Judgement,
    SwitchRecord,
    Unreadable,
    channel,
    encode_switch,
    host_key,
    host_prefix,
    hosts_key,
    judge_read,
    judge_time,
    next_record,
    parse_host,
    parse_switch,
)
from autoheal.core.observations import FleetLost, FleetSwitchRead

INVALID = "fleet_switch_invalid"


def _record(**fields: object) -> str:
    return json.dumps({"state": "HALT", "version": 1, **fields})


# ------------------------------------------------------------------ the switch record


def test_the_keys_of_a_fleet() -> None:
    assert host_key("prod", "web-1") == "autoheal:fleet:prod:host:web-1"
    assert host_prefix("prod") == "autoheal:fleet:prod:host:"
    assert hosts_key("prod") == "autoheal:fleet:prod:hosts"
    assert channel("prod") == "autoheal:fleet:prod:switch:changed"


def test_a_missing_switch_key_is_run_at_version_zero_exactly() -> None:
    assert parse_switch(None) == SwitchRecord("RUN", 0, "", "fleet switch never set", 0.0)


def test_a_record_naming_only_state_and_version_zero_is_valid() -> None:
    assert parse_switch('{"state": "RUN", "version": 0}') == SwitchRecord("RUN", 0, "", "", 0.0)


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("not json", "not JSON (JSONDecodeError)"),
        (b'{"a": "\xff"}', "not JSON (UnicodeDecodeError)"),
        ("[" * 60_000, "not JSON (nested too deeply)"),
        ("[1]", "not a JSON object"),
        (_record(state="PAUSE"), "unknown state 'PAUSE'"),
        (_record(state="P" * 50), f"unknown state {'P' * 40!r}"),
        (_record(version=-1), "version is not a whole number >= 0"),
        (_record(set_by=7), "set_by and reason must be strings"),
        (_record(reason=None), "set_by and reason must be strings"),
        (_record(ts="now"), "ts is not a number"),
        ("{" + " " * MAX_RECORD_BYTES + "}", f"record larger than {MAX_RECORD_BYTES} bytes"),
    ],
)
def test_a_bad_record_says_why(raw: str | bytes, detail: str) -> None:
    assert parse_switch(raw) == Unreadable(INVALID, detail)


def test_a_record_of_exactly_the_size_limit_is_read() -> None:
    head = _record(reason="")[:-2]  # ... "reason": "
    raw = head + "x" * (MAX_RECORD_BYTES - len(head) - 2) + '"}'
    assert len(raw) == MAX_RECORD_BYTES
    assert parse_switch(raw) == SwitchRecord("HALT", 1, "", "x" * 500, 0.0)


def test_long_texts_are_cut_to_their_limits() -> None:
    raw = _record(set_by="s" * 300, reason="r" * 700, ts=2.5)
    assert parse_switch(raw) == SwitchRecord("HALT", 1, "s" * 200, "r" * 500, 2.5)


def test_a_record_is_encoded_canonically() -> None:
    record = SwitchRecord("HALT", 3, "ops", "incident", 1.5)
    assert encode_switch(record) == (
        '{"reason": "incident", "set_by": "ops", "state": "HALT", "ts": 1.5, "version": 3}'
    )


def test_next_record_of_a_never_set_switch_is_version_one() -> None:
    never = SwitchRecord("RUN", 0, "", "", 0.0)
    assert next_record(never, "HALT", set_by="ops", reason="incident", ts=5.0) == SwitchRecord(
        "HALT", 1, "ops", "incident", 5.0
    )
    with pytest.raises(ValueError, match="unknown fleet switch state 'PAUSE'"):
        next_record(never, "PAUSE", set_by="ops", reason="x", ts=5.0)


# ------------------------------------------------------------------ the link


def test_time_without_any_read_loses_the_link_as_no_read() -> None:
    link = FleetLink(good_at=0.0)
    assert judge_time(link, 0.5, stale_after=1.0, on_lost="halt") == Judgement(link, (), ())
    assert judge_time(link, 1.0, stale_after=1.0, on_lost="halt") == Judgement(
        FleetLink(0.0, lost=True), (FleetLost("fleet_no_read", "halt"),), ()
    )


def test_a_bad_record_raises_its_alert_and_a_valid_one_clears_it_exactly() -> None:
    link = FleetLink(good_at=0.0)
    bad = judge_read(
        link, Unreadable(INVALID, "not a JSON object"), 0.5, **_JUDGE, applied_version=0
    )
    assert bad == Judgement(
        FleetLink(0.0, INVALID, "not a JSON object", invalid=INVALID),
        (),
        (RaiseAlert(INVALID, "fleet switch", "fleet_switch_invalid: not a JSON object"),),
    )
    record = SwitchRecord("HALT", 2, "ops", "incident", 1.0)
    good = judge_read(bad.link, record, 0.75, **_JUDGE, applied_version=0)
    assert good == Judgement(
        FleetLink(0.75),
        (FleetSwitchRead("HALT", 2, "ops", "incident"),),
        (ClearAlert(INVALID, "fleet switch", "a valid record was read"),),
    )
    again = judge_read(good.link, record, 0.8, **_JUDGE, applied_version=2)
    assert again.actions == ()


def test_a_version_going_backwards_is_a_bad_record_naming_both_versions() -> None:
    record = SwitchRecord("RUN", 0, "", "fleet switch never set", 0.0)
    judged = judge_read(FleetLink(0.0), record, 0.5, **_JUDGE, applied_version=4)
    detail = "version 0 is lower than the applied 4"
    assert judged.link.detail == detail
    assert judged.actions == (
        RaiseAlert(INVALID, "fleet switch", f"fleet_version_backwards: {detail}"),
    )


_JUDGE = {"stale_after": 1.0, "on_lost": "halt"}


# ------------------------------------------------------------------ host summaries


def test_a_valid_summary_without_a_time_has_no_age_and_keeps_its_lists() -> None:
    raw = json.dumps({"host": "h1", "failing_components": ["feeder", "trader"]})
    view = parse_host("h1", raw, now_wall=6.0)
    assert view == HostView(
        "h1",
        None,
        False,
        {
            "ts": None,
            "dor": False,
            "mode": None,
            "failsafe": False,
            "failsafe_set_by": "",
            "failsafe_reason": "",
            "failing_components": ["feeder", "trader"],
            "fleet_version": 0,
            "fleet_lost": "",
            "scoped_halts": [],  # an older daemon's summary: none reported
        },
    )


@given(st.floats(min_value=0.0, max_value=1e9), st.floats(min_value=0.0, max_value=10.0))
def test_a_summarys_age_is_how_long_ago_it_was_written_never_negative(
    ts: float, ago: float
) -> None:
    view = parse_host("h1", json.dumps({"host": "h1", "ts": ts}), now_wall=ts + ago)
    assert view.age_s == max(0.0, (ts + ago) - ts)
    future = parse_host("h1", json.dumps({"host": "h1", "ts": ts + 5.0}), now_wall=ts)
    assert future.age_s == 0.0


@pytest.mark.parametrize(
    ("key", "raw", "problem"),
    [
        ("bad host", "{}", "not a valid host name: ignored"),
        ("h1", None, ""),
        ("h1", "nope", "summary is not JSON (JSONDecodeError): ignored"),
        ("h1", '{"host": "' + "h" * 100 + '"}', f"claims host {'h' * 80!r}: ignored"),
        ("h1", '{"host": "h1", "dor": 1}', "malformed summary: dor is not true or false: ignored"),
    ],
)
def test_a_summary_that_cannot_be_shown_is_a_lost_host_reported_by_name(
    key: str, raw: str | None, problem: str
) -> None:
    assert parse_host(key, raw, now_wall=6.0) == HostView(key, None, True, {}, problem)
