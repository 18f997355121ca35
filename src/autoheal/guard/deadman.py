"""The exchange's dead man's switch: keep its cancel-all-after countdown armed while trading runs.

A kill switch on the trading host cannot cancel the orders already resting at the
exchange when that host dies. Exchanges offer a countdown for this (Binance
``countdownCancelAll``, BitMEX ``cancelAllAfter``): unless the client re-arms it in
time, the exchange itself cancels every open order. This module keeps it armed:

=====================================  =============================================
the trading gate says                  the switch does
=====================================  =============================================
trading allowed (also ``DEGRADED``,    (re)arm the countdown now and every
``REDUCE_ONLY``, an open breaker)      ``refresh_s``; a failed arm is retried after
                                       ``retry_s`` (the previous countdown still runs)
halted (``STOP.TXT``, failsafe,        stop refreshing and cancel all at once; a
``SIGNAL_READ_ONLY``, flags invalid,   failed cancel-all is retried after ``retry_s``,
kill switch unknown)                   and the countdown already armed at the
                                       exchange fires by itself as the backstop
the process dies or hangs              nothing is refreshed: the exchange cancels
                                       everything when the countdown runs out
=====================================  =============================================

So a dead or frozen trader's orders live at most ``countdown_s`` past its last
refresh, which is at most ``countdown_s + refresh_s`` past its last sign of life.

Two layers, as in the rest of autoheal: :func:`step` is the pure decision (plain
data in, a new :class:`DeadmanState` and a list of actions out, time passed in),
tested with a fake clock and Hypothesis; :class:`DeadmanSwitch` is the thin async
shell that reads the gate, calls the exchange through a :class:`CountdownPort` and
feeds the outcomes back. Run it as a task on the *trading loop's own* event loop
(never a separate thread or process): a hung trader must stop refreshing too.

The port is the exchange-specific part, a two-method protocol, so another exchange
plugs in by implementing it (the demo exchange's is
:class:`autoheal.demo.deadman_http.DemoCountdownPort`). Policies for the real ones:
:data:`BINANCE` (120 s countdown, refreshed every 30 s) and :data:`BITMEX` (60 s / 15 s).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple, Protocol

from autoheal.guard.classify import classify
from autoheal.guard.gate import GateStatus, decide

__all__ = [
    "BINANCE",
    "BITMEX",
    "Arm",
    "ArmDone",
    "CancelAll",
    "CancelDone",
    "CountdownPort",
    "DeadmanPolicy",
    "DeadmanState",
    "DeadmanSwitch",
    "Tick",
    "step",
]

log = logging.getLogger("autoheal.guard.deadman")


@dataclass(frozen=True, slots=True)
class DeadmanPolicy:
    """How long the exchange's countdown runs and how often it is re-armed.

    Attributes:
        countdown_s: the countdown sent to the exchange.
        refresh_s: re-arm this often; at most half the countdown, so one lost
            refresh never lets it fire while the trader is alive.
        retry_s: after a failed arm or cancel-all, try again this much later
            (default: a fifth of ``refresh_s``).
    """

    countdown_s: float = 120.0
    refresh_s: float = 30.0
    retry_s: float | None = None

    def __post_init__(self) -> None:
        c, r = self.countdown_s, self.refresh_s
        if not (math.isfinite(c) and math.isfinite(r) and 0 < r <= c / 2):
            raise ValueError(f"deadman: need 0 < refresh_s <= countdown_s / 2, got "
                             f"countdown_s={c!r} refresh_s={r!r}")
        if self.retry_s is not None and not (math.isfinite(self.retry_s)
                                             and 0 < self.retry_s <= r):
            raise ValueError(f"deadman: need 0 < retry_s <= refresh_s, got {self.retry_s!r}")

    @property
    def retry_after_s(self) -> float:
        return self.retry_s if self.retry_s is not None else self.refresh_s / 5

    def scaled(self, factor: float) -> DeadmanPolicy:
        """The same policy with every duration multiplied by ``factor`` (drills, tests)."""
        retry = None if self.retry_s is None else self.retry_s * factor
        return replace(self, countdown_s=self.countdown_s * factor,
                       refresh_s=self.refresh_s * factor, retry_s=retry)


#: Binance ``countdownCancelAll``: a 120 s countdown, heartbeat every 30 s.
BINANCE = DeadmanPolicy(countdown_s=120.0, refresh_s=30.0)
#: BitMEX ``cancelAllAfter``: 60 s, refreshed every 15 s.
BITMEX = DeadmanPolicy(countdown_s=60.0, refresh_s=15.0)


# -- the pure decision --------------------------------------------------------------------


class Tick(NamedTuple):
    """An observation: at ``now`` the gate says ``halted`` (with ``reason``) or not."""

    now: float
    halted: bool
    reason: str = "ok"


class ArmDone(NamedTuple):
    """The outcome of the last :class:`Arm`."""

    now: float
    ok: bool


class CancelDone(NamedTuple):
    """The outcome of the last :class:`CancelAll`."""

    now: float
    ok: bool


class Arm(NamedTuple):
    """Action: (re)arm the exchange's countdown with ``countdown_s``."""

    countdown_s: float


