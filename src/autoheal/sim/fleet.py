"""The fleet's Redis, in memory: a stand-in with partitions, an empty restart and latency.

The daemon's fleet agent (:mod:`autoheal.daemon.fleet`) makes its one client in
``async_client``; :func:`fleet_patches` swaps that function for the run, so the real
agent talks to :class:`SimRedis`. It implements exactly the commands the agent uses
(``get``, ``set(px=)``, ``sadd``, ``pubsub()`` with ``subscribe``/``get_message``,
``aclose``) with redis.asyncio's names and return types (bytes, ``True``, counts),
and fails as redis-py does: ``redis.exceptions.ConnectionError`` on a refused
connection or a connection a restart closed, ``redis.exceptions.TimeoutError`` after
the socket timeout on a hung one.

The operator's ``autoheal fleet halt|run`` is the CLI's own
:func:`autoheal.cli.fleet.set_command` (compare-and-set, version floor from the host
summaries, the local journal line), against :class:`SimRedisSync`, the blocking
client's commands it uses (``get``, ``smembers``, ``scan_iter``, ``mget``, ``eval``
of the CAS script). The operator's CLI reaches Redis from elsewhere: a partition cuts
this host off, not the operator (so a HALT can be set during one); an empty restart
loses every key for everyone.

Every wait is on the virtual clock (``anyio.sleep``), every latency is drawn from a
generator seeded from the run's one :class:`random.Random`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import random
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import anyio.lowlevel
import redis.exceptions as rx

__all__ = [
    "FLEET_HOST",
    "FLEET_NAME",
    "PARTITIONS",
    "RedisStandIn",
    "SimPubSub",
    "SimRedis",
    "SimRedisSync",
    "fleet_config",
    "fleet_patches",
    "fleet_set",
]

FLEET_NAME = "simfleet"
FLEET_HOST = "sim-host"
#: How a partition shows: every call refused at once, or hung until the socket timeout.
PARTITIONS = ("refuse", "hang")


#: The fleet agent's poll in the simulated config (seconds).
FLEET_POLL_S = 2.0
#: The fleet's ``stale_after``: a host whose reads fail is lost this long after its last
#: good read (then ``on_lost`` applies).
FLEET_STALE_S = 10.0
#: The agent's per-call timeout for that ``stale_after`` (``daemon.fleet.io_timeout``).
FLEET_IO_TIMEOUT_S = min(1.0, max(0.05, FLEET_STALE_S / 4))


def fleet_config(on_lost: str) -> str:
    """The ``[fleet]`` table of a seed with a fleet (a fixed host name: never the OS's)."""
    return (
        "\n[fleet]\n"
        'redis_url = "redis://redis.sim:6379/0"\n'
        f'name = "{FLEET_NAME}"\n'
        f'host = "{FLEET_HOST}"\n'
        f'stale_after = "{FLEET_STALE_S:g}s"\n'
        f'on_lost = "{on_lost}"\n'
        f'poll_interval = "{FLEET_POLL_S:g}s"\n'
    )


def _b(value: bytes | str | int | float) -> bytes:
    """A key or value as redis-py sends it (str as UTF-8, numbers as their text)."""
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class RedisStandIn:
    """The server: keys, sets, TTLs, channels, and the faults.

    Attributes:
        partition: None, or how this host is cut off (:data:`PARTITIONS`).
        latency_max: each call of this host's clients takes up to this long (virtual s).
        epoch: bumped by an empty restart; a connection from an older epoch is closed.
        seen: what the calls met (coverage): ``ok``, ``refused``, ``timeout``, ``closed``.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.strings: dict[bytes, bytes] = {}
        self.expires: dict[bytes, float] = {}
        self.sets: dict[bytes, set[bytes]] = {}
        self.subscribers: list[SimPubSub] = []
        self.partition: str | None = None
        self.latency_max = 0.0
        self.epoch = 0
        self.restarts = 0
        self.seen: Counter[str] = Counter()

    def empty_restart(self) -> None:
        """Redis restarted without persistence: every key gone, every connection closed."""
        self.strings.clear()
        self.expires.clear()
        self.sets.clear()
        self.epoch += 1
        self.restarts += 1

    def latency(self) -> float:
        return self._rng.uniform(0.0, self.latency_max) if self.latency_max > 0 else 0.0

    # ------------------------------------------------------------------ commands

    def get(self, key: bytes) -> bytes | None:
        deadline = self.expires.get(key)
        if deadline is not None and anyio.current_time() >= deadline:
            self.strings.pop(key, None)
            self.expires.pop(key, None)
        return self.strings.get(key)

    def set(self, key: bytes, value: bytes, px: int | None) -> bool:
        self.sets.pop(key, None)
        self.strings[key] = value
        self.expires.pop(key, None)
        if px is not None:
            self.expires[key] = anyio.current_time() + px / 1000.0
        return True

    def sadd(self, key: bytes, members: list[bytes]) -> int:
        if key in self.strings:
            raise rx.ResponseError(
                "WRONGTYPE Operation against a key holding the wrong kind of value"
            )
        s = self.sets.setdefault(key, set())
        before = len(s)
        s.update(members)
        return len(s) - before

    def live_keys(self) -> list[bytes]:
        live = [k for k in list(self.strings) if self.get(k) is not None]
        return sorted(live + list(self.sets))

    def publish(self, channel: bytes, data: bytes) -> int:
        n = 0
        for sub in self.subscribers:
            if channel in sub.channels and self.partition is None:
                sub.deliver({"type": "message", "pattern": None, "channel": channel, "data": data})
                n += 1
        return n


class _Conn:
    """What a client of this host meets on each call: a partition, a restart, latency."""

    def __init__(self, store: RedisStandIn, timeout: float) -> None:
        self._store = store
        self._timeout = timeout
        self._epoch = store.epoch

    async def io(self) -> None:
        store = self._store
        if store.partition == "refuse":
            store.seen["refused"] += 1
            await anyio.lowlevel.checkpoint()
            raise rx.ConnectionError("Error 111 connecting to redis.sim:6379. Connection refused.")
        if store.partition == "hang":
            store.seen["timeout"] += 1
            await anyio.sleep(self._timeout)
            raise rx.TimeoutError("Timeout reading from socket")
        if self._epoch != store.epoch:
            # The pool's connection was closed by the restart: this call fails, the
            # next one reconnects (redis-py with retries off).
            self._epoch = store.epoch
            store.seen["closed"] += 1
            await anyio.lowlevel.checkpoint()
            raise rx.ConnectionError("Connection closed by server.")
        latency = store.latency()
        if latency >= self._timeout:
            store.seen["timeout"] += 1
            await anyio.sleep(self._timeout)
            raise rx.TimeoutError("Timeout reading from socket")
        store.seen["ok"] += 1
        if latency > 0:
            await anyio.sleep(latency)
        else:
            await anyio.lowlevel.checkpoint()


class SimRedis:
    """The commands of ``redis.asyncio.Redis`` the fleet agent uses.

    Args:
        timeout: the client's ``socket_timeout`` (a hung call raises after it).
    """

    def __init__(self, store: RedisStandIn, timeout: float) -> None:
        self._store = store
        self._timeout = timeout
        self._conn = _Conn(store, timeout)

    async def get(self, name: bytes | str) -> bytes | None:
        await self._conn.io()
        return self._store.get(_b(name))

    async def set(
        self, name: bytes | str, value: bytes | str, *, px: int | None = None
    ) -> bool | None:
        await self._conn.io()
        return self._store.set(_b(name), _b(value), px)

    async def sadd(self, name: bytes | str, *values: bytes | str) -> int:
        await self._conn.io()
        return self._store.sadd(_b(name), [_b(v) for v in values])

    def pubsub(self) -> SimPubSub:
        return SimPubSub(self._store, self._timeout)

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()


class SimPubSub:
    """``redis.asyncio.client.PubSub``: ``subscribe``, ``get_message``, ``aclose``."""

    def __init__(self, store: RedisStandIn, timeout: float) -> None:
        self._store = store
        self._conn = _Conn(store, timeout)
        self.channels: set[bytes] = set()
        self._queue: deque[dict[str, Any]] = deque()
        self._wake: anyio.Event | None = None

    def deliver(self, message: dict[str, Any]) -> None:
        self._queue.append(message)
        if self._wake is not None:
            self._wake.set()

    async def subscribe(self, *channels: bytes | str) -> None:
        await self._conn.io()
        for channel in channels:
            self.channels.add(_b(channel))
            self._queue.append(
                {"type": "subscribe", "pattern": None, "channel": _b(channel), "data": 1}
            )
        if self not in self._store.subscribers:
            self._store.subscribers.append(self)

    async def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float | None = 0.0
    ) -> dict[str, Any] | None:
        store = self._store
        wait = 0.0 if timeout is None else timeout
        if store.partition == "hang":
            await anyio.sleep(wait)  # nothing arrives on a hung socket
            return None
        if store.partition == "refuse" or self._conn_closed():
            self._drop()
            await anyio.lowlevel.checkpoint()
            raise rx.ConnectionError("Connection closed by server.")
        if not self._queue and wait > 0:
            self._wake = anyio.Event()
            with anyio.move_on_after(wait):
                await self._wake.wait()
            self._wake = None
        else:
            await anyio.lowlevel.checkpoint()
        while self._queue:
            message = self._queue.popleft()
            if ignore_subscribe_messages and message["type"] == "subscribe":
                continue
            return message
        return None

    def _conn_closed(self) -> bool:
        return self._conn._epoch != self._store.epoch

    def _drop(self) -> None:
        if self in self._store.subscribers:
            self._store.subscribers.remove(self)

    async def aclose(self) -> None:
        self._drop()
        await anyio.lowlevel.checkpoint()


class SimRedisSync:
    """The blocking client's commands ``autoheal fleet halt|run`` uses (the operator's,
    from another host: a partition of this host does not reach it)."""

    def __init__(self, store: RedisStandIn) -> None:
        self._store = store

    def get(self, name: bytes | str) -> bytes | None:
        return self._store.get(_b(name))

    def smembers(self, name: bytes | str) -> set[bytes]:
        return set(self._store.sets.get(_b(name), set()))

    def scan_iter(
        self, match: bytes | str | None = None, count: int | None = None
    ) -> Iterator[bytes]:
        pattern = None if match is None else _b(match)
        for key in self._store.live_keys():
            if pattern is None or fnmatch.fnmatchcase(key, pattern):
                yield key

    def mget(self, keys: list[bytes | str]) -> list[bytes | None]:
        return [self._store.get(_b(k)) for k in keys]

    def eval(self, script: str, numkeys: int, *args: bytes | str) -> int:
        """Only the CLI's compare-and-set script (:data:`autoheal.cli.fleet.CAS_SCRIPT`)."""
        from autoheal.cli.fleet import CAS_SCRIPT

        if script != CAS_SCRIPT or numkeys != 2:
            raise rx.ResponseError("NOSCRIPT the stand-in runs only the fleet's CAS script")
        key, channel, had, expected, new, version = (_b(a) for a in args)
        current = self._store.get(key)
        if had == b"1":
            if current != expected:
                return 0
        elif current is not None:
            return 0
        self._store.set(key, new, None)
        self._store.publish(channel, version)
        return 1


