"""A flood against the status port cannot stop the daemon or its services (issue 18 A2).

The real ``autoheal run`` with two services and a status port, its descriptor limit
lowered to 256 so that a thousand idle connections (no bytes, no token) would exhaust
it: ``accept()`` used to raise EMFILE inside anyio's ``serve()``, the daemon exited 1
and stopped its services. Now the daemon keeps running, its services keep their
PIDs, ``/metrics`` answers during and after the flood, and the daemon's descriptors
stay well below the limit.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoheal.core.admission import budget_for_fds
from autoheal.drills.stacks.simple import Runtime, alive, read_doc, wait_for
from tests.sysdeps import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

FD_LIMIT = 256
FLOOD = 1000


def total(text: str, name: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


def test_idle_flood_with_a_low_fd_limit_keeps_the_daemon_and_its_services_issue18(
    tmp_path: Path,
) -> None:
    require_binary("prlimit", "util-linux")
    with Runtime(tmp_path, ("feeder", "trader"), status_listen=True) as rt:
        daemon = rt.start_daemon(fd_limit=FD_LIMIT)
        endpoint = wait_for(
            lambda: read_doc(rt.runtime_dir / "status_endpoint.json"), 10, "the status endpoint"
        )
        url = f"http://127.0.0.1:{endpoint['port']}/metrics"
        pids = {name: rt.healthy_pid(name) for name in rt.services}
        assert all(pids.values()), pids

        flood: list[socket.socket] = []
        try:
            for _ in range(FLOOD):
                flood.append(socket.create_connection(("127.0.0.1", endpoint["port"]), 5))
            during = httpx.get(url, timeout=5)
            assert during.status_code == 200, during.text
            assert daemon.poll() is None, rt.log_text()[-3000:]
            assert psutil.Process(daemon.pid).num_fds() < FD_LIMIT // 2
        finally:
            for s in flood:
                s.close()

        after = httpx.get(url, timeout=5)
        assert after.status_code == 200
        assert total(after.text, "autoheal_http_connections_shed_total") > 0  # shed, not queued
        # The cap was sized from the descriptor limit the daemon found at start.
        cap = budget_for_fds(FD_LIMIT, len(rt.services)).limits.max_connections
        assert total(after.text, "autoheal_http_connections_max") == cap < FD_LIMIT // 2
        assert daemon.poll() is None, rt.log_text()[-3000:]
        assert {name: rt.healthy_pid(name) for name in rt.services} == pids
        assert all(alive(pid) for pid in pids.values())
        assert "Traceback" not in rt.log_text()
