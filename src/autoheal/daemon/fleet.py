"""The fleet agent: this host's summary to Redis, the fleet switch from it.

The shell around :mod:`autoheal.core.fleet`: it reads the switch key on connect and
every ``poll_interval`` (a pub/sub message only wakes it sooner), publishes this
host's summary under a per-host key with a TTL every heartbeat, maps every Redis
failure to a problem token and hands each outcome to the core's judge. What a read
or its absence *means* is decided there and in ``step``; nothing here decides it.

Every Redis call has a socket timeout and a deadline around it, so a hung server
(SIGSTOPped, partitioned) is detected like a refused connection. No Redis exception
ever leaves a task of this module: the daemon's task group must not die of Redis.
The agent talks to the daemon through narrow ports (observe, execute an alert,
the state and health getters, journal_event). Redis is imported here only, lazily:
a daemon without ``[fleet]`` never loads it. A URL is logged only redacted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio

from autoheal import __version__
from autoheal.config import FleetConfig
from autoheal.core import fleet as core_fleet
from autoheal.core.actions import ClearAlert, RaiseAlert
from autoheal.core.fleet import FleetLink, SwitchRecord, Unreadable
from autoheal.core.observations import FleetSwitchRead, Observation
from autoheal.core.state import RuntimeState
from autoheal.daemon.clock import Clock
from autoheal.daemon.fleet_scoped import canonical_scope

log = logging.getLogger("autoheal")

#: Problem tokens for I/O failures (``core.fleet`` has those of bad records).
UNREACHABLE = "fleet_unreachable"
TIMEOUT = "fleet_timeout"
AUTH_FAILED = "fleet_auth_failed"
TLS_FAILED = "fleet_tls_failed"
SECRET_MISSING = "fleet_secret_missing"  # noqa: S105 - a token, not a secret
ERROR = "fleet_error"


class SecretMissingError(Exception):
    """``secret_env`` names a variable that is not set."""


def redact(url: str) -> str:
    """The URL without its credentials, for logs and messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = "***@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, user + host, parts.path, "", ""))


def real_url(config: FleetConfig, env: Mapping[str, str]) -> str:
    """The URL with ``{secret}`` filled in from ``secret_env``; never log the result."""
    url = config.redis_url
    if config.secret_env is not None and "{secret}" in url:
        secret = env.get(config.secret_env)
        if not secret:
            raise SecretMissingError(f"environment variable {config.secret_env} is not set")
        from urllib.parse import quote

        url = url.replace("{secret}", quote(secret, safe=""))
    return url


def io_timeout(config: FleetConfig) -> float:
    """Per-call socket timeout: short enough that a hung Redis is lost on time."""
    return min(1.0, max(0.05, config.stale_after / 4))


def redis_errors() -> tuple[type[Exception], ...]:
    """What a Redis call raises when Redis cannot be used (down, refused, timed out,
    wrong password, TLS, a missing secret, an error reply); anything else is a bug.

    Malformed *data* never raises: :mod:`autoheal.core.fleet` judges every record.
    """
    import redis.exceptions as rx

    return (rx.RedisError, OSError, SecretMissingError)


def problem_of(exc: BaseException) -> str:
    """Map a Redis (or socket) exception to a problem token."""
    import redis.exceptions as rx

    text = str(exc).lower()
    if isinstance(exc, SecretMissingError):
        return SECRET_MISSING
    if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError) or (
        isinstance(exc, rx.ResponseError) and ("noauth" in text or "wrongpass" in text)
    ):
        return AUTH_FAILED
    if isinstance(exc, ssl.SSLError) or "ssl" in text or "certificate" in text:
        return TLS_FAILED
    if isinstance(exc, rx.TimeoutError | TimeoutError):
        return TIMEOUT
    if isinstance(exc, rx.ConnectionError | OSError):
        return UNREACHABLE
    return ERROR


def _kwargs(config: FleetConfig, url: str) -> dict[str, Any]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    t = io_timeout(config)
    return {
        "socket_timeout": t,
        "socket_connect_timeout": t,
        "retry_on_timeout": False,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }


def _sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, int, str | None, bool]:
    """``redis+sentinel://[:pw@]h1:26379,h2:26379/service[/db]`` → its parts."""
    parts = urlsplit(url)
    creds, _, hosts = parts.netloc.rpartition("@")
    password = unquote(creds.partition(":")[2]) if creds else None
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        sentinels.append((host.strip("[]") or item, int(port) if port.isdigit() else 26379))
    path = [p for p in parts.path.split("/") if p]
    service = path[0] if path else "mymaster"
    db = int(path[1]) if len(path) > 1 and path[1].isdigit() else 0
    return sentinels, service, db, password or None, parts.scheme.startswith("rediss")


