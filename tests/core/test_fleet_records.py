"""What a fleet record means, whatever a Redis key holds (issue 18 A4).

Reading a record never raises: a bad switch record is unreadable (fail closed), a bad
host summary is malformed and named, and every string that comes out is valid text
that the flags file, the journal and a terminal can take. Pure: no Redis here (the
CLI and the daemon against a real ``redis-server`` are in ``tests/cli/``,
``tests/daemon/`` and ``tests/e2e/``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.fleet import (
    HOST_NAME,
    SwitchRecord,
    Unreadable,
    host_name,
    parse_host,
    parse_switch,
    version_floor,
)

DEEP = "[" * 60_000  # under MAX_RECORD_BYTES, far past the json module's recursion limit


def summary(**fields: Any) -> str:
    doc = {"host": "h1", "ts": 5.0, "dor": True, "mode": "NORMAL", "fleet_version": 3}
    doc.update(fields)
    return json.dumps(doc)


def test_parse_switch_nested_too_deeply_is_unreadable_not_a_crash() -> None:
    out = parse_switch(DEEP)
    assert isinstance(out, Unreadable)
    assert out.problem == "fleet_switch_invalid" and "nested" in out.detail


def test_parse_switch_halt_with_a_lone_surrogate_still_halts_with_valid_text() -> None:
    # JSON allows "\udcff"; as a Python str it cannot be written to the flags file.
    raw = '{"state": "HALT", "version": 4, "set_by": "\\udcff", "reason": "a\\ud800b"}'
    out = parse_switch(raw)
    assert isinstance(out, SwitchRecord)
    assert (out.state, out.version) == ("HALT", 4)
    (out.set_by + out.reason).encode("utf-8")  # raises if a surrogate is left
    assert out.reason == "a\\ud800b"


def test_parse_switch_unknown_state_detail_is_valid_text() -> None:
    out = parse_switch('{"state": "\\udcff", "version": 1}')
    assert isinstance(out, Unreadable)
    out.detail.encode("utf-8")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"fleet_version": "7a"}, "fleet_version is not a whole number"),
        ({"fleet_version": float("inf")}, "fleet_version"),  # json writes Infinity
        ({"fleet_version": [7]}, "fleet_version"),
        ({"fleet_version": True}, "fleet_version"),
        ({"fleet_version": -1}, "fleet_version"),
        ({"fleet_version": 7.0}, "fleet_version"),
        ({"failing_components": [1, 2]}, "failing_components is not a list of strings"),
        ({"failing_components": "feeder"}, "failing_components"),
        ({"dor": "yes"}, "dor is not true or false"),
        ({"failsafe": 1}, "failsafe"),
        ({"failsafe_set_by": None}, "failsafe_set_by"),
        ({"mode": 5}, "mode is not a string"),
        ({"ts": "now"}, "ts is not a finite number"),
        ({"ts": float("nan")}, "ts"),
        ({"fleet_lost": 3}, "fleet_lost"),
    ],
)
def test_parse_host_malformed_summary_is_ignored_and_names_the_field(
    fields: dict[str, Any], words: str
) -> None:
    view = parse_host("h1", summary(**fields), now_wall=6.0)
    assert view.problem.startswith("malformed summary: ") and words in view.problem
    assert view.host == "h1" and view.doc == {} and view.fleet_version == 0


def test_parse_host_1e400_is_malformed() -> None:
    view = parse_host("h1", '{"host": "h1", "fleet_version": 1e400}', now_wall=6.0)
    assert "fleet_version" in view.problem


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (DEEP, "nested too deeply"),
        (b"\xff\xfe", "not JSON"),
        ("[1]", "not a JSON object"),
        ("{" + " " * 70_000 + "}", "larger than"),
    ],
)
def test_parse_host_unparsable_summary_is_ignored_never_raised(
    raw: str | bytes, words: str
) -> None:
    view = parse_host("h1", raw, now_wall=6.0)
    assert words in view.problem and view.doc == {}


def test_parse_host_valid_summary_keeps_checked_fields_with_defaults() -> None:
    view = parse_host("h1", '{"host": "h1", "ts": 5.0, "mode": "\\udcff"}', now_wall=6.5)
    assert (view.problem, view.lost, view.age_s) == ("", False, 1.5)
    assert view.doc["mode"] == "\\udcff"  # escaped: printable, writable
    assert view.doc["failing_components"] == [] and view.fleet_version == 0


def test_parse_host_key_that_is_not_a_host_name_is_reported() -> None:
    name = host_name(b"evil\x1b[2J\xff")
    assert name == "evil\\x1b[2J\\xff"  # shown escaped, never as raw control bytes
    view = parse_host(name, summary(host=name), now_wall=6.0)
    assert view.problem == "not a valid host name: ignored"
    assert host_name(b"bot-eu-1.example") == "bot-eu-1.example"


def test_version_floor_skips_malformed_hosts() -> None:
    hosts = [
        parse_host("h1", summary(fleet_version=4), now_wall=6.0),
        parse_host("h2", json.dumps({"host": "h2", "fleet_version": "7a"}), now_wall=6.0),
        parse_host("h3", None, now_wall=6.0),
    ]
    assert version_floor(hosts) == 4
    assert version_floor([]) == 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    ["state", "version", "set_by", "reason", "ts", "host", "dor", "mode", "failsafe",
     "failsafe_set_by", "failing_components", "fleet_version", "fleet_lost"]
)  # fmt: skip
RECORDS = (
    st.binary(max_size=200)
    | st.text(max_size=200)
    | JSON.map(json.dumps)
    | st.dictionaries(FIELDS, JSON, max_size=8).map(json.dumps)
    | st.integers(1, 2_000).map(lambda n: "[" * n)
)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    return []


@pytest.mark.slow
@given(RECORDS)
def test_parse_switch_is_total_and_yields_valid_text(raw: str | bytes) -> None:
    out = parse_switch(raw)
    texts = [out.problem, out.detail] if isinstance(out, Unreadable) else [out.set_by, out.reason]
    for text in texts:
        text.encode("utf-8")


@pytest.mark.slow
@given(RECORDS, st.text(max_size=20) | st.binary(max_size=20))
def test_parse_host_is_total_and_yields_valid_text(raw: str | bytes, key: str | bytes) -> None:
    name = host_name(key)
    view = parse_host(name, raw, now_wall=1e9)
    for text in [view.host, view.problem, *_strings(dict(view.doc))]:
        text.encode("utf-8")
    assert view.problem or HOST_NAME.fullmatch(view.host)
    assert isinstance(view.fleet_version, int) and view.fleet_version >= 0
