"""Probes against real things: heartbeat files in tmp_path, a real clock, loopback HTTP servers.

The HTTP servers are tiny anyio TCP listeners bound to port 0 in the test's own
event loop; each request's path picks a behaviour (status, delay, silence,
garbage). Nothing sleeps to wait: tests wait on conditions under a deadline.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from autoheal.probes import (
    CONN_ERROR,
    CONN_REFUSED,
    CONN_TIMEOUT,
    HEARTBEAT_INVALID,
    HEARTBEAT_MISSING,
    HEARTBEAT_STALE,
    LATENCY_P95_HIGH,
    WS_STALE,
    FieldFreshnessProbe,
    HeartbeatProbe,
    HttpProbe,
    ProbeResult,
    ProbeRunner,
)
from autoheal.store.atomic import write_json_atomic


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_heartbeat(path: Path, **fields: object) -> None:
    doc = {"component": "feeder", "pid": os.getpid(), "seq": 1, "ts": time.time(), **fields}
    write_json_atomic(path, doc, durable=False)


# --------------------------------------------------------------------------- heartbeat files


@pytest.mark.anyio
async def test_heartbeat_fresh_file_is_ok_with_recheck_at_crossing(tmp_path: Path) -> None:
    path = tmp_path / "feeder.heartbeat.json"
    write_heartbeat(path, ts=time.time() - 1.0)
    result = await HeartbeatProbe(path, max_age=10.0).check()
    assert result.ok and result.reason == ""
    assert result.value is not None and 1.0 <= result.value < 2.0
    assert result.threshold == 10.0
    assert result.recheck_at is not None
    assert result.recheck_at - time.monotonic() == pytest.approx(9.0, abs=0.5)


@pytest.mark.anyio
async def test_heartbeat_old_file_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "feeder.heartbeat.json"
    write_heartbeat(path, ts=time.time() - 30.0)
    result = await HeartbeatProbe(path, max_age=10.0).check()
    assert (result.ok, result.reason) == (False, HEARTBEAT_STALE)
    assert result.value == pytest.approx(30.0, abs=1.0)
    assert result.recheck_at is None


@pytest.mark.anyio
async def test_heartbeat_missing_file(tmp_path: Path) -> None:
    result = await HeartbeatProbe(tmp_path / "nope.heartbeat.json", max_age=10.0).check()
    assert (result.ok, result.reason) == (False, HEARTBEAT_MISSING)


@pytest.mark.parametrize(
    ("content", "detail_part"),
    [
        (b'{"ts": 17', "invalid"),  # a torn write by a non-atomic writer
        (bytes(range(256)) * 4, "invalid"),  # binary garbage
        (b"", "invalid"),
        (b'{"ts": "1700000000.5"}', "str"),
        (b'{"ts": null}', "missing"),
        (b'{"component": "feeder"}', "missing"),
        (b'[{"ts": 1700000000}]', "not_object"),
        (b'{"ts": 1e400}', "invalid"),  # orjson refuses infinity
        (b'{"ts": 99999999999}', "future"),
    ],
)
@pytest.mark.anyio
async def test_heartbeat_bad_file_is_invalid(
    tmp_path: Path, content: bytes, detail_part: str
) -> None:
    path = tmp_path / "feeder.heartbeat.json"
    path.write_bytes(content)
    result = await HeartbeatProbe(path, max_age=10.0).check()
    assert (result.ok, result.reason) == (False, HEARTBEAT_INVALID)
    assert detail_part in result.detail


@pytest.mark.anyio
async def test_heartbeat_huge_file_is_invalid_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "feeder.heartbeat.json"
    path.write_bytes(b'{"ts": %f, "pad": "' % time.time() + b"x" * (8 * 1024 * 1024) + b'"}')
    started = time.monotonic()
    result = await HeartbeatProbe(path, max_age=10.0).check()
    assert (result.ok, result.reason) == (False, HEARTBEAT_INVALID)
    assert "too_large" in result.detail
    assert time.monotonic() - started < 0.5


@pytest.mark.anyio
async def test_heartbeat_directory_in_place_of_file_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "feeder.heartbeat.json"
    path.mkdir()
    result = await HeartbeatProbe(path, max_age=10.0).check()
    assert (result.ok, result.reason) == (False, HEARTBEAT_INVALID)


@pytest.mark.anyio
async def test_ws_freshness_reads_its_own_field(tmp_path: Path) -> None:
    path = tmp_path / "feeder.heartbeat.json"
    now = time.time()
    write_heartbeat(path, ts=now, ws_last_msg_ts=now - 20.0)
    stale = await FieldFreshnessProbe(path, max_age=5.0).check()
    assert (stale.ok, stale.reason) == (False, WS_STALE)
    assert stale.value == pytest.approx(20.0, abs=1.0)
    assert (await FieldFreshnessProbe(path, "ws_last_msg_ts", max_age=60.0).check()).ok
    write_heartbeat(path, ts=now)  # no ws field at all
    missing_field = await FieldFreshnessProbe(path, max_age=5.0).check()
    assert (missing_field.ok, missing_field.reason) == (False, HEARTBEAT_INVALID)
    gone = await FieldFreshnessProbe(tmp_path / "gone.json", max_age=5.0).check()
    assert gone.reason == HEARTBEAT_MISSING


@dataclass
class Timeline:
    """Emitted results with the monotonic time each arrived."""

    seen: list[tuple[float, ProbeResult]] = field(default_factory=list)

    def __call__(self, result: ProbeResult) -> None:
        self.seen.append((time.monotonic(), result))

    async def wait_for(self, predicate, timeout: float = 3.0) -> tuple[float, ProbeResult]:
        with anyio.fail_after(timeout):
            while True:
                for item in self.seen:
                    if predicate(item[1]):
                        return item
                await anyio.sleep(0.005)


@pytest.mark.slow
@pytest.mark.anyio
async def test_runner_reports_stale_heartbeat_at_crossing_not_at_next_poll(tmp_path: Path) -> None:
    max_age = 0.3
    path = tmp_path / "feeder.heartbeat.json"
    wall_ts, mono_at_ts = time.time(), time.monotonic()
    write_heartbeat(path, ts=wall_ts)
    crossing = mono_at_ts + max_age
    timeline = Timeline()
    runner = ProbeRunner(HeartbeatProbe(path, max_age), timeline, interval=30.0, timeout=1.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        arrived, stale = await timeline.wait_for(lambda r: r.reason == HEARTBEAT_STALE)
        tg.cancel_scope.cancel()
    assert timeline.seen[0][1].ok
    assert runner.last_wake == "recheck"  # the 30 s interval cannot have fired
    assert runner.checks == 2
    detection = arrived - crossing
    assert 0.0 <= detection < 0.1, f"stale seen {detection * 1000:.1f} ms after crossing max_age"
    assert stale.value is not None and stale.value > max_age


@pytest.mark.slow
@pytest.mark.anyio
async def test_runner_keeps_a_beating_heartbeat_fresh_then_sees_it_stop(tmp_path: Path) -> None:
    max_age = 0.2
    path = tmp_path / "feeder.heartbeat.json"
    write_heartbeat(path)
    timeline = Timeline()
    runner = ProbeRunner(HeartbeatProbe(path, max_age), timeline, interval=30.0, timeout=1.0)
    last_write = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        # a writer beating every 50 ms for half a second, then hung
        for _ in range(10):
            await anyio.sleep(0.05)
            # Taken before the write: the beat's own stamp is no earlier than this.
            last_write = time.monotonic()
            write_heartbeat(path)
        arrived, _ = await timeline.wait_for(lambda r: r.reason == HEARTBEAT_STALE)
        tg.cancel_scope.cancel()
    reasons = [r.reason for _, r in timeline.seen]
    assert reasons[-1] == HEARTBEAT_STALE
    assert all(r == "" for r in reasons[:-1])
    assert len(reasons) >= 3  # it re-checked at each would-be crossing while beats came in
    # Stale at the crossing itself, not at the next 30 s interval (0.1 s late when idle;
    # the bound leaves room for a busy machine).
    assert max_age <= arrived - last_write < max_age + 0.5


@pytest.mark.anyio
async def test_runner_poke_rechecks_a_heartbeat_right_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "feeder.heartbeat.json"
    timeline = Timeline()
    runner = ProbeRunner(HeartbeatProbe(path, 5.0), timeline, interval=30.0, timeout=1.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        await timeline.wait_for(lambda r: r.reason == HEARTBEAT_MISSING)
        write_heartbeat(path)  # the restarted component's first beat
        poked_at = time.monotonic()
        runner.poke()
        arrived, _ = await timeline.wait_for(lambda r: r.ok)
        tg.cancel_scope.cancel()
    assert runner.last_wake == "poke"
    assert arrived - poked_at < 0.1


# --------------------------------------------------------------------------- loopback HTTP


@dataclass
class Server:
    """A loopback HTTP/1.1 server; the path picks the behaviour."""

    port: int
    delays: dict[str, float] = field(default_factory=dict)
    requests: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def _handle(server: Server, stream: SocketStream) -> None:
    async with stream:
        buffered = BufferedByteReceiveStream(stream)
        try:
            head = await buffered.receive_until(b"\r\n\r\n", 65536)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound):
            return
        server.requests += 1
        path = head.split(b" ", 2)[1].decode()
        if path == "/hang":  # accept, read the request, never answer
            try:
                await buffered.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            return
        if path == "/garbage":
            await stream.send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
            return
        await anyio.sleep(server.delays.get(path, 0.0))
        status = {"/bad": b"502 Bad Gateway", "/empty": b"204 No Content"}.get(path, b"200 OK")
        body = b"" if path == "/empty" else b'{"pong": true}'
        length = b"" if path == "/empty" else b"Content-Length: %d\r\n" % len(body)
        await stream.send(
            b"HTTP/1.1 " + status + b"\r\n" + length + b"Connection: close\r\n\r\n" + body
        )


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    srv = Server(port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, lambda stream: _handle(srv, stream))
        yield srv
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_http_ok_reports_latency(server: Server) -> None:
    async with HttpProbe(server.url("/ping"), timeout=2.0, latency_p95=1.0) as probe:
        result = await probe.check()
    assert result.ok and result.reason == ""
    assert result.value is not None and 0.0 < result.value < 0.5
    assert result.threshold == 1.0
    assert probe.latencies == (result.value,)


@pytest.mark.anyio
async def test_http_502_is_http_status_502(server: Server) -> None:
    async with HttpProbe(server.url("/bad"), timeout=2.0) as probe:
        result = await probe.check()
    assert (result.ok, result.reason) == (False, "http_status_502")


@pytest.mark.anyio
async def test_http_expect_status_is_configurable(server: Server) -> None:
    async with HttpProbe(server.url("/empty"), timeout=2.0, expect_status=(204,)) as probe:
        assert (await probe.check()).ok
    async with HttpProbe(server.url("/empty"), timeout=2.0) as probe:
        assert (await probe.check()).reason == "http_status_204"


@pytest.mark.anyio
async def test_http_refused_port_is_conn_refused() -> None:
    # A bound but not listening socket holds the port, so the kernel answers SYN with RST.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        async with HttpProbe(f"http://127.0.0.1:{port}/ping", timeout=2.0) as probe:
            result = await probe.check()
    assert (result.ok, result.reason) == (False, CONN_REFUSED)
    assert "ConnectError" in result.detail
    assert probe.latencies == ()  # no answer is not a latency


@pytest.mark.anyio
async def test_http_silent_server_is_conn_timeout_counted_as_latency(server: Server) -> None:
    async with HttpProbe(server.url("/hang"), timeout=0.15, latency_p95=1.0) as probe:
        started = time.monotonic()
        result = await probe.check()
        elapsed = time.monotonic() - started
    assert (result.ok, result.reason) == (False, CONN_TIMEOUT)
    assert "ReadTimeout" in result.detail
    assert probe.latencies == (0.15,)
    assert result.value == 0.15
    assert 0.15 <= elapsed < 1.0


@pytest.mark.anyio
async def test_http_runner_timeout_is_conn_timeout_too(server: Server) -> None:
    timeline = Timeline()
    async with HttpProbe(server.url("/hang"), timeout=5.0) as probe:
        runner = ProbeRunner(probe, timeline, interval=30.0, timeout=0.1)
        result = await runner.check_once()
    assert (result.ok, result.reason) == (False, CONN_TIMEOUT)
    assert probe.latencies[0] == pytest.approx(0.1, abs=0.05)


@pytest.mark.anyio
async def test_http_non_http_answer_is_conn_error(server: Server) -> None:
    async with HttpProbe(server.url("/garbage"), timeout=2.0) as probe:
        result = await probe.check()
    assert (result.ok, result.reason) == (False, CONN_ERROR)
    assert "RemoteProtocolError" in result.detail


@pytest.mark.anyio
async def test_http_slow_server_is_latency_p95_high(server: Server) -> None:
    server.delays["/slow"] = 0.12
    async with HttpProbe(server.url("/slow"), timeout=2.0, latency_p95=0.05) as probe:
        result = await probe.check()
    assert (result.ok, result.reason) == (False, LATENCY_P95_HIGH)
    assert result.value is not None and result.value >= 0.12
    assert result.threshold == 0.05


@pytest.mark.slow
@pytest.mark.anyio
async def test_http_p95_forgives_one_slow_answer_in_twenty_but_not_two(server: Server) -> None:
    url = server.url("/p")
    async with HttpProbe(url, timeout=2.0, latency_p95=0.05, window=20) as probe:
        for _ in range(19):
            assert (await probe.check()).ok
        server.delays["/p"] = 0.1
        one_slow = await probe.check()  # the 20th sample: p95 is the 19th fastest
        assert one_slow.ok, one_slow
        two_slow = await probe.check()  # window slides: 18 fast, 2 slow
    assert (two_slow.ok, two_slow.reason) == (False, LATENCY_P95_HIGH)
    assert len(probe.latencies) == 20
    assert server.requests == 21


@pytest.mark.anyio
async def test_http_shared_client_is_left_open(server: Server) -> None:
    async with httpx.AsyncClient() as client:
        probe = HttpProbe(server.url("/ping"), timeout=2.0, client=client)
        assert (await probe.check()).ok
        await probe.aclose()
        assert not client.is_closed
        assert (await probe.check()).ok


def test_http_repr_hides_query_and_credentials() -> None:
    probe = HttpProbe("https://user:pw@api.example.com/v1/ping?apiKey=s3cret", timeout=1.0)
    text = repr(probe)
    assert "s3cret" not in text and "pw" not in text
    assert "api.example.com/v1/ping" in text


@pytest.mark.parametrize(
    "build",
    [
        lambda: HeartbeatProbe("hb.json", 0),
        lambda: FieldFreshnessProbe("hb.json", max_age=-1.0),
        lambda: HttpProbe("http://127.0.0.1:1/", timeout=0),
        lambda: HttpProbe("http://127.0.0.1:1/", timeout=1.0, window=0),
    ],
)
def test_probes_reject_nonsense_settings(build) -> None:
    with pytest.raises(ValueError, match="must be"):
        build()
