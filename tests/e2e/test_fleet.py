"""Three real daemons (three runtime directories) stand in for three hosts of a fleet,
sharing one real ``redis-server``: the fleet switch, a local halt that outlives the
fleet's RUN, Redis killed, restarted and SIGSTOPped (hung, not refused)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoheal.drills.stacks.redis import RedisServer
from autoheal.drills.stacks.simple import Runtime, read_doc, toml_str, wait_for
from tests.sysdeps import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

STALE_S = 1.0
POLL_S = 0.1
#: Writing the flags and this test's own 20 ms polling, three daemons and Redis on a 2-core
#: machine with stress-ng beside them (2.3 s was seen with 1.0 here, load average 7). What
#: the bound guards is still far off: a link that waits out a socket's default timeout, or
#: a staleness clock that is not applied, takes 10 s or never.
SLACK_S = 2.0


def fleet_toml(url: str, host: str) -> str:
    return f"""
[fleet]
redis_url = {toml_str(url)}
name = "desk"
host = {toml_str(host)}
stale_after = "{STALE_S}s"
poll_interval = "{int(POLL_S * 1000)}ms"
"""


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_binary("redis-server", "redis-server"), tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hosts(tmp_path: Path, redis: RedisServer) -> Iterator[list[Runtime]]:
    yield from fleet_hosts(tmp_path, redis, 3)


def fleet_hosts(tmp_path: Path, redis: RedisServer, count: int) -> Iterator[list[Runtime]]:
    """``count`` daemons on one Redis, each NORMAL; closed after (a fixture's body)."""
    runtimes = []
    try:
        for i in range(count):
            root = tmp_path / f"host{i}"
            root.mkdir()
            rt = Runtime(root, services=())
            rt.config.write_text(rt.config.read_text() + fleet_toml(redis.url, f"host{i}"))
            runtimes.append(rt)
            rt.start_daemon(wait_ready=False)
        for rt in runtimes:
            wait_for(lambda rt=rt: mode(rt) == "NORMAL", 20, f"{rt.root.name} NORMAL")
        yield runtimes
    finally:
        for rt in runtimes:
            rt.close()


def mode(rt: Runtime) -> str | None:
    flags = rt.flags()
    if not isinstance(flags, dict):
        return None
    return flags.get("mode") or ("NORMAL" if flags.get("failsafe_active") is False else None)


def fleet(rt: Runtime, *args: str) -> tuple[int, str]:
    done = rt.cli("fleet", *args)
    return done.returncode, done.stdout + done.stderr


def status(rt: Runtime) -> dict:  # type: ignore[type-arg]
    return json.loads(rt.cli("fleet", "status", "--json").stdout)


def test_fleet_halt_run_and_a_local_halt_that_survives(
    hosts: list[Runtime], redis: RedisServer
) -> None:
    h0, h1, h2 = hosts
    wait_for(lambda: len(status(h0)["hosts"]) == 3, 10, "three hosts in fleet status")
    # An operator halts host0 locally first.
    assert h0.cli("failsafe", "enter", "--reason", "local check").returncode == 0
    assert h0.stop_file.exists()

    code, out = fleet(h1, "halt", "--reason", "drill")
    assert code == 0, out
    for rt in hosts:
        wait_for(rt.stop_file.exists, 5, f"STOP.TXT on {rt.root.name}")
    for rt in (h1, h2):
        wait_for(lambda rt=rt: (rt.flags() or {}).get("set_by") == "fleet", 5, "set_by fleet")
    doc = status(h0)
    assert doc["switch"]["state"] == "HALT" and doc["switch"]["version"] == 1
    assert all(h["mode"] == "SIGNAL_READ_ONLY" for h in doc["hosts"])
    assert [e for e in h1.events() if e.kind == "fleet_switch_set"][-1].actor

    code, out = fleet(h2, "run", "--reason", "all clear")
    assert code == 0, out
    for rt in (h1, h2):
        wait_for(lambda rt=rt: not rt.stop_file.exists(), 5, f"STOP.TXT gone on {rt.root.name}")
        wait_for(lambda rt=rt: mode(rt) == "NORMAL", 5, "NORMAL")
    # Well past a few polls, the operator's local halt on host0 still holds.
    wait_for(lambda: status(h0)["hosts"][0]["fleet_version"] == 2, 5, "host0 applied v2")
    assert h0.stop_file.exists()
    assert (h0.flags() or {}).get("failsafe_active") is True

    # A host key claiming another host's name is ignored and reported.
    redis.command("SET", "autoheal:fleet:desk:host:evil", json.dumps({"host": "host1"}))
    code, out = fleet(h0, "status")
    assert code == 1 and "evil" in out and "ignored" in out
    # Redis restarted without its data: the switch (v2) is gone, which is a version
    # going backwards (it may have been a HALT): fail closed until an operator sets it
    # again, above the version the hosts report having applied.
    redis.stop()
    redis.start()
    wait_for(lambda: "fleet_version_backwards" in (h1.flags() or {}).get("reason", ""), 10, "DEG")
    wait_for(lambda: mode(h2) == "DEGRADED", 10, "host2 DEGRADED too")
    wait_for(lambda: len(status(h0)["hosts"]) == 3, 10, "hosts republished")
    code, out = fleet(h1, "run", "--reason", "redis was restarted")
    assert code == 0 and "v3" in out, out
    wait_for(lambda: mode(h1) == "NORMAL" and mode(h2) == "NORMAL", 5, "NORMAL after fleet run")
    assert h0.stop_file.exists()

    # A stopped daemon's report expires: that host is shown as lost.
    h2.stop_daemon()
    wait_for(
        lambda: any(h["host"] == "host2" and h["lost"] for h in status(h0)["hosts"]),
        10,
        "host2 shown as lost",
    )


def test_redis_killed_restarted_and_hung_fails_closed(
    hosts: list[Runtime], redis: RedisServer
) -> None:
    def all_mode(want: str) -> bool:
        return all(mode(rt) == want for rt in hosts)

    bound = STALE_S + POLL_S + SLACK_S
    t0 = time.monotonic()
    redis.stop()  # SIGKILL: connections refused from now on
    wait_for(lambda: all_mode("DEGRADED"), 10, "all three DEGRADED after Redis died")
    assert time.monotonic() - t0 < bound
    for rt in hosts:
        alert = rt.runtime_dir / "alerts" / "fleet_lost.json"
        wait_for(alert.exists, 2, "the fleet_lost alert")  # written just after the flags
        # health_v2.json follows the flags at the end of the same loop turn: wait for it.
        wait_for(lambda rt=rt: (rt.health() or {}).get("dor") is False, 2, "DOR false")
        assert not rt.stop_file.exists()  # degrade, not halt
    redis.start()
    wait_for(lambda: all_mode("NORMAL"), 10, "all three NORMAL after Redis came back")

    t0 = time.monotonic()
    redis.pause()  # SIGSTOP: connections accepted by the kernel, never answered
    try:
        wait_for(lambda: all_mode("DEGRADED"), 10, "all three DEGRADED while Redis hangs")
        assert time.monotonic() - t0 < bound
    finally:
        redis.resume()
    wait_for(lambda: all_mode("NORMAL"), 10, "all three NORMAL after Redis resumed")

    # A record that does not parse is unreadable, never RUN: fail closed, alerted.
    redis.command("SET", "autoheal:fleet:desk:switch", "HALT please")
    wait_for(lambda: all_mode("DEGRADED"), 10, "DEGRADED on a garbage switch record")
    for rt in hosts:
        path = rt.runtime_dir / "alerts" / "fleet_switch_invalid.json"
        wait_for(lambda path=path: read_doc(path), 2, "the fleet_switch_invalid alert")
    code, out = fleet(hosts[0], "halt", "--reason", "replace the garbage")
    assert code == 0, out
    for rt in hosts:
        wait_for(rt.stop_file.exists, 5, "STOP.TXT after the garbage was replaced")
