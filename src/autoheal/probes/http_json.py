"""``http_json`` probe: GET a JSON document, pick one field by JSON pointer, judge it (issue 22).

Its first user is freqtrade's ``GET /api/v1/health`` (``last_process_ts``, behind HTTP
basic auth), but nothing here knows freqtrade: a URL, a pointer, and either a
``max_age`` (the field is a timestamp) or an ``equals``. One check, in order, each
step's failure a reason token:

==========================================  =========================
``auth_env`` not set in our environment     ``auth_env_missing``
no connection / no answer / other error     ``CONN_REFUSED`` / ``CONN_TIMEOUT`` / ``CONN_ERROR``
status not in ``expect_status``             ``http_status_<code>``
body over 1 MiB, or not JSON                ``json_invalid``
the pointer leads nowhere                   ``json_field_missing``
the field's type does not fit the judgement ``json_field_type``
older than ``max_age``                      ``json_stale``
not ``equals``                              ``json_value_mismatch``
==========================================  =========================

The credential is read from the environment at each check, never kept in the probe,
goes into the request's ``Authorization`` header and nowhere else: not into a detail, a repr or a
log line. Redirects are not followed, so the header never travels to another host.
The wiring removes ``auth_env`` from every service's environment
(:func:`autoheal.config.secret_envs`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType

import httpx
import orjson

from autoheal.core.json_pointer import MISSING, parse_pointer, resolve
from autoheal.core.reasons import AUTH_ENV_MISSING, JSON_FIELD_MISSING, JSON_INVALID
from autoheal.probes.authorization import CredentialUnusable, authorization
from autoheal.probes.http import _describe
from autoheal.probes.json_field import Expected, judge_age, judge_equals
from autoheal.probes.result import (
    CONN_ERROR,
    CONN_REFUSED,
    CONN_TIMEOUT,
    ProbeResult,
    http_status_reason,
)

__all__ = ["MAX_BODY_BYTES", "HttpJsonProbe"]

#: The most of a body the probe reads; a larger one is ``json_invalid`` (a health
#: document is a few hundred bytes; a server streaming forever must not hold the probe).
MAX_BODY_BYTES = 1024 * 1024


class HttpJsonProbe:
    """GET ``url`` once per check and judge the field at ``pointer``.

    Args:
        url: the endpoint, e.g. ``http://127.0.0.1:8080/api/v1/health``.
        pointer: an RFC 6901 JSON pointer, e.g. ``/last_process_ts``.
        timeout: httpx connect/read/write/pool timeout in seconds.
        max_age: judge the field as a timestamp no older than this (seconds) ...
        equals: ... or as a value it must equal; exactly one of the two.
        unit: ``"s"`` or ``"ms"``: what a numeric timestamp counts.
        expect_status: the statuses whose body is judged; any other is ``http_status_<code>``.
        auth: ``None``, ``"basic"`` (the variable holds ``user:password``) or ``"bearer"``.
        auth_env: the environment variable holding the credential.
        environ: where ``auth_env`` is read, at each check (the daemon's environment).
        client: a shared client; by default the probe owns one, closed by :meth:`aclose`.
        wall: unix seconds, to age the timestamp.
        clock: monotonic seconds, for ``recheck_at``.

    Raises:
        ValueError: a bad pointer, both or neither of ``max_age`` and ``equals``, an
            unknown ``unit`` or ``auth``, ``auth`` without ``auth_env``, a timeout not > 0.
    """

    def __init__(
        self,
        url: str,
        pointer: str,
        timeout: float,
        *,
        max_age: float | None = None,
        equals: Expected | None = None,
        unit: str = "s",
        expect_status: Collection[int] = (200,),
        auth: str | None = None,
        auth_env: str | None = None,
        environ: Mapping[str, str] = os.environ,
        client: httpx.AsyncClient | None = None,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if (max_age is None) == (equals is None):
            raise ValueError("exactly one of max_age and equals")
        if unit not in ("s", "ms"):
            raise ValueError(f"unit must be 's' or 'ms', got {unit!r}")
        if auth not in (None, "basic", "bearer") or (auth is None) != (auth_env is None):
            raise ValueError("auth is 'basic' or 'bearer', and comes with auth_env")
        self.url = url
        self.pointer = pointer
        self._tokens = parse_pointer(pointer)
        self.timeout = float(timeout)
        self.max_age = max_age
        self.equals = equals
        self.unit = unit
        self.expect_status = frozenset(expect_status)
        self.auth = auth
        self.auth_env = auth_env
        self._environ = environ
        self._owns_client = client is None
        if client is None:
            client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        self._client = client
        self._wall = wall
        self._clock = clock

    def __repr__(self) -> str:
        # Without the query string or user info: either may carry an API key.
        try:
            shown = str(httpx.URL(self.url).copy_with(query=None, userinfo=b""))
        except (httpx.InvalidURL, TypeError):
            shown = "<invalid url>"
        return f"HttpJsonProbe({shown!r}, {self.pointer!r}, auth={self.auth})"

    async def aclose(self) -> None:
        """Close the client if this probe created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> HttpJsonProbe:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def check(self) -> ProbeResult:
        """Send one GET and judge the field; never raises for network trouble."""
        headers: dict[str, str] = {}
        if self.auth is not None and self.auth_env is not None:
            try:
                headers["Authorization"] = authorization(self.auth, self.auth_env, self._environ)
            except CredentialUnusable as exc:
                return self._failed(AUTH_ENV_MISSING, str(exc))
        try:
            async with self._client.stream(
                "GET", self.url, headers=headers, timeout=self.timeout
            ) as response:
                status = response.status_code
                body = bytearray()
                too_large = False
                if status in self.expect_status:
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_BODY_BYTES:
                            too_large = True
                            break
        except httpx.TimeoutException as exc:
            return self.timed_out(self.timeout, detail=_describe(exc))
        except httpx.ConnectError as exc:
            return self._failed(CONN_REFUSED, _describe(exc))
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            return self._failed(CONN_ERROR, _describe(exc))
        if status not in self.expect_status:
            return self._failed(http_status_reason(status), f"status {status}")
        if too_large:
            return self._failed(JSON_INVALID, f"body over {MAX_BODY_BYTES} bytes")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return self._failed(JSON_INVALID, f"body is not JSON: {str(exc)[:120]}")
        return self.judge(doc)

    def judge(self, doc: object) -> ProbeResult:
        """Judge a decoded body: the field at the pointer, by ``max_age`` or ``equals``."""
        value = resolve(doc, self._tokens)
        if value is MISSING:
            return self._failed(JSON_FIELD_MISSING, f"no field at {self.pointer!r}")
        if self.max_age is not None:
            return judge_age(
                value,
                where=self.pointer,
                max_age=self.max_age,
                unit=self.unit,
                now_wall=self._wall(),
                now_mono=self._clock(),
            )
        if self.equals is None:  # unreachable: the constructor demands one of the two
            raise ValueError("exactly one of max_age and equals")
        return judge_equals(value, self.equals, where=self.pointer)

    def timed_out(self, after: float, detail: str = "") -> ProbeResult:
        """``CONN_TIMEOUT``, also when the runner's own timeout abandons a check."""
        return self._failed(CONN_TIMEOUT, detail or f"no answer within {after:.3f} s")

    def _failed(self, reason: str, detail: str) -> ProbeResult:
        return ProbeResult(False, reason, None, self.max_age, detail=detail)