@contextmanager
def fleet_patches(store: RedisStandIn, wall: Any) -> Iterator[None]:
    """For the run: the agent's client and the CLI's client are the stand-in's, and the
    CLI's ``time.time()`` is the simulated wall clock (``wall``)."""
    import autoheal.cli.fleet as cli_fleet
    import autoheal.daemon.fleet as daemon_fleet

    def async_client(config: Any, env: Any) -> SimRedis:
        return SimRedis(store, daemon_fleet.io_timeout(config))

    cli: Any = cli_fleet  # its ``time`` is an import, not an export
    saved = (daemon_fleet.async_client, cli._client, cli.time)
    daemon_fleet.async_client = async_client
    cli._client = lambda fleet: SimRedisSync(store)
    cli.time = SimpleNamespace(time=wall)
    try:
        yield
    finally:
        daemon_fleet.async_client, cli._client, cli.time = saved


def fleet_set(config: Any, action: str, reason: str) -> tuple[int, str]:
    """``autoheal fleet <action> --reason <reason>`` as the operator alice types it:
    the CLI's own code; returns its exit status and what it printed (one line)."""
    from autoheal.cli.fleet import set_command

    out, errs = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(errs):
        code = set_command(config, action, reason=reason, user="alice")
    text = (out.getvalue() + errs.getvalue()).strip().splitlines()
    return code, text[-1] if text else ""
