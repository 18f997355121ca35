"""The status server under floods, slow clients and crowds of streams (issue 18 A2/A3).

Real loopback sockets against the real server (``serve_status`` with a real
``StatusPage``), in-process; and one real process whose descriptor limit is lowered
so that ``accept()`` fails with EMFILE for real. DESIGN.md §8: the server can never
take the daemon down or blind ``/metrics``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoheal.web.metrics import Metrics, serve_status
from autoheal.web.statuspage import StatusPage

pytestmark = pytest.mark.anyio

DOC = {"schema": 2, "ts": 1795000000.0, "dor": True, "stage": "OBSERVE", "components": {}}
SECURITY = {"x-content-type-options": "nosniff", "cache-control": "no-store"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serving(**kw: Any) -> AsyncIterator[tuple[int, Metrics]]:
    """The daemon's server: ``/metrics``, ``/status`` and the page, on a free port."""
    metrics = Metrics(lambda: DOC)
    page = StatusPage(lambda: DOC, lambda: [], stale_after_s=5.0)

    async def run(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        await serve_status(
            "127.0.0.1", 0, metrics, lambda: DOC, page=page, task_status=task_status, **kw
        )

    async with anyio.create_task_group() as tg:
        port = await tg.start(run)
        yield port, metrics
        tg.cancel_scope.cancel()


async def get(port: int, path: str, within_s: float) -> httpx.Response:
    """GET ``path``, failing the test unless the answer comes within ``within_s``."""
    with anyio.fail_after(within_s):
        async with httpx.AsyncClient(timeout=None) as client:
            return await client.get(f"http://127.0.0.1:{port}{path}")


async def open_stream(port: int, **kw: Any) -> anyio.abc.SocketStream:
    """An ``/events`` stream whose response head has arrived."""
    stream = await anyio.connect_tcp("127.0.0.1", port, **kw)
    await stream.send(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
    seen = b""
    with anyio.fail_after(5):
        while b"\r\n\r\n" not in seen:
            seen += await stream.receive()
    assert seen.startswith(b"HTTP/1.1 200 "), seen
    return stream


async def closed_by_server(stream: anyio.abc.SocketStream, within_s: float) -> bool:
    """Read until the server closes ``stream``; False if it is still open after ``within_s``."""
    with anyio.move_on_after(within_s):
        try:
            while await stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return True
    return False


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {name} {labels}")


@pytest.mark.slow
@pytest.mark.timeout(30)
async def test_events_streams_and_idle_sockets_do_not_blind_metrics_issue18() -> None:
    """A3: 8 /events streams and 200 idle sockets (no token): /metrics and the page answer."""
    async with serving() as (port, _):
        streams = [await open_stream(port) for _ in range(8)]
        idle = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(200)]
        metrics = await get(port, "/metrics", within_s=2)
        assert metrics.status_code == 200
        page = await get(port, "/", within_s=2)
        assert page.status_code == 200
        assert b"<html" in page.content
        text = (await get(port, "/metrics", within_s=2)).text
        # The streams were not what made room: idle sockets were shed instead.
        assert sample(text, "autoheal_http_connections", kind="stream") == 8
        assert sample(text, "autoheal_http_connections_shed_total", reason="client_full") > 0
        for s in [*streams, *idle]:
            await s.aclose()


@pytest.mark.slow
@pytest.mark.timeout(30)
async def test_slowloris_heads_neither_blind_metrics_nor_outlive_the_deadline_issue18() -> None:
    """64 clients trickling a request head a byte at a time: /metrics still answers at
    once, and each of them is closed by the head deadline (here the 2 s answer deadline)."""
    closed_after: list[float] = []
    start = time.monotonic()

    async def slowloris(port: int, ready: anyio.Event) -> None:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET /metrics HTTP/1.1\r\nx-slow: ")
            ready.set()
            async with anyio.create_task_group() as tg:

                async def trickle() -> None:
                    with pytest.raises((anyio.BrokenResourceError, OSError)):
                        while True:
                            await stream.send(b"a")
                            await anyio.sleep(0.1)

                tg.start_soon(trickle)
                assert await closed_by_server(stream, within_s=10)
                closed_after.append(time.monotonic() - start)
                tg.cancel_scope.cancel()

    async with serving(timeout_s=2.0) as (port, _), anyio.create_task_group() as tg:
        for _ in range(64):
            ready = anyio.Event()
            tg.start_soon(slowloris, port, ready)
            await ready.wait()
        assert (await get(port, "/metrics", within_s=1.5)).status_code == 200
        with anyio.fail_after(10):
            while len(closed_after) < 64:
                await anyio.sleep(0.05)
        text = (await get(port, "/metrics", within_s=2)).text
    assert max(closed_after) < 2.0 + 2.0  # the deadline, plus a busy machine's slack
    assert sample(text, "autoheal_http_connections_shed_total", reason="head_timeout") > 0


@pytest.mark.slow
@pytest.mark.timeout(30)
async def test_a_flooding_client_sheds_its_own_idle_sockets_first() -> None:
    """Per-client limits: a flood from 127.0.0.2 does not close 127.0.0.3's connections."""
    async with serving() as (port, _):
        others = [
            await anyio.connect_tcp("127.0.0.1", port, local_host="127.0.0.3") for _ in range(5)
        ]
        flood = [
            await anyio.connect_tcp("127.0.0.1", port, local_host="127.0.0.2") for _ in range(150)
        ]
        assert (await get(port, "/metrics", within_s=2)).status_code == 200
        for stream in others:  # still open: each answers its request
            await stream.send(b"GET /status HTTP/1.1\r\nhost: x\r\n\r\n")
            with anyio.fail_after(2):
                assert (await stream.receive()).startswith(b"HTTP/1.1 200 ")
        for s in [*others, *flood]:
            await s.aclose()


@pytest.mark.slow
@pytest.mark.timeout(30)
async def test_a_ninth_stream_replaces_the_oldest_and_streams_end_in_time() -> None:
    from autoheal.core.admission import Limits

    async with serving(limits=Limits(stream_lifetime_s=1.0)) as (port, _):
        streams = [await open_stream(port) for _ in range(9)]
        assert await closed_by_server(streams[0], within_s=0.9)  # replaced, not refused
        await streams[0].aclose()
        # Every stream ends after its lifetime; the browser reconnects (``retry:``).
        for stream in streams[1:]:
            assert await closed_by_server(stream, within_s=5)
            await stream.aclose()


async def test_every_answer_carries_the_same_security_headers_issue18() -> None:
    """One response builder: /metrics used to lack nosniff and no-store."""
    async with serving() as (port, _):
        for path in ("/metrics", "/status", "/", "/nope"):
            resp = await get(port, path, within_s=5)
            for name, value in SECURITY.items():
                assert resp.headers.get(name) == value, (path, name)
            assert resp.headers.get("connection") == "close"


async def test_the_stream_tells_the_browser_when_to_reconnect() -> None:
    async with serving() as (port, _):
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.send(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
        seen = b""
        with anyio.fail_after(5):
            while b"event: health" not in seen:
                seen += await stream.receive()
        await stream.aclose()
    head, _, body = seen.partition(b"\r\n\r\n")
    assert b"content-type: text/event-stream" in head
    assert b"x-content-type-options: nosniff" in head
    assert body.startswith(b"retry: 1000\n\n")


EMFILE_SERVER = """\
import os, resource, anyio
from autoheal.web.metrics import Metrics, serve_status

DOC = {"dor": True}

async def main():
    metrics = Metrics(lambda: DOC)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_status, "127.0.0.1", 0, metrics, lambda: DOC)
        # Room for a few connections only, well below the server's cap: the flood
        # makes accept() fail with EMFILE for real.
        used = len(os.listdir("/proc/self/fd"))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 16, hard))
        print(port, flush=True)

anyio.run(main)
"""


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_accept_failing_with_emfile_never_ends_the_server_issue18() -> None:
    """A2: with every descriptor taken, accept() raises EMFILE: the server backs off,
    sheds idle sockets and keeps answering; it used to end its task group (and the
    daemon with it)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", EMFILE_SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    flood: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        for _ in range(100):
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        during = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert during.status_code == 200
        assert proc.poll() is None
        for s in flood:
            s.close()
        flood.clear()
        after = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert after.status_code == 200
        assert sample(after.text, "autoheal_http_accept_errors_total", errno="EMFILE") > 0
        assert proc.poll() is None
    finally:
        for s in flood:
            s.close()
        proc.kill()
        _, err = proc.communicate(timeout=10)
    assert b"Traceback" not in err, err.decode(errors="replace")[-3000:]
