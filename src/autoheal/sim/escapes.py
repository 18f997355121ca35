"""Escapes: wall time, randomness, threads or real I/O reached from the daemon's code.

The simulation is deterministic only if everything the daemon does goes through what
the simulator controls: the loop's clock, the seed's generator, one thread, the
simulated processes. :func:`watching` checks that, for one run, with a profile hook
(``sys.setprofile``: it hears every call of a C function, however the caller got
hold of it, so a ``clock=time.monotonic`` default bound at import is heard too) on
these:

* wall time: ``time.time``, ``time.monotonic``, ``time.perf_counter`` (and their
  ``_ns`` forms), ``time.sleep``;
* randomness: ``os.urandom`` (``uuid.uuid4`` is heard through it), the methods of
  ``random``'s module-level generator (``random.random``, ``randint``, ``choice``...
  all end in one of them), and ``random.Random()`` seeded from the OS;
* threads: ``_thread.start_new_thread`` (every ``threading.Thread.start``) and
  ``anyio.to_thread.run_sync`` (which may reuse a worker thread without starting one);
* real network I/O: ``connect``, ``connect_ex``, ``bind``, ``sendto`` of a socket.

A call is an escape when the first frame of ``src/autoheal`` on its stack (walking
out from the caller) is not the simulator's own (``autoheal/sim``); that frame is
the culprit. For the clock, a call made by trio or anyio first is theirs, not an
escape: ``MockClock`` reads ``time.perf_counter`` to follow the real time it does not
use (``autojump_threshold=0``, rate 0). For threads and sockets, trio and anyio
frames do not excuse: they only carry the daemon's call.

An escape fails the seed (``invariant: escape``) unless :data:`ALLOWED` lists it:
``harmless`` (proven not to reach what the simulation decides, each with why) or
``known`` (a real escape, counted apart until it is fixed, like a known bug; with
``--strict-escapes`` it fails the seed too). Blind spots: a C extension calling the clock or
the OS from C (``datetime.now``, sqlite's own time) is not heard, nor a generator
seeded by the OS inside C (``random.Random()`` is heard, ``SystemRandom`` methods
end in ``os.urandom``).
"""

from __future__ import annotations

import _socket
import _thread
import gc
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import anyio.to_thread
import trio

import autoheal

__all__ = ["ALLOWED", "EscapeWatch", "watching"]

_AUTOHEAL = str(Path(autoheal.__file__).parent) + os.sep
_SIM = _AUTOHEAL + "sim" + os.sep
#: Libraries whose own reads of the clock are the loop's business, not the daemon's.
_LOOP = tuple(str(Path(m.__file__).parent) + os.sep for m in (trio, anyio) if m.__file__)

_CLOCK: dict[Any, str] = {
    time.time: "time.time",
    time.time_ns: "time.time_ns",
    time.monotonic: "time.monotonic",
    time.monotonic_ns: "time.monotonic_ns",
    time.perf_counter: "time.perf_counter",
    time.perf_counter_ns: "time.perf_counter_ns",
    time.sleep: "time.sleep",
}
_OTHER: dict[Any, str] = {
    os.urandom: "os.urandom",
    _thread.start_new_thread: "threading.Thread.start",
}
_NET = frozenset({"connect", "connect_ex", "bind", "sendto"})
_RUN_SYNC = anyio.to_thread.run_sync.__code__
_SEED = random.Random.seed.__code__

#: (what, the culprit's file under src/autoheal, its function or "*") → (kind, why).
#: ``harmless``: proven not to reach anything the simulation decides or checks.
#: ``known``: a real escape, reported and counted apart until it is fixed.
ALLOWED: dict[tuple[str, str, str], tuple[str, str]] = {
    # The temporary file's name of an atomic write: renamed over the target at once,
    # and a stale one is removed by its pattern; the name never reaches the trace, a
    # decision or a check.
    ("os.urandom", "store/atomic.py", "_write_temp"): ("harmless", "a temp file's name"),
    # Command ids are uuid4s: they never reach the trace (the keys are the seed's own),
    # and nothing orders by them.
    ("os.urandom (uuid.uuid4)", "store/commands.py", "submit"): ("harmless", "command id"),
    # The command queue is on the daemon's wall clock since e4f1a70 (the bridge claims,
    # expires, settles and finishes on it; the simulator's operator submits with
    # ``now``): no time.time from store/commands.py, command_claimers.py or
    # command_record.py is heard any more, so none is listed.
    # httpx's own clock reads while the HTTP probe's request runs: its Timer stamps
    # Response.elapsed (perf_counter) and the cookie jar checks expiry (time.time) on
    # every response. Neither reaches a decision: the probe measures latency on the
    # daemon's clock (HttpProbe(clock=...)) and never reads elapsed or cookies.
    ("time.perf_counter", "probes/http.py", "check"): ("harmless", "httpx's Response.elapsed"),
    ("time.time", "probes/http.py", "check"): ("harmless", "httpx's cookie jar"),
    # The journal's event times (Effects.journal_event passes the daemon's wall clock)
    # and STOP.TXT's stamp (KillSwitch passes it to write_stop_file) were escapes
    # until both took the daemon's clock: none is listed.
}


