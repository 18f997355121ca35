"""The loopback fault proxy against a real loopback echo server (issue 6, "Must show")."""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from autoheal.chaos.proxy import (
    Fault,
    FaultProxy,
    ProxyControlServer,
    acontrol,
    bandwidth,
    blackhole,
    control,
    latency,
    parse_args,
    refuse,
    reset,
)

CLOSED_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Echo:
    port: int
    received: int = 0
    connections: int = 0


@asynccontextmanager
async def echo_server() -> AsyncIterator[Echo]:
    """A loopback echo server on an OS-picked port that counts what it receives."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    echo = Echo(port=listener.extra(SocketAttribute.local_port))

    async def handle(stream: SocketStream) -> None:
        echo.connections += 1
        async with stream:
            try:
                while True:
                    data = await stream.receive()
                    echo.received += len(data)
                    await stream.send(data)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle, tg)
        yield echo
        tg.cancel_scope.cancel()


@asynccontextmanager
async def stack() -> AsyncIterator[tuple[Echo, FaultProxy]]:
    async with echo_server() as echo, FaultProxy("127.0.0.1", echo.port, seed=1) as proxy:
        yield echo, proxy


async def recv_exactly(stream: SocketStream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        buf += await stream.receive()
    return bytes(buf)


async def round_trip(stream: SocketStream, payload: bytes = b"ping") -> float:
    start = anyio.current_time()
    await stream.send(payload)
    assert await recv_exactly(stream, len(payload)) == payload
    return anyio.current_time() - start


async def median_rtt(stream: SocketStream, n: int = 5) -> float:
    return statistics.median([await round_trip(stream) for _ in range(n)])


async def wait_for(cond: Callable[[], bool], timeout_s: float = 2.0) -> None:
    with anyio.fail_after(timeout_s):
        while not cond():
            await anyio.sleep(0.005)


async def expect_closed(stream: SocketStream, timeout_s: float = 1.0) -> BaseException:
    """The stream ends (EOF or reset) within the deadline; returns what the client saw."""
    with anyio.fail_after(timeout_s):
        try:
            while True:
                await stream.receive()
        except CLOSED_ERRORS as exc:
            return exc


@pytest.mark.anyio
async def test_proxy_passes_echo_through_and_counts() -> None:
    async with stack() as (echo, proxy):
        payload = bytes(range(256)) * 400
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            await client.send(payload)
            assert await recv_exactly(client, len(payload)) == payload
            # The counters move once send() returns, which may be just after the client read.
            await wait_for(lambda: proxy.status()["bytes_downstream"] == len(payload))
            status = proxy.status()
            assert status["fault"] is None
            assert status["active_connections"] == 1
            assert status["bytes_upstream"] == status["bytes_downstream"] == len(payload)
            assert status["connections"][0]["bytes_downstream"] == len(payload)
        await wait_for(lambda: proxy.status()["active_connections"] == 0)
        assert echo.received == len(payload)
        assert proxy.status()["total_connections"] == 1


@pytest.mark.anyio
async def test_proxy_forwards_half_close() -> None:
    async with stack() as (_, proxy), await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
        await client.send(b"last words")
        await client.send_eof()
        assert await recv_exactly(client, 10) == b"last words"
        assert isinstance(await expect_closed(client), anyio.EndOfStream)


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("direction", ["both", "downstream", "upstream"])
async def test_proxy_latency_adds_asked_round_trip(direction: str) -> None:
    async with stack() as (_, proxy):
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            baseline = await median_rtt(client)
            proxy.set_fault(latency(200, direction=direction))
            extra = await median_rtt(client) - baseline
        # The criterion: within 10 % of the asked 200 ms, plus a few ms of slack.
        assert abs(extra - 0.200) <= 0.020 + 0.005, f"extra latency {extra * 1000:.1f} ms"


@pytest.mark.slow
@pytest.mark.anyio
async def test_proxy_latency_pipelines_chunks_in_order() -> None:
    async with stack() as (_, proxy):
        proxy.set_fault(latency(200, jitter_ms=100))
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            start = anyio.current_time()
            for i in range(20):
                await client.send(b"%03d" % i)
            data = await recv_exactly(client, 60)
            elapsed = anyio.current_time() - start
        assert data == b"".join(b"%03d" % i for i in range(20))
        # Pipelined, not cumulative: 20 chunks take about one delay, not twenty.
        assert 0.1 <= elapsed < 0.6


@pytest.mark.anyio
async def test_proxy_blackhole_never_answers_and_clear_closes_connections() -> None:
    async with stack() as (echo, proxy):
        live = await anyio.connect_tcp("127.0.0.1", proxy.port)
        async with live:
            assert await round_trip(live) < 1.0
            before = echo.received
            proxy.set_fault(blackhole())
            async with await anyio.connect_tcp("127.0.0.1", proxy.port) as fresh:
                await fresh.send(b"hello?")
                await live.send(b"anyone?")
                with anyio.move_on_after(0.15):
                    got = await fresh.receive()
                    pytest.fail(f"blackholed connection answered {got!r}")
                with anyio.move_on_after(0.05):
                    got = await live.receive()
                    pytest.fail(f"blackholed live connection answered {got!r}")
                assert echo.received == before
                assert echo.connections == 1
                assert proxy.status()["bytes_dropped"] == len(b"hello?anyone?")

                proxy.clear()
                assert isinstance(await expect_closed(fresh), anyio.EndOfStream)
                await expect_closed(live)
        await wait_for(lambda: proxy.status()["active_connections"] == 0)
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as again:
            assert await round_trip(again) < 1.0


@pytest.mark.anyio
@pytest.mark.parametrize("fault", [reset(), refuse()], ids=["reset", "refuse"])
async def test_proxy_reset_and_refuse_send_rst(fault: Fault) -> None:
    async with stack() as (echo, proxy):
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as live:
            await round_trip(live)
            start = time.monotonic()
            proxy.set_fault(fault)
            seen = await expect_closed(live)
            assert isinstance(seen, anyio.BrokenResourceError)
            assert isinstance(seen.__cause__, ConnectionResetError)
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as fresh:
            seen = await expect_closed(fresh)
            assert isinstance(seen, anyio.BrokenResourceError)
            assert isinstance(seen.__cause__, ConnectionResetError)
        assert time.monotonic() - start < 0.5
        assert proxy.status()["refused_connections"] == 1
        assert echo.connections == 1
        proxy.clear()
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as after:
            await round_trip(after)


@pytest.mark.slow
@pytest.mark.anyio
async def test_proxy_bandwidth_paces_transfer() -> None:
    async with stack() as (_, proxy):
        proxy.set_fault(bandwidth(100_000))
        payload = b"x" * 50_000  # 0.5 s at 100 kB/s each way, the two ways pipelined
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            elapsed = await round_trip(client, payload)
        assert 0.4 <= elapsed <= 0.9, f"{elapsed:.3f} s"


@pytest.mark.anyio
async def test_proxy_fault_with_duration_ends_by_itself() -> None:
    async with stack() as (_, proxy):
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            await round_trip(client)
            proxy.set_fault(blackhole(), duration_s=0.1)
            remaining = proxy.status()["fault_remaining_s"]
            assert 0 < remaining <= 0.1
            await wait_for(lambda: proxy.fault is None, timeout_s=1.0)
            await expect_closed(client)
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as again:
            await round_trip(again)


@pytest.mark.anyio
async def test_proxy_replacing_a_fault_cancels_its_timer() -> None:
    async with stack() as (_, proxy):
        proxy.set_fault(blackhole(), duration_s=0.05)
        proxy.set_fault(latency(10))
        await anyio.sleep(0.1)  # past the first fault's deadline: its timer must not fire
        assert proxy.fault == latency(10)


@pytest.mark.anyio
async def test_proxy_resets_client_when_upstream_is_down() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    async with FaultProxy("127.0.0.1", dead_port) as proxy:
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            seen = await expect_closed(client)
        assert isinstance(seen, anyio.BrokenResourceError)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"kind": "nap"}, "unknown fault kind"),
        ({"kind": "latency", "ms": -1}, "negative"),
        ({"kind": "latency", "ms": "2000"}, "must be a number"),
        ({"kind": "latency", "ms": True}, "must be a number"),
        ({"kind": "latency", "direction": "sideways"}, "unknown direction"),
        ({"kind": "bandwidth"}, "bytes_per_s > 0"),
        ({"kind": "blackhole", "extra": 1}, "unknown fault fields"),
        (["latency"], "must be an object"),
    ],
)
def test_fault_from_dict_rejects_bad_input(doc: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault.from_dict(doc)


def test_fault_round_trips_through_dict() -> None:
    for fault in (latency(2000, 50, "upstream"), blackhole(), reset(), bandwidth(1e4)):
        assert Fault.from_dict(fault.to_dict()) == fault


def test_parse_args_keeps_control_on_loopback() -> None:
    args = parse_args(["--upstream", "127.0.0.1:8765", "--listen", "127.0.0.1:0"])
    assert args.upstream == ("127.0.0.1", 8765)
    assert args.control == ("127.0.0.1", 0)
    with pytest.raises(SystemExit) as exc:
        parse_args(["--upstream", "127.0.0.1:1", "--control", "0.0.0.0:9000"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        parse_args(["--upstream", "nowhere"])


@pytest.mark.anyio
async def test_control_server_answers_json_lines() -> None:
    async with stack() as (_, proxy), anyio.create_task_group() as tg:
        server = ProxyControlServer(proxy)
        port = await tg.start(server.serve)
        reply = await acontrol(port, {"op": "set", "fault": latency(300).to_dict()})
        assert reply["ok"] and reply["status"]["fault"]["ms"] == 300
        assert proxy.fault == latency(300)
        reply = await acontrol(port, {"op": "set", "fault": {"kind": "blackhole"}, "duration_s": 5})
        assert 4 < reply["status"]["fault_remaining_s"] <= 5
        assert (await acontrol(port, {"op": "clear"}))["status"]["fault"] is None
        assert (await acontrol(port, {"op": "status"}))["ok"]
        for bad in (
            {"op": "explode"},
            {"op": "set", "fault": {"kind": "nap"}},
            {"op": "set", "fault": {"kind": "blackhole"}, "duration_s": -1},
            {"op": "set", "fault": {"kind": "blackhole"}, "duration_s": "soon"},
        ):
            reply = await acontrol(port, bad)
            assert reply["ok"] is False and reply["error"], bad
        assert proxy.fault is None
        async with await anyio.connect_tcp("127.0.0.1", port) as raw:
            await raw.send(b"not json\n" + b"x" * 70_000 + b"\n")  # one read, over the limit
            replies = (await recv_until_closed(raw)).splitlines()
        assert b"not valid JSON" in replies[0]
        assert b"too long" in replies[1]
        tg.cancel_scope.cancel()


async def recv_until_closed(stream: SocketStream) -> bytes:
    buf = bytearray()
    with anyio.fail_after(2):
        try:
            while True:
                buf += await stream.receive()
        except CLOSED_ERRORS:
            return bytes(buf)


@pytest.mark.slow
@pytest.mark.anyio
async def test_proxy_process_is_driven_through_its_control_port(tmp_path: Path) -> None:
    port_file, control_file = tmp_path / "proxy.port", tmp_path / "control.port"
    async with echo_server() as echo:
        argv = [
            sys.executable,
            "-m",
            "autoheal.chaos.proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            f"127.0.0.1:{echo.port}",
            "--port-file",
            str(port_file),
            "--control-port-file",
            str(control_file),
        ]
        async with await anyio.open_process(argv, stderr=subprocess.PIPE) as process:
            try:
                await wait_for(control_file.exists, timeout_s=10)
                proxy_port = int(port_file.read_text())
                control_port = int(control_file.read_text())
                async with await anyio.connect_tcp("127.0.0.1", proxy_port) as client:
                    baseline = await median_rtt(client, 3)
                reply = await acontrol(control_port, {"op": "set", "fault": latency(200).to_dict()})
                assert reply["ok"], reply
                async with await anyio.connect_tcp("127.0.0.1", proxy_port) as client:
                    extra = await median_rtt(client, 3) - baseline
                    status = await anyio.to_thread.run_sync(
                        lambda: control(control_port, {"op": "status"})
                    )
                    assert status["status"]["active_connections"] == 1
                    await anyio.to_thread.run_sync(lambda: control(control_port, {"op": "clear"}))
                    await expect_closed(client)
                assert abs(extra - 0.200) <= 0.025, f"extra latency {extra * 1000:.1f} ms"
            finally:
                process.terminate()
                with anyio.fail_after(5):
                    await process.wait()
            assert process.returncode == 0
