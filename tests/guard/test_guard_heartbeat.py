"""Heartbeat writer: the file the daemon's heartbeat probe reads."""

from __future__ import annotations

import os

import orjson
import pytest

from autoheal.guard import Heartbeat


def test_heartbeat_writes_the_contract_fields(tmp_path):
    hb = Heartbeat(tmp_path, "feeder", time_fn=lambda: 1234.5)
    hb.beat()
    hb.beat(ws_last_msg_ts=1234.0)
    doc = orjson.loads((tmp_path / "feeder.heartbeat.json").read_bytes())
    assert doc == {
        "component": "feeder",
        "pid": os.getpid(),
        "ts": 1234.5,
        "seq": 2,
        "ws_last_msg_ts": 1234.0,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["feeder.heartbeat.json"]  # no temp files left


def test_heartbeat_refuses_bad_names_and_reserved_extras(tmp_path):
    for name in ("", "..", "a/b", "../evil"):
        with pytest.raises(ValueError):
            Heartbeat(tmp_path, name)
    with pytest.raises(ValueError):
        Heartbeat(tmp_path, "trader").beat(pid=1)


def test_heartbeat_is_cheap(tmp_path):
    hb = Heartbeat(tmp_path, "trader")
    for _ in range(20):
        hb.beat()
    assert hb.seq == 20
