"""``autoheal fleet halt|status`` against a real ``redis-server`` holding bad records
(issue 18 A4).

One malformed host summary (``fleet_version: "7a"``, ``1e400``, a list, JSON nested
past the parser's limit, a name that is not UTF-8, a key of the wrong type) used to
make ``fleet halt`` exit 1 with "cannot use Redis" and write nothing. Now the bad
record is named and skipped, and the switch always goes out; only Redis itself
failing is an error. Each test runs the real CLI (``main``) against its own server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoheal.cli import main
from autoheal.drills.stacks.redis import RedisServer
from autoheal.drills.stacks.simple import toml_str
from tests.sysdeps import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

PREFIX = "autoheal:fleet:desk:"
GOOD = json.dumps({"host": "good", "ts": 1.0, "dor": True, "mode": "NORMAL", "fleet_version": 4})
DEEP = "[" * 60_000  # small enough for a record, deeper than the json module goes

BAD_SUMMARIES = {
    "version_7a": '{"host": "bad", "ts": 1.0, "fleet_version": "7a"}',
    "version_1e400": '{"host": "bad", "ts": 1.0, "fleet_version": 1e400}',
    "version_list": '{"host": "bad", "ts": 1.0, "fleet_version": [9]}',
    "nested_too_deeply": DEEP,
    "components_not_strings": '{"host": "bad", "ts": 1.0, "failing_components": [1, 2]}',
}


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_binary("redis-server", "redis-server"), tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def config(tmp_path: Path, redis: RedisServer) -> Path:
    path = tmp_path / "autoheal.toml"
    path.write_text(
        f"""environment = "paper"
[paths]
runtime_dir = {toml_str(str(tmp_path / "rt"))}
stop_file = {toml_str(str(tmp_path / "STOP.TXT"))}
[fleet]
redis_url = {toml_str(redis.url)}
name = "desk"
host = "h0"
"""
    )
    return path


def publish(redis: RedisServer, name: str | bytes, value: str | bytes) -> None:
    raw_name = name if isinstance(name, bytes) else name.encode()
    redis.command("SET", PREFIX.encode() + b"host:" + raw_name, value)
    redis.command("SADD", PREFIX + "hosts", raw_name)


def switch(redis: RedisServer) -> dict:  # type: ignore[type-arg]
    reply = redis.command("GET", PREFIX + "switch")
    return json.loads(reply.split(b"\r\n", 1)[1].rsplit(b"\r\n", 1)[0])


def fleet(config: Path, *args: str) -> int:
    return main(["fleet", *args, "--config", str(config)])


@pytest.mark.parametrize("bad", list(BAD_SUMMARIES), ids=list(BAD_SUMMARIES))
def test_fleet_halt_goes_out_despite_a_malformed_host_summary(
    config: Path, redis: RedisServer, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    publish(redis, "good", GOOD)
    publish(redis, "bad", BAD_SUMMARIES[bad])
    assert fleet(config, "halt", "--reason", "exchange incident") == 0
    out = capsys.readouterr()
    record = switch(redis)
    # Above the valid host's applied version 4; the bad one cannot raise (or block) it.
    assert (record["state"], record["version"]) == ("HALT", 5)
    assert "switch HALT v5" in out.out
    assert "cannot use Redis" not in out.err
    if bad != "components_not_strings":  # its fleet_version is fine: nothing to skip
        assert "skipped host bad: " in out.err


@pytest.mark.parametrize("bad", list(BAD_SUMMARIES), ids=list(BAD_SUMMARIES))
def test_fleet_status_names_a_malformed_host_and_lists_the_others(
    config: Path, redis: RedisServer, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    publish(redis, "good", GOOD)
    publish(redis, "bad", BAD_SUMMARIES[bad])
    assert fleet(config, "status") == 1  # a host is ignored: not all well
    out = capsys.readouterr()
    rows = {line.split()[0]: line for line in out.out.splitlines()[2:]}
    assert "IGNORED" in rows["bad"] and "ignored" in rows["bad"]
    assert "NORMAL" in rows["good"]
    assert out.err == ""

    assert fleet(config, "status", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert hosts["bad"]["problem"] and hosts["good"]["fleet_version"] == 4


def test_a_host_name_that_is_not_utf8_is_reported_escaped_and_the_halt_goes_out(
    config: Path, redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(redis, "good", GOOD)
    publish(redis, b"evil\xff\x1b[2J", '{"host": "x"}')
    assert fleet(config, "halt", "--reason", "drill") == 0
    err = capsys.readouterr().err
    assert "skipped host evil\\xff\\x1b[2J: not a valid host name" in err
    assert "\x1b" not in err
    assert switch(redis)["state"] == "HALT"
    assert fleet(config, "status") == 1
    assert "evil\\xff\\x1b[2J" in capsys.readouterr().out


def test_a_switch_record_that_is_not_utf8_is_replaced_by_the_halt(
    config: Path, redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    redis.command("SET", PREFIX + "switch", b"\xff\xfe garbage")
    assert fleet(config, "halt", "--reason", "replace the garbage") == 0, capsys.readouterr()
    assert (switch(redis)["state"], switch(redis)["version"]) == ("HALT", 1)


def test_a_hosts_set_of_the_wrong_type_does_not_stop_the_halt(
    config: Path, redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    redis.command("SET", PREFIX + "hosts", "not a set")
    assert fleet(config, "halt", "--reason", "drill") == 0
    assert "cannot list the hosts (ResponseError)" in capsys.readouterr().err
    assert switch(redis)["state"] == "HALT"


def test_redis_down_is_still_one_line_and_exit_1(
    config: Path, redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    redis.stop()
    assert fleet(config, "halt", "--reason", "drill") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fleet_unreachable: cannot use Redis" in err
