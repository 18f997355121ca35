"""The exchange's REST API, simulated: an httpx transport with seeded latency and faults.

The daemon's HTTP probe (:class:`autoheal.probes.http.HttpProbe`, built by
``daemon.wiring.make_probe``) takes an ``httpx.AsyncClient``; :func:`network_patches`
makes every probe of the run use one whose transport is :class:`SimExchange`. No
socket is opened: the transport answers on the virtual clock (``anyio.sleep`` of a
drawn latency), or fails as httpx's own transport does:

======================  ===================================================
``ok``                  200 after 1-80 ms
``slow``                200 after 0.2-0.95 s (the p95 goes over the limit)
``status``              503 after a few ms
``refused``             ``httpx.ConnectError`` (connection refused)
``timeout``             ``httpx.ReadTimeout`` just before the request's timeout
``blackhole``           no answer at all: the probe runner's own timeout abandons it
======================  ===================================================

The mode is switched by the ``http_fault`` act (a fault window); latencies come from a
generator seeded from the run's one :class:`random.Random`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx

__all__ = ["EXCHANGE_URL", "HTTP_MODES", "SimExchange", "exchange_config", "network_patches"]

EXCHANGE_URL = "http://exchange.sim/ping"
HTTP_MODES = ("ok", "slow", "status", "refused", "timeout", "blackhole")


def exchange_config() -> str:
    """The ``[dependencies.exchange]`` table: one HTTP probe with a latency p95."""
    return (
        "\n[dependencies.exchange]\n"
        "\n[[dependencies.exchange.probes]]\n"
        'kind = "http"\n'
        f'url = "{EXCHANGE_URL}"\n'
        'interval = "5s"\n'
        'timeout = "1s"\n'
        'latency_p95 = "500ms"\n'
        "window = 5\n"
    )


class SimExchange(httpx.AsyncBaseTransport):
    """The exchange's answers to the probe, one mode at a time."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.mode = "ok"
        self.seen: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        mode, rng = self.mode, self._rng
        self.seen[mode] += 1
        timeout = (request.extensions.get("timeout") or {}).get("read") or 5.0
        if mode == "refused":
            await anyio.sleep(rng.uniform(0.0005, 0.005))
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if mode == "timeout":
            await anyio.sleep(timeout * 0.99)  # httpx's own read timeout, before the runner's
            raise httpx.ReadTimeout("timed out", request=request)
        if mode == "blackhole":
            await anyio.sleep_forever()
        if mode == "slow":
            await anyio.sleep(rng.uniform(0.2, 0.95))
            return _response(200, b'{"slow": true}', request)
        await anyio.sleep(rng.uniform(0.001, 0.08) if mode == "ok" else rng.uniform(0.001, 0.01))
        status = 200 if mode == "ok" else 503
        return _response(status, b"{}", request)


def _response(status: int, body: bytes, request: httpx.Request) -> httpx.Response:
    """A response whose body is still to be read (as from a socket: the probe streams it)."""
    return httpx.Response(status, stream=httpx.ByteStream(body), request=request)


@contextmanager
def network_patches(exchange: SimExchange) -> Iterator[None]:
    """For the run: every HTTP probe's client sends through ``exchange``."""
    from autoheal import probes
    from autoheal.probes.http import HttpProbe

    class SimHttpProbe(HttpProbe):
        def __init__(self, url: str, timeout: float, **kw: Any) -> None:
            client = httpx.AsyncClient(
                transport=exchange, timeout=timeout, follow_redirects=False, trust_env=False
            )
            super().__init__(url, timeout, client=client, **kw)
            self._owns_client = True  # closed with the probe, as its own client would be

    saved = probes.HttpProbe
    probes.HttpProbe = SimHttpProbe  # type: ignore[misc]
    try:
        yield
    finally:
        probes.HttpProbe = saved  # type: ignore[misc]
