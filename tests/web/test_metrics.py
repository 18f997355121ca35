"""``/metrics`` and ``/status`` over a real loopback socket, parsed with prometheus-client."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoheal.store.atomic import write_json_atomic
from autoheal.web.metrics import Metrics, file_health_fn, serve_status

pytestmark = pytest.mark.anyio

STAGES = ("OBSERVE", "RESTART", "BACKOFF", "FAILSAFE", "NOTIFY")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def health_doc() -> dict[str, Any]:
    return {
        "schema": 2, "ts": 1795000000.12, "dor": False, "stage": "BACKOFF",
        "failsafe": False, "degraded": True, "mode": "DEGRADED",
        "failing_components": ["exchange_rest", "feeder"],
        "daemon": {"pid": 4242, "loop_lag_s": 0.0004},
        "components": {
            "feeder": {
                "ok": False, "stage": "BACKOFF", "reason": "heartbeat_stale", "pid": 5151,
                "restarts": 2,
                "probes": {
                    "process": {"ok": True, "reason": "", "value": None, "threshold": None},
                    "heartbeat": {"ok": False, "reason": "heartbeat_stale", "value": 16.5,
                                  "threshold": 15.0},
                },
            },
            "trader": {"ok": True, "stage": "OBSERVE", "reason": "", "pid": 6161, "restarts": 0,
                       "probes": {"process": {"ok": True, "reason": "", "value": None}}},
        },
        "dependencies": {
            "exchange_rest": {
                "ok": False, "reason": "CONN_REFUSED",
                "probes": {"http": {"ok": False, "reason": "CONN_REFUSED", "value": 0.003}},
            }
        },
    }  # fmt: skip


class Holder:
    """What the daemon does: keep the latest document and hand it out."""

    def __init__(self, doc: dict[str, Any] | None) -> None:
        self.doc = doc

    def __call__(self) -> dict[str, Any] | None:
        return self.doc


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Holder, Metrics]]:
    holder = Holder(health_doc())
    metrics = Metrics(holder)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_status, "127.0.0.1", 0, metrics, holder)
        yield f"http://127.0.0.1:{port}", holder, metrics
        tg.cancel_scope.cancel()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed: dict, name: str, **labels: str) -> float:
    return parsed[(name, frozenset(labels.items()))]


async def test_metrics_values_match_the_health_doc(server: tuple[str, Holder, Metrics]) -> None:
    url, holder, _ = server
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{url}/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    parsed = samples(resp.text)
    doc = holder.doc
    assert doc is not None
    assert value(parsed, "autoheal_dor") == float(doc["dor"])
    assert value(parsed, "autoheal_failsafe_active") == 0.0
    assert value(parsed, "autoheal_degraded") == 1.0
    assert value(parsed, "autoheal_loop_lag_seconds") == pytest.approx(0.0004)
    for name, comp in doc["components"].items():
        for stage in STAGES:
            expected = 1.0 if stage == comp["stage"] else 0.0
            assert (
                value(parsed, "autoheal_component_stage", component=name, stage=stage) == expected
            )
        got = value(parsed, "autoheal_component_restarts_total", component=name)
        assert got == comp["restarts"]
        assert value(parsed, "autoheal_component_up", component=name) == float(comp["ok"])
    assert value(parsed, "autoheal_probe_ok", target="feeder", probe="heartbeat") == 0.0
    assert value(parsed, "autoheal_probe_value", target="feeder", probe="heartbeat") == 16.5
    assert value(parsed, "autoheal_probe_ok", target="exchange_rest", probe="http") == 0.0
    assert value(parsed, "autoheal_dependency_up", dependency="exchange_rest") == 0.0
    # A null probe value is left out rather than invented.
    assert (
        "autoheal_probe_value",
        frozenset({("target", "feeder"), ("probe", "process")}),
    ) not in parsed


async def test_metrics_follow_the_latest_doc(server: tuple[str, Holder, Metrics]) -> None:
    url, holder, _ = server
    doc = copy.deepcopy(health_doc())
    doc.update(dor=False, failsafe=True, stage="FAILSAFE")
    doc["components"]["feeder"].update(stage="FAILSAFE", restarts=3)
    holder.doc = doc
    async with httpx.AsyncClient() as client:
        parsed = samples((await client.get(f"{url}/metrics")).text)
    assert value(parsed, "autoheal_failsafe_active") == 1.0
    assert value(parsed, "autoheal_component_stage", component="feeder", stage="FAILSAFE") == 1.0
    assert value(parsed, "autoheal_component_stage", component="feeder", stage="BACKOFF") == 0.0
    assert value(parsed, "autoheal_component_restarts_total", component="feeder") == 3.0


async def test_metrics_live_probe_instruments(server: tuple[str, Holder, Metrics]) -> None:
    url, _, metrics = server
    metrics.observe_probe("feeder", "heartbeat", True, "", 0.002)
    metrics.observe_probe("feeder", "heartbeat", False, "heartbeat_stale", 0.004)
    metrics.observe_probe("exchange_rest", "http", False, "CONN_TIMEOUT", None)
    async with httpx.AsyncClient() as client:
        parsed = samples((await client.get(f"{url}/metrics")).text)
    assert (
        value(parsed, "autoheal_probe_latency_seconds_count", target="feeder", probe="heartbeat")
        == 2
    )
    assert value(
        parsed, "autoheal_probe_latency_seconds_sum", target="feeder", probe="heartbeat"
    ) == pytest.approx(0.006)
    labels = {"target": "feeder", "probe": "heartbeat", "reason": "heartbeat_stale"}
    assert value(parsed, "autoheal_probe_failures_total", **labels) == 1.0
    labels = {"target": "exchange_rest", "probe": "http", "reason": "CONN_TIMEOUT"}
    assert value(parsed, "autoheal_probe_failures_total", **labels) == 1.0


async def test_status_endpoint_returns_the_doc(server: tuple[str, Holder, Metrics]) -> None:
    url, holder, _ = server
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{url}/status")
        missing = await client.get(f"{url}/nope")
        post = await client.post(f"{url}/status", content=b"{}")
        holder.doc = None
        none_yet = await client.get(f"{url}/status?pretty=1")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert orjson.loads(resp.content) == health_doc()
    assert missing.status_code == 404
    assert post.status_code == 405
    assert none_yet.status_code == 503


async def send_raw(url: str, data: bytes, *, eof: bool = False) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(data)
        if eof:
            await stream.send_eof()
        chunks = []
        with anyio.fail_after(5):
            while True:
                try:
                    chunks.append(await stream.receive())
                except anyio.EndOfStream:
                    break
    return b"".join(chunks)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x01\x02 garbage\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno-colon-header\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    ],
    ids=["binary", "bad_header", "oversized"],
)
async def test_garbage_request_gets_400_and_server_keeps_serving(
    server: tuple[str, Holder, Metrics], garbage: bytes
) -> None:
    url, _, _ = server
    reply = await send_raw(url, garbage)
    assert reply.startswith(b"HTTP/1.1 400 ")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/metrics")).status_code == 200


async def test_peer_closing_early_does_not_hurt(server: tuple[str, Holder, Metrics]) -> None:
    url, _, _ = server
    assert await send_raw(url, b"", eof=True) == b""  # connect, send nothing, hang up
    assert (await send_raw(url, b"GET /met", eof=True)).startswith(b"HTTP/1.1 400 ")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/status")).status_code == 200


async def test_silent_client_is_cut_after_the_deadline() -> None:
    holder = Holder(health_doc())
    metrics = Metrics(holder)
    async with anyio.create_task_group() as tg:
        port = await tg.start(lambda task_status: serve_status(
            "127.0.0.1", 0, metrics, holder, timeout_s=0.05, task_status=task_status
        ))  # fmt: skip
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            with anyio.fail_after(5):
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
        tg.cancel_scope.cancel()


def test_registries_are_independent() -> None:
    a = Metrics(Holder(health_doc()))
    b = Metrics(Holder(None))
    a.observe_probe("feeder", "process", False, "process_exited", 0.001)
    assert b"autoheal_dor" in a.render()
    assert b"autoheal_dor" not in b.render()
    assert b"process_exited" not in b.render()


def test_file_health_fn_reads_the_file(tmp_path: Path) -> None:
    fn = file_health_fn(tmp_path)
    assert fn() is None
    write_json_atomic(tmp_path / "health_v2.json", health_doc(), durable=False)
    assert fn() == health_doc()
    (tmp_path / "health_v2.json").write_bytes(b"{torn")
    assert fn() is None


async def test_a_failing_health_fn_costs_one_500_not_the_server() -> None:
    calls = {"n": 0}

    def flaky() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return health_doc()

    metrics = Metrics(flaky)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_status, "127.0.0.1", 0, metrics, flaky)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/metrics")).status_code == 500
            assert (await client.get(f"http://127.0.0.1:{port}/metrics")).status_code == 200
        tg.cancel_scope.cancel()


async def test_a_failing_kill_switch_write_is_a_metric(server: tuple[str, Holder, Metrics]) -> None:
    url, holder, _ = server
    doc = copy.deepcopy(health_doc())
    doc["kill_switch"] = {"write_failures": {"stop_file": {"errno": "EROFS", "attempts": 4}}}
    holder.doc = doc
    async with httpx.AsyncClient() as client:
        parsed = samples((await client.get(f"{url}/metrics")).text)
    assert value(parsed, "autoheal_kill_switch_write_failing", file="stop_file", errno="EROFS") == 1
    assert value(parsed, "autoheal_kill_switch_write_failing", file="flags", errno="none") == 0