def async_client(config: FleetConfig, env: Mapping[str, str]) -> Any:
    """A ``redis.asyncio`` client for the fleet's URL (Sentinel URLs through Sentinel)."""
    import redis.asyncio as aioredis

    url = real_url(config, env)
    kwargs = _kwargs(config, url)
    if "+sentinel" in urlsplit(url).scheme:
        from redis.asyncio import sentinel as sentinel_mod

        sentinels, service, db, password, tls = _sentinel_parts(url)
        t = io_timeout(config)
        # Through Any: redis-py before 8.2 ships no annotations here and 8.2 does; one
        # line has to type-check against both (the lock and whatever a user installed).
        sentinel_cls: Any = sentinel_mod.Sentinel
        sentinel = sentinel_cls(
            sentinels,
            sentinel_kwargs={"socket_timeout": t, "socket_connect_timeout": t, "ssl": tls},
            **kwargs,
        )
        amaster = sentinel.master_for
        return amaster(service, db=db, password=password, ssl=tls)
    from_url: Any = aioredis.from_url  # see above
    return from_url(url, **kwargs)


def sync_client(config: FleetConfig, env: Mapping[str, str]) -> Any:
    """The same, blocking (for the CLI)."""
    import redis

    url = real_url(config, env)
    kwargs = _kwargs(config, url)
    kwargs["socket_timeout"] = kwargs["socket_connect_timeout"] = 3.0
    if "+sentinel" in urlsplit(url).scheme:
        from redis import sentinel as sentinel_mod

        sentinels, service, db, password, tls = _sentinel_parts(url)
        sentinel_cls: Any = sentinel_mod.Sentinel  # see async_client
        sentinel = sentinel_cls(
            sentinels, sentinel_kwargs={"socket_timeout": 3.0, "ssl": tls}, **kwargs
        )
        master = sentinel.master_for
        return master(service, db=db, password=password, ssl=tls)
    return redis.Redis.from_url(url, **kwargs)