class CancelAll(NamedTuple):
    """Action: cancel every open order now (``reason``: why trading halted)."""

    reason: str


Observation = Tick | ArmDone | CancelDone
Action = Arm | CancelAll
Phase = Literal["idle", "armed", "halted"]


@dataclass(frozen=True, slots=True)
class DeadmanState:
    """What the switch remembers between observations.

    Attributes:
        phase: ``idle`` (nothing armed yet, or after a halt was lifted), ``armed``
            (refreshing), ``halted`` (refreshing stopped, cancel-all sent or pending).
        next_arm_at: when to (re)arm next while trading is allowed.
        sent_at: when the arm in flight was sent (its countdown runs from about then).
        expires_at: when the last confirmed countdown fires at the exchange, at the
            latest (sent time + countdown); ``None`` when none is known to be armed.
        cancel_pending: a halt was seen and no cancel-all has succeeded since.
        next_cancel_at: when to retry a failed cancel-all.
        halt_reason: the gate's reason for the current halt.
    """

    phase: Phase = "idle"
    next_arm_at: float | None = None
    sent_at: float | None = None
    expires_at: float | None = None
    cancel_pending: bool = False
    next_cancel_at: float | None = None
    halt_reason: str = ""


def step(state: DeadmanState, policy: DeadmanPolicy,
         obs: Observation) -> tuple[DeadmanState, list[Action]]:
    """Fold one observation into the state; returns the new state and the actions to run.

    At most one action per call; an :class:`Arm` and a :class:`CancelAll` are never
    asked for together, and no :class:`Arm` is ever asked for while halted.
    """
    if isinstance(obs, ArmDone):
        if state.phase == "halted" or state.sent_at is None:
            return replace(state, sent_at=None), []  # a late answer: the halt wins
        if obs.ok:
            return replace(state, phase="armed", sent_at=None,
                           expires_at=state.sent_at + policy.countdown_s), []
        return replace(state, sent_at=None, next_arm_at=obs.now + policy.retry_after_s), []
    if isinstance(obs, CancelDone):
        if obs.ok:
            return replace(state, cancel_pending=False, next_cancel_at=None), []
        return replace(state, next_cancel_at=obs.now + policy.retry_after_s), []
    now = obs.now
    if state.expires_at is not None and now >= state.expires_at:
        state = replace(state, expires_at=None)  # the exchange's countdown has fired by now
    if obs.halted:
        if state.phase != "halted":
            return (DeadmanState(phase="halted", expires_at=state.expires_at,
                                 cancel_pending=True, halt_reason=obs.reason),
                    [CancelAll(obs.reason)])
        if state.cancel_pending and (state.next_cancel_at is None or now >= state.next_cancel_at):
            return replace(state, next_cancel_at=None), [CancelAll(state.halt_reason)]
        return state, []
    if state.phase == "halted":  # the halt was lifted: start over, arm at once
        state = DeadmanState(expires_at=state.expires_at)
    if state.next_arm_at is None or now >= state.next_arm_at:
        return (replace(state, sent_at=now, next_arm_at=now + policy.refresh_s),
                [Arm(policy.countdown_s)])
    return state, []


# -- the shell -------------------------------------------------------------------------------


class CountdownPort(Protocol):
    """An exchange's cancel-all-after countdown and cancel-all; raise on failure."""

    async def arm(self, countdown_s: float) -> None:
        """(Re)start the exchange's countdown: it cancels all unless re-armed within it."""

    async def cancel_all(self) -> int | None:
        """Cancel every open order now; returns how many, when the exchange says."""


class GateLike(Protocol):
    def status(self) -> GateStatus: ...


def halt_reason(status: GateStatus) -> str | None:
    """The gate's reason when no new order of any kind may go out, else ``None``."""
    if not status.halted:
        return None
    allowed, reason = decide(status, "sell")
    return "signal_read_only" if allowed else reason


