"""HTTP dependency probe: one GET per check, status, and latency p95 over a sliding window.

httpx's exceptions are mapped to reason tokens here, at the boundary (as httpx
itself maps httpcore's), so nothing network-shaped leaks past the probe:

==============================  ==================
httpx.TimeoutException          ``CONN_TIMEOUT``
httpx.ConnectError              ``CONN_REFUSED``
any other transport / OS error  ``CONN_ERROR``
status not in ``expect_status``  ``http_status_<code>``
p95 over ``latency_p95``        ``latency_p95_high``
==============================  ==================

Latency is the time to the response head. A timed-out request counts its
timeout as a sample, so a dependency that times out now and then drags the
p95 up instead of vanishing from it. Only a bounded part of the body is read
(a health endpoint that streams forever must not hold the probe).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection
from types import TracebackType

import httpx

from autoheal.core.stats import p95
from autoheal.probes.result import (
    CONN_ERROR,
    CONN_REFUSED,
    CONN_TIMEOUT,
    LATENCY_P95_HIGH,
    ProbeResult,
    http_status_reason,
)

__all__ = ["HttpProbe"]

_MAX_BODY_BYTES = 64 * 1024


class HttpProbe:
    """GET ``url`` once per check and judge status and latency p95.

    Args:
        url: the endpoint, e.g. the exchange's ping.
        timeout: httpx connect/read/write/pool timeout in seconds.
        expect_status: the statuses that count as healthy.
        latency_p95: fail with ``latency_p95_high`` when the window's p95 exceeds it.
        window: how many recent latencies the p95 is taken over.
        client: a shared client (proxies, TLS settings); by default the probe owns one,
            closed by :meth:`aclose`.
        clock: monotonic time, to measure latency.
    """

    def __init__(
        self,
        url: str,
        timeout: float,
        *,
        expect_status: Collection[int] = (200,),
        latency_p95: float | None = None,
        window: int = 20,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window!r}")
        self.url = url
        self.timeout = float(timeout)
        self.expect_status = frozenset(expect_status)
        self.latency_p95 = latency_p95
        self._latencies: deque[float] = deque(maxlen=window)
        self._owns_client = client is None
        if client is None:
            client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        self._client = client
        self._clock = clock

    def __repr__(self) -> str:
        # Without the query string or user info: either may carry an API key.
        try:
            shown = str(httpx.URL(self.url).copy_with(query=None, userinfo=b""))
        except (httpx.InvalidURL, TypeError):
            shown = "<invalid url>"
        return f"HttpProbe({shown!r}, timeout={self.timeout}, latency_p95={self.latency_p95})"

    @property
    def latencies(self) -> tuple[float, ...]:
        """The latency window, oldest first, in seconds."""
        return tuple(self._latencies)

    async def aclose(self) -> None:
        """Close the client if this probe created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> HttpProbe:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def check(self) -> ProbeResult:
        """Send one GET and judge it; never raises for network trouble."""
        started = self._clock()
        try:
            async with self._client.stream("GET", self.url, timeout=self.timeout) as response:
                latency = self._clock() - started
                status = response.status_code
                received = 0
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    if received > _MAX_BODY_BYTES:
                        break
        except httpx.TimeoutException as exc:
            return self.timed_out(self.timeout, detail=_describe(exc))
        except httpx.ConnectError as exc:
            return self._failed(CONN_REFUSED, _describe(exc))
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            return self._failed(CONN_ERROR, _describe(exc))
        self._latencies.append(latency)
        value = p95(self._latencies)
        if status not in self.expect_status:
            return self._failed(http_status_reason(status), f"status {status}")
        if self.latency_p95 is not None and value > self.latency_p95:
            detail = f"p95 {value:.3f} s > {self.latency_p95} s over {len(self._latencies)}"
            return ProbeResult(False, LATENCY_P95_HIGH, value, self.latency_p95, detail=detail)
        return ProbeResult(True, "", value, self.latency_p95, detail=f"{latency:.4f} s")

    def timed_out(self, after: float, detail: str = "") -> ProbeResult:
        """Record ``after`` seconds as a latency sample and report ``CONN_TIMEOUT``.

        Also called by the runner when its own timeout abandons a check.
        """
        self._latencies.append(after)
        return self._failed(CONN_TIMEOUT, detail or f"no answer within {after:.3f} s")

    def _failed(self, reason: str, detail: str) -> ProbeResult:
        value = p95(self._latencies) if self._latencies else None
        return ProbeResult(False, reason, value, self.latency_p95, detail=detail)


def _describe(exc: BaseException) -> str:
    """Name the error in one short line (type and first line of the message)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
