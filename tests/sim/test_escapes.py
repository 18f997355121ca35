"""Escapes: wall time, randomness, threads or real I/O from the daemon's code are heard.

Code "of the daemon" is code whose file is under src/autoheal (and not the
simulator's): the unit tests compile small functions under such a file name, so the
watch attributes their calls as it would the daemon's.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import trio
from trio.testing import MockClock

import autoheal.core.healing as healing
import autoheal.sim.escapes as escapes
from autoheal.sim.escapes import watching
from autoheal.sim.run import run_seed

pytestmark = [pytest.mark.timeout(60)]

_ROOT = escapes._AUTOHEAL


def _fn(rel: str, body: str, *, is_async: bool = False, **env: Any) -> Callable[[], Any]:
    """``def f(): <body>`` compiled as if it were in src/autoheal/<rel>."""
    space: dict[str, Any] = {**ENV, **env}
    lines = "".join(f"    {x.strip()}\n" for x in body.split(";"))
    source = ("async " if is_async else "") + "def f(clock=time.monotonic):\n" + lines
    exec(compile(source, _ROOT + rel, "exec"), space)
    return space["f"]  # type: ignore[no-any-return]


ENV = {
    "time": time,
    "random": random,
    "os": os,
    "uuid": uuid,
    "threading": threading,
    "socket": socket,
    "trio": trio,
}


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("return time.time()", "time.time"),
        ("return clock()", "time.monotonic"),  # a default bound at import is heard too
        ("return time.perf_counter_ns()", "time.perf_counter_ns"),
        ("time.sleep(0)", "time.sleep"),
        ("return random.random()", "random.random"),
        ("return random.randint(1, 6)", "random.getrandbits"),
        ("return random.Random()", "random.Random() seeded by the OS"),
        ("return os.urandom(4)", "os.urandom"),
        ("return uuid.uuid4()", "os.urandom (uuid.uuid4)"),
        ("t = threading.Thread(target=int); t.start(); t.join()", "threading.Thread.start"),
    ],
)
def test_a_call_from_the_daemons_code_is_an_escape(body: str, what: str) -> None:
    f = _fn("daemon/made_up.py", body, **ENV)
    with watching() as watch:
        f()
    found = watch.take()
    assert len(found) == 1 and found[0].startswith(f"{what} called from daemon/made_up.py:")


def test_a_socket_connect_from_the_daemons_code_is_an_escape() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        f = _fn(
            "probes/made_up.py", f"s = socket.create_connection(('127.0.0.1', {port})); s.close()"
        )
        with watching() as watch:
            f()
    assert [x.split(" called")[0] for x in watch.take()] == ["socket.connect"]


def test_to_thread_from_the_daemons_code_is_an_escape() -> None:
    import anyio.to_thread

    body = "return await anyio.to_thread.run_sync(int)"
    f = _fn("daemon/made_up.py", body, is_async=True, anyio=anyio)

    async def main() -> None:
        await f()

    with watching() as watch:
        trio.run(main, clock=MockClock(autojump_threshold=0))
    found = [x.split(" called")[0] for x in watch.take()]
    # The worker thread trio starts (or reuses) is heard through the same call.
    assert found[0] == "anyio.to_thread.run_sync"


def test_what_is_not_the_daemons_is_not_an_escape() -> None:
    sim = _fn("sim/made_up.py", "return time.time(), random.random(), os.urandom(2)", **ENV)
    seeded = _fn("daemon/made_up.py", "return random.Random(7).random()", **ENV)

    async def sleepy() -> None:  # trio's MockClock reads perf_counter itself
        await _fn("daemon/made_up.py", "await trio.sleep(3)", is_async=True)()

    with watching() as watch:
        sim()
        seeded()
        time.time()  # this test's own frame is not under src/autoheal
        trio.run(sleepy, clock=MockClock(autojump_threshold=0))
    assert watch.take() == []


def test_an_allowed_escape_is_counted_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    f = _fn("store/journal.py", "return time.time()", **ENV)
    f.__code__ = f.__code__.replace(co_name="record")
    with watching() as watch:  # no longer allowed: the journal takes the daemon's clock
        f()
    assert watch.take() == ["time.time called from store/journal.py:2 in record"]
    key = ("time.time", "store/journal.py", "record")
    monkeypatch.setitem(escapes.ALLOWED, key, ("known", "a real escape, pinned"))
    with watching() as watch:
        f()
    assert watch.take() == []
    assert watch.allowed == {"known time.time in store/journal.py:record": 1}
    with watching(strict=True) as watch:  # --strict: a known escape fails too
        f()
    assert len(watch.take()) == 1


def test_a_run_fails_on_an_escape_and_the_same_seed_holds_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The core's backoff reads the module-level generator (jitter from the OS's seed):
    # heard in core/healing.py, which calls it.
    original = healing.delay_for

    def jittered(attempts: int, policy: Any) -> float:
        return float(original(attempts, policy)) + 0.0 * random.random()

    assert run_seed(2, 5).failures == []
    monkeypatch.setattr(healing, "delay_for", jittered)
    failures = run_seed(2, 5).failures
    assert [f["invariant"] for f in failures] == ["escape"]
    assert failures[0]["detail"].startswith("random.random called from core/healing.py:")
    assert run_seed(2, 5, escapes=False).failures == []  # unwatched, it goes unseen


def test_a_batch_watches_every_kth_seed_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import autoheal.sim.__main__ as cli

    asked: dict[int, bool] = {}

    def fake_run_seed(seed: int, **kw: Any) -> Any:
        asked[seed] = kw["escapes"]
        return run_seed(seed, 0.05, escapes=False)

    monkeypatch.setattr(cli, "run_seed", fake_run_seed)
    assert cli.main(["--seeds", "1..6", "--minutes", "1", "--watch-every", "3"]) == 0
    assert asked == {1: False, 2: False, 3: True, 4: False, 5: False, 6: True}
    asked.clear()
    assert cli.main(["--seeds", "1..2", "--minutes", "1"]) == 0  # by default: every seed
    assert asked == {1: True, 2: True}


def test_another_librarys_gc_callback_is_not_an_escape_and_is_put_back() -> None:
    """Hypothesis times each collection with perf_counter from a gc callback, which runs
    inside whatever frame allocates: in CI's pytest process that was heard as the
    daemon's (store/layout.py), failing every seed."""
    import gc

    def timing(phase: str, info: dict[str, int]) -> None:
        time.perf_counter()

    gc.callbacks.append(timing)
    try:
        f = _fn("store/layout.py", "import gc; gc.collect()", gc=gc)
        with watching() as watch:
            f()
        assert watch.take() == []
        assert timing in gc.callbacks  # put back
    finally:
        gc.callbacks.remove(timing)