class DeadmanSwitch:
    """Keeps an exchange's cancel-all-after countdown armed while the gate allows trading.

    Args:
        port: the exchange's countdown and cancel-all.
        gate: a :class:`~autoheal.guard.gate.TradingGate` (anything with ``status()``).
        policy: countdown and refresh; :data:`BINANCE` by default.
        tick_s: how often the gate is looked at (so ``STOP.TXT`` cancels within about
            this long); default ``min(0.1, refresh_s / 5)``.
        time_fn: monotonic seconds; tests pass a fake clock.
        sleep_fn: the event loop's sleep (``anyio.sleep``, ``trio.sleep``); default
            ``asyncio.sleep``, since the guard imports no event-loop library.
    """

    def __init__(self, port: CountdownPort, gate: GateLike, policy: DeadmanPolicy = BINANCE,
                 *, tick_s: float | None = None,
                 time_fn: Callable[[], float] = time.monotonic,
                 sleep_fn: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.port = port
        self.gate = gate
        self.policy = policy
        self.tick_s = tick_s if tick_s is not None else min(0.1, policy.refresh_s / 5)
        self.state = DeadmanState()
        self.arms = 0
        self.cancels = 0
        self._time = time_fn
        self._sleep = sleep_fn

    async def tick(self) -> list[Action]:
        """Look at the gate once and run what :func:`step` asks for; returns those actions."""
        reason = halt_reason(self.gate.status())
        obs = Tick(self._time(), reason is not None, reason or "ok")
        before = self.state
        self.state, actions = step(self.state, self.policy, obs)
        for action in actions:
            if isinstance(action, Arm):
                await self._arm(action, first=before.phase != "armed")
            else:
                await self._cancel(action)
        return actions

    def status_doc(self, wall_now: float) -> dict[str, object]:
        """What a heartbeat carries for the status page (``deadman``: ``{venue: this}``).

        ``expires_at`` is when the exchange's countdown fires at the latest, in unix
        seconds (``None``: none known to be armed); ``phase`` is :class:`DeadmanState`'s.
        """
        expires = self.state.expires_at
        return {
            "phase": self.state.phase,
            "expires_at": None if expires is None else wall_now + (expires - self._time()),
            "countdown_s": self.policy.countdown_s,
            "refresh_s": self.policy.refresh_s,
        }

    async def run(self) -> None:
        """Tick forever (cancel the task to stop; the armed countdown then runs out)."""
        log.info("[deadman] started countdown=%gs refresh=%gs tick=%gs",
                 self.policy.countdown_s, self.policy.refresh_s, self.tick_s)
        while True:
            await self.tick()
            await self._sleep(self.tick_s)

    async def _arm(self, action: Arm, *, first: bool) -> None:
        try:
            await self.port.arm(action.countdown_s)
        except Exception as exc:  # any failure: retried; the previous countdown still runs
            self.state, _ = step(self.state, self.policy, ArmDone(self._time(), ok=False))
            expires = self.state.expires_at
            left = "unknown" if expires is None else f"{max(0.0, expires - self._time()):.1f}s"
            log.warning("[deadman] arm failed reason=%s (retry in %gs; countdown left %s)",
                        classify(exc).reason, self.policy.retry_after_s, left)
            return
        self.state, _ = step(self.state, self.policy, ArmDone(self._time(), ok=True))
        self.arms += 1
        if first:
            log.info("[deadman] countdown armed countdown=%gs refresh=%gs",
                     action.countdown_s, self.policy.refresh_s)
        else:
            log.debug("[deadman] countdown refreshed countdown=%gs", action.countdown_s)

    async def _cancel(self, action: CancelAll) -> None:
        log.warning("[deadman] trading halted reason=%s: refreshing stopped, cancel-all sent",
                    action.reason)
        try:
            count = await self.port.cancel_all()
        except Exception as exc:  # retried; the countdown at the exchange is the backstop
            self.state, _ = step(self.state, self.policy, CancelDone(self._time(), ok=False))
            log.error("[deadman] cancel-all failed reason=%s (retry in %gs; the exchange's "
                      "countdown cancels by itself)", classify(exc).reason,
                      self.policy.retry_after_s)
            return
        self.state, _ = step(self.state, self.policy, CancelDone(self._time(), ok=True))
        self.cancels += 1
        log.warning("[deadman] cancel-all done cancelled=%s reason=%s",
                    "?" if count is None else count, action.reason)