@dataclass
class EscapeWatch:
    """What one run's watch heard: escapes (failures) and allowed ones (counted)."""

    found: list[str] = field(default_factory=list)
    allowed: Counter[str] = field(default_factory=Counter)
    strict: bool = False
    _seen: set[tuple[str, str, str]] = field(default_factory=set)

    def take(self) -> list[str]:
        """The escapes heard since the last call (each site once a run)."""
        out, self.found = self.found, []
        return out

    def heard(self, what: str, frame: FrameType | None, *, loop_excuses: bool) -> None:
        culprit = _culprit(frame, loop_excuses=loop_excuses)
        if culprit is None:
            return
        rel = culprit.f_code.co_filename[len(_AUTOHEAL) :]
        key = (what, rel, culprit.f_code.co_name)
        allowed = ALLOWED.get(key) or ALLOWED.get((what, rel, "*"))
        if allowed is not None:
            self.allowed[f"{allowed[0]} {what} in {rel}:{culprit.f_code.co_name}"] += 1
            if allowed[0] == "harmless" or not self.strict:
                return
        if key in self._seen:
            return
        self._seen.add(key)
        self.found.append(f"{what} called from {_stack(culprit)}")


def _culprit(frame: FrameType | None, *, loop_excuses: bool) -> FrameType | None:
    """The first frame of src/autoheal out from ``frame``, unless it is the simulator's."""
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_AUTOHEAL):
            return None if name.startswith(_SIM) else frame
        if loop_excuses and name.startswith(_LOOP):
            return None
        frame = frame.f_back
    return None


def _stack(frame: FrameType) -> str:
    """``file:line in function`` of the culprit and the autoheal frames out from it."""
    parts: list[str] = []
    f: FrameType | None = frame
    while f is not None and len(parts) < 5:
        name = f.f_code.co_filename
        if name.startswith(_AUTOHEAL):
            parts.append(f"{name[len(_AUTOHEAL) :]}:{f.f_lineno} in {f.f_code.co_name}")
        f = f.f_back
    return " < ".join(parts)


@contextmanager
def watching(*, on: bool = True, strict: bool = False) -> Iterator[EscapeWatch]:
    """Hear escapes in this thread for the block (``on=False``: a watch that hears none)."""
    watch = EscapeWatch(strict=strict)
    if not on:
        yield watch
        return
    # One dict for every C function heard, looked up by the called object itself: a
    # bound method of ``random``'s own generator equals another bound to it (same self,
    # same method), so no attribute is read per call. (The hook runs on every call and
    # return of the run: what it does on a miss is what the watch costs.)
    heard: dict[Any, tuple[str, bool]] = {f: (name, True) for f, name in _CLOCK.items()}
    heard.update({f: (name, False) for f, name in _OTHER.items()})
    inst = random._inst
    for name in ("random", "getrandbits"):
        heard[getattr(inst, name)] = (f"random.{name}", False)
    method = type(inst.random)

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            found = heard.get(arg)
            if found is not None:
                what, loop_excuses = found
                if what == "os.urandom" and frame.f_code.co_name == "uuid4":
                    what = "os.urandom (uuid.uuid4)"
                watch.heard(what, frame, loop_excuses=loop_excuses)
            elif (
                type(arg) is method
                and arg.__name__ in _NET
                and isinstance(getattr(arg, "__self__", None), _socket.socket)
            ):
                watch.heard(f"socket.{arg.__name__}", frame, loop_excuses=False)
        elif event == "call":
            code = frame.f_code
            if code is _RUN_SYNC:
                watch.heard("anyio.to_thread.run_sync", frame.f_back, loop_excuses=False)
            elif code is _SEED and frame.f_locals.get("a") is None:
                watch.heard("random.Random() seeded by the OS", frame.f_back, loop_excuses=False)

    # Other libraries' garbage-collector callbacks run inside whatever frame allocates
    # (Hypothesis times each collection with perf_counter): not the daemon's calls, and
    # the run does not need them. Put back after.
    callbacks = gc.callbacks[:]
    gc.callbacks.clear()
    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield watch
    finally:
        sys.setprofile(previous)
        gc.callbacks[:] = callbacks