class FleetAgent:
    """Publishes this host, reads the switch, reports every outcome to the core.

    Args:
        config: ``[fleet]``.
        observe: sends an observation to the daemon's consumer (which steps the core).
        execute: carries out an alert action from the judge.
        state: the core's current state (the applied switch version, the failsafe).
        health: the current health document (the summary is made from it).
        journal_event: records a link problem in the journal.
        beat: seconds between summaries (the daemon's heartbeat interval).
        clock: the daemon's clock (every wait and deadline, the summary's ``ts``).
        scoped: applies the record's scoped halts after each valid read
            (:class:`autoheal.daemon.fleet_scoped.FleetScopedApplier`); None: not applied.
    """

    def __init__(
        self,
        config: FleetConfig,
        *,
        observe: Callable[[Observation], Awaitable[None]],
        execute: Callable[[RaiseAlert | ClearAlert], None],
        state: Callable[[], RuntimeState],
        health: Callable[[], dict[str, Any]],
        journal_event: Callable[..., None],
        beat: float,
        clock: Clock,
        env: Mapping[str, str] | None = None,
        scoped: Callable[[SwitchRecord], object] | None = None,
    ) -> None:
        self.config = config
        self._observe = observe
        self._execute = execute
        self._state = state
        self._health = health
        self._journal_event = journal_event
        self._beat = beat
        self._clock = clock
        self._env = os.environ if env is None else env
        self._secret = ""
        self.link = FleetLink(clock.now(), booting=True)
        self._poke = anyio.Event()
        self._logged_problem = ""
        self._client: Any = None
        self._scoped = scoped

    # ------------------------------------------------------------------ main

    async def run(self) -> None:
        log.info(
            "fleet_agent fleet=%s host=%s redis=%s stale_after=%gs on_lost=%s poll=%gs",
            self.config.name,
            self.config.host,
            redact(self.config.redis_url),
            self.config.stale_after,
            self.config.on_lost,
            self.config.poll_interval,
        )
        if self.config.secret_env:
            self._secret = self._env.get(self.config.secret_env, "")
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._guarded, self._poll_loop)
            tg.start_soon(self._guarded, self._publish_loop)
            tg.start_soon(self._guarded, self._listen_loop)

    async def _guarded(self, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a loop forever: a bug or a Redis surprise is logged, never fatal."""
        last = ""
        while True:
            try:
                await loop()
            except Exception as exc:
                # Redis failures are the poll loop's to report; log a new kind once.
                name = type(exc).__name__
                if name != last:
                    log.warning("fleet_task_retry task=%s error=%s", loop.__name__, name)
                last = name
            await self._clock.sleep(self.config.poll_interval)

    def client(self) -> Any:
        if self._client is None:
            self._client = async_client(self.config, self._env)
        return self._client

    def _clean(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    # ------------------------------------------------------------------ the switch

    async def read_switch(self, timeout: float) -> SwitchRecord | Unreadable:
        """One read of the switch key, bounded by ``timeout``; every failure a token."""
        try:
            with self._clock.fail_after(timeout):
                raw = await self.client().get(core_fleet.switch_key(self.config.name))
        except Exception as exc:
            problem = problem_of(exc)
            self._report(problem, self._clean(f"{type(exc).__name__}: {exc}")[:300])
            await self._reset_client()
            return Unreadable(problem)
        self._report("", "")
        return core_fleet.parse_switch(raw, canonical_scope)

    def _report(self, problem: str, detail: str) -> None:
        """One clear line (and journal event) when the link's problem changes."""
        if problem == self._logged_problem:
            return
        if problem:
            log.error(
                "fleet_link_failed problem=%s redis=%s detail=%s",
                problem,
                redact(self.config.redis_url),
                detail,
            )
        else:
            log.info("fleet_link_ok redis=%s", redact(self.config.redis_url))
        self._journal_event(
            "fleet_link", reason=problem or "fleet_link_ok", data={"detail": detail}
        )
        self._logged_problem = problem

    async def _reset_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with self._clock.move_on_at(self._clock.now() + 0.2, shield=True):
                try:
                    await client.aclose()
                except Exception:
                    pass

    async def _poll_loop(self) -> None:
        cfg = self.config
        next_poll = self._clock.now()
        while True:
            now = self._clock.now()
            valid: SwitchRecord | None = None
            if now >= next_poll:
                deadline = core_fleet.lost_at(self.link, cfg.stale_after)
                timeout = io_timeout(cfg)
                if deadline is not None:
                    # A hung read must not hide the moment the link is lost.
                    timeout = min(timeout, max(0.05, deadline - now))
                outcome = await self.read_switch(timeout)
                judgement = core_fleet.judge_read(
                    self.link,
                    outcome,
                    self._clock.now(),
                    applied_version=self._state().fleet.version,
                    stale_after=cfg.stale_after,
                    on_lost=cfg.on_lost,
                )
                next_poll = max(next_poll + cfg.poll_interval, self._clock.now())
                if isinstance(outcome, SwitchRecord) and any(
                    isinstance(obs, FleetSwitchRead) for obs in judgement.observations
                ):
                    valid = outcome
            else:
                judgement = core_fleet.judge_time(
                    self.link, now, stale_after=cfg.stale_after, on_lost=cfg.on_lost
                )
            self.link = judgement.link
            for action in judgement.actions:
                self._execute(action)
            for obs in judgement.observations:
                await self._observe(obs)
            if valid is not None and self._scoped is not None:
                # Only a valid read changes a scoped halt: a lost fleet clears none.
                self._scoped(valid)
            wake = next_poll
            lost_at = core_fleet.lost_at(self.link, cfg.stale_after)
            if lost_at is not None:
                wake = min(wake, lost_at)
            with self._clock.move_on_at(wake):
                await self._poke.wait()
            if self._poke.is_set():
                self._poke = anyio.Event()
                next_poll = self._clock.now()

    async def _listen_loop(self) -> None:
        """Pub/sub: a new switch version wakes the poll at once. Polling still decides."""
        pubsub = self.client().pubsub()
        try:
            with self._clock.fail_after(io_timeout(self.config) * 2):
                await pubsub.subscribe(core_fleet.channel(self.config.name))
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    self._poke.set()
        finally:
            with self._clock.move_on_at(self._clock.now() + 0.2, shield=True):
                try:
                    await pubsub.aclose()
                except Exception:
                    pass

    # ------------------------------------------------------------------ the summary

    def summary(self) -> dict[str, Any]:
        """This host's summary: what ``autoheal fleet status`` shows for it."""
        health = self._health()
        state = self._state()
        failsafe = state.failsafe
        return {
            "host": self.config.host,
            "fleet": self.config.name,
            "ts": self._clock.wall(),
            "autoheal_version": __version__,
            "pid": os.getpid(),
            "dor": bool(health.get("dor")),
            "mode": health.get("mode"),
            "failsafe": failsafe is not None,
            "failsafe_set_by": failsafe.set_by if failsafe else "",
            "failsafe_reason": failsafe.reason if failsafe else "",
            "failing_components": health.get("failing_components", []),
            "components": {
                name: {"stage": c.get("stage"), "reason": c.get("reason", "")}
                for name, c in health.get("components", {}).items()
            },
            "fleet_version": state.fleet.version,
            "fleet_lost": state.fleet.lost,
            # The scopes halted here (an operator's or the fleet's): did every host apply it?
            "scoped_halts": sorted(health.get("scoped_halts") or {}),
        }

    async def _publish_loop(self) -> None:
        ttl_ms = math.ceil(1000 * max(3 * self._beat, self.config.stale_after))
        key = core_fleet.host_key(self.config.name, self.config.host)
        members = core_fleet.hosts_key(self.config.name)
        while True:
            doc = json.dumps(self.summary(), sort_keys=True, default=str)
            try:
                with self._clock.fail_after(io_timeout(self.config)):
                    await self.client().set(key, doc, px=ttl_ms)
                    await self.client().sadd(members, self.config.host)
            except Exception:
                pass
            await self._clock.sleep(self._beat)
