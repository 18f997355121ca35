"""A real daemon reading strange fleet switch records from a real ``redis-server``
(issue 18 A4: the daemon's own reading of the switch).

Before: a record nested past the json module's limit raised in the poll loop at every
read, so the link was never judged and the host stayed NORMAL forever (fail open);
a HALT whose reason held a lone surrogate (``"\\udcff"``, valid JSON, and what
``fleet halt --reason $'\\xff'`` used to write) crashed the daemon when it wrote the
flags, so no host halted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autoheal.drills.stacks.redis import RedisServer
from autoheal.drills.stacks.simple import Runtime, toml_str, wait_for
from tests.sysdeps import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

SWITCH = "autoheal:fleet:desk:switch"
HOST = "autoheal:fleet:desk:host:h"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[Runtime, RedisServer]]:
    redis = RedisServer(require_binary("redis-server", "redis-server"), tmp_path / "redis")
    redis.start()
    (tmp_path / "h").mkdir()
    rt = Runtime(tmp_path / "h", services=())
    rt.config.write_text(
        rt.config.read_text()
        + f"""
[fleet]
redis_url = {toml_str(redis.url)}
name = "desk"
host = "h"
stale_after = "1s"
poll_interval = "100ms"
"""
    )
    try:
        rt.start_daemon(wait_ready=False)
        wait_for(lambda: (rt.flags() or {}).get("mode") == "NORMAL", 20, "NORMAL")
        yield rt, redis
    finally:
        rt.close()
        redis.stop()


def test_daemon_fails_closed_on_a_deep_record_and_halts_on_a_strange_reason(
    host: tuple[Runtime, RedisServer],
) -> None:
    rt, redis = host
    # A valid read first, so that the bad record below is judged by the stale clock
    # (a daemon that never read the switch would be lost at its first failed read).
    redis.command("SET", SWITCH, '{"state": "RUN", "version": 1}')
    wait_for(lambda: b'"fleet_version": 1' in redis.command("GET", HOST), 10, "v1 applied")
    redis.command("SET", SWITCH, "[" * 60_000)
    wait_for(lambda: (rt.flags() or {}).get("mode") == "DEGRADED", 10, "DEGRADED")
    assert "nested too deeply" in (rt.flags() or {}).get("reason", "")

    redis.command("SET", SWITCH, '{"state": "HALT", "version": 2, "reason": "\\udcff x"}')
    wait_for(rt.stop_file.exists, 10, "STOP.TXT from the fleet HALT")
    flags = rt.flags() or {}
    assert flags.get("set_by") == "fleet" and flags.get("failsafe_active") is True
    assert "\\udcff x" in flags.get("reason", "")  # escaped, not lost
    assert rt.daemon is not None and rt.daemon.poll() is None, rt.log_text()[-3000:]
