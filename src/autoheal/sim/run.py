"""One seed, or a batch: the real daemon under seeded faults, invariants after each step.

A run is one ``trio`` run on ``MockClock(autojump_threshold=0)`` (see the package's
docstring for why that is deterministic here): the simulator's own task draws a step
from the seed's :class:`random.Random` (a process fault, an operator's act, a kill of
the daemon), lets the virtual time pass, lets the daemon react, and checks every
invariant (:mod:`autoheal.sim.invariants`). After the last step comes the liveness
phase: faults off, and within :data:`LIVENESS_S` virtual seconds the runtime is back
to DOR, or visibly latched in a failsafe, or what is not well was stopped by the
operator; every queued command has its answer.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import orjson
import trio
from anyio.abc import TaskGroup, TaskStatus
from trio.testing import MockClock

from autoheal.core.actions import ProcessAction, RestartProcess, StartProcess
from autoheal.core.queries import healthy
from autoheal.core.stages import Stage
from autoheal.core.state import RuntimeState
from autoheal.daemon.clock import LoopClock
from autoheal.daemon.interpreter import Interpreter
from autoheal.guard.gate import TradingGate
from autoheal.sim import invariants as inv
from autoheal.sim.daemon import Incarnations, Seat, SimDaemon, claimer_identities
from autoheal.sim.files import EPOCH, MAX_RESTARTS, SERVICES, SimFiles
from autoheal.sim.links import LINK_SOMETIMES, Links, known_daemon_death
from autoheal.sim.operator import Operator
from autoheal.sim.plants import planted
from autoheal.sim.processes import SimProcessControl, write_heartbeats
from autoheal.sim.profile import ACTS, FaultProfile, draw_profile
from autoheal.sim.trace import Trace
from autoheal.store import commands as queue
from autoheal.store import layout
from autoheal.store.journal import Journal

__all__ = ["LIVENESS_S", "Outcome", "run_seed"]

#: Virtual seconds the daemon gets to react to an act before the invariants look.
SETTLE_S = 0.5
#: A daemon that died of an exception is started again this long after (systemd's
#: ``RestartSec``), when that death is a known bug (else the seed fails).
RESTART_SEC = 5.0
#: Virtual seconds the liveness phase waits at most.
LIVENESS_S = 900.0
#: The "sometimes" a batch should reach; a batch that never does says so.
SOMETIMES = (
    "failsafe_entered_by_max_restarts",
    "failsafe_entered_by_operator",
    "failsafe_cleared",
    "daemon_killed",
    "daemon_restart_with_parked_component",
    "claimer_died_settled",
    "key_replayed",
    "key_conflict_refused",
    "flags_garbage",
    "reload_valid",
    "reload_invalid",
    "gate_refused_while_halted",
    "liveness_dor",
    "liveness_latched",
    *LINK_SOMETIMES,
)


@dataclass
class Outcome:
    """What one seed did."""

    seed: int
    minutes: float
    plant: str | None
    profile: FaultProfile
    digest: str = ""
    events: int = 0
    steps: int = 0
    virtual_s: float = 0.0
    wall_s: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    coverage: Counter[str] = field(default_factory=Counter)
    known: Counter[str] = field(default_factory=Counter)
    """Violations of a known, unfixed real bug (:data:`invariants.KNOWN_BUGS`)."""


@contextmanager
def _deterministic_trio(seed: int) -> Iterator[None]:
    """trio's scheduler, made a function of the seed (as trio does under Hypothesis).

    trio runs each batch of ready tasks in a random order: reversed or not, on a
    ``random.Random`` seeded from the OS. Here that generator is seeded from the seed,
    and each batch is first sorted by the tasks' creation order, then shuffled by it,
    so the order no longer depends on how the batch was assembled (deadline ties are
    broken by ``id()`` of the cancel scopes, an address that varies between runs).
    """
    import trio._core._run as trio_run  # the hook trio itself uses for Hypothesis

    state, allow = trio_run._r.getstate(), trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    trio_run._r.seed(seed)
    trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    try:
        yield
    finally:
        trio_run._r.setstate(state)
        trio_run._ALLOW_DETERMINISTIC_SCHEDULING = allow  # type: ignore[misc]


@contextmanager
def _quiet() -> Iterator[None]:
    """The daemon's log off for the run (the trace says what happened)."""
    logger = logging.getLogger("autoheal")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_seed(
    seed: int,
    minutes: float = 20.0,
    *,
    plant: str | None = None,
    trace_path: Path | None = None,
    on_profile: Any = None,
    strict: bool = False,
) -> Outcome:
    """Run one seed for ``minutes`` virtual minutes (then the liveness phase).

    Args:
        plant: a planted bug to switch on (:data:`autoheal.sim.plants.PLANTS`).
        trace_path: write the trace there too.
        on_profile: called with the seed's profile before the run.
        strict: a known bug's violation fails the seed (else it is counted apart).
    """
    minutes = float(minutes)  # 2 and 2.0 are one run: the trace's header says 2.0
    rng = random.Random(seed)
    profile = draw_profile(rng)
    links = Links(rng, profile)
    if on_profile is not None:
        on_profile(profile)
    outcome = Outcome(seed, minutes, plant, profile)
    trace = Trace(trace_path)
    trace.emit({"seed": seed, "minutes": minutes, "plant": plant, "profile": profile.to_doc()})
    started = time.perf_counter()
    incarnations = Incarnations()
    with (
        tempfile.TemporaryDirectory(prefix="autoheal-sim-") as tmp,
        _quiet(),
        _deterministic_trio(seed),
        claimer_identities(incarnations),
        planted(plant),
        links.patches(),
    ):
        sim = _Sim(
            rng,
            profile,
            links.files(Path(tmp)),
            minutes=minutes,
            trace=trace,
            outcome=outcome,
            incarnations=incarnations,
            links=links,
        )
        sim.strict = strict
        trio.run(sim.main, clock=MockClock(autojump_threshold=0))
    links.tally(outcome.coverage)
    outcome.wall_s = time.perf_counter() - started
    outcome.events = trace.events
    outcome.digest = trace.close()
    return outcome


class _Sim:
    def __init__(
        self,
        rng: random.Random,
        profile: FaultProfile,
        files: SimFiles,
        *,
        minutes: float,
        trace: Trace,
        outcome: Outcome,
        incarnations: Incarnations,
        links: Links,
    ) -> None:
        self.rng, self.profile, self.files = rng, profile, files
        self.minutes, self.trace, self.outcome = minutes, trace, outcome
        self.incarnations = incarnations
        self.links = links
        self.stranded: set[str] = set()
        self.settle_fails = 0
        self.procs = SimProcessControl(self._daemon_now)
        self.clears = inv.ClearLedger()
        self.keys = inv.KeyLedger()
        self.seat: Seat | None = None
        self.scope: anyio.CancelScope | None = None
        self.ended: anyio.Event | None = None
        self.down_until: float | None = None
        self.last_event = 0
        self.seen_starts = 0
        self.step_no = 0
        self.prev_failsafe = False
        self.crash_loop: set[str] = set()
        self.spawn_fail = False
        self.ignore_stop: set[str] = set()
        self.strict = False
        self.tg: TaskGroup | None = None
        self.journal: Journal | None = None
        self.operator: Operator | None = None
        self.gate: TradingGate | None = None

    # ------------------------------------------------------------------ the daemon

    def _state(self) -> RuntimeState | None:
        seat = self.seat
        if seat is None or seat.interpreter is None or self.scope is None:
            return None
        return seat.interpreter.runtime.state

    def _daemon_now(self) -> tuple[str | None, bool]:
        state = self._state()
        booting = self.seat is not None and self.seat.booting
        if state is None or state.failsafe is None:
            return None, booting
        return state.failsafe.reason, booting

    def _up(self) -> bool:
        return self.scope is not None

    async def _start_daemon(self) -> dict[str, Any]:
        assert self.tg is not None and self.operator is not None
        fixed = self.operator.fix_config()
        config = self.files.load()
        assert config is not None
        previous = self._saved_state()
        parked = any(
            c.get("stage") == "FAILSAFE" or c.get("reason") == "failsafe_active"
            for c in previous.values()
        )
        if parked:
            self.outcome.coverage["daemon_restart_with_parked_component"] += 1
        self.procs.decided.clear()  # a new daemon: no process action of the old one is left
        self.settle_fails = self.links.lock.failed["settle_dead_claims"]
        self.incarnations.count += 1
        self.incarnations.alive = True
        seat = Seat(on_dispatch=self._dispatched)
        daemon = SimDaemon(config, procs=self.procs, clock=LoopClock.virtual(EPOCH), seat=seat)
        scope, ended = anyio.CancelScope(), anyio.Event()

        async def body(task_status: TaskStatus[Interpreter]) -> None:
            try:
                with scope:
                    await daemon.run(task_status=task_status)
            except Exception as exc:  # the daemon died of an exception: a finding
                bug = None if self.strict else known_daemon_death(exc)
                if bug is None:
                    self._fail("daemon_raised", f"{type(exc).__name__}: {exc}")
                else:  # counted apart; systemd restarts the daemon (Restart=on-failure)
                    self.outcome.known[bug] += 1
                    self.trace.emit({"known_bug": bug, "t": round(anyio.current_time(), 3)})
                    if self.scope is scope:
                        self.scope = self.seat = None
                        self.incarnations.alive = False
                        self.down_until = anyio.current_time() + RESTART_SEC
            finally:
                ended.set()

        self.seat, self.scope, self.ended = seat, scope, ended
        try:
            await self.tg.start(body)
        except RuntimeError as exc:
            self._fail("daemon_did_not_start", str(exc))
        self.down_until = None
        return {"act": "daemon_start", "config_fixed": fixed, "parked": parked}

    def _dispatched(self, action: ProcessAction, when: str) -> None:
        if isinstance(action, RestartProcess | StartProcess):
            self.procs.decided.setdefault(action.component, []).append(when)

    def _saved_state(self) -> dict[str, dict[str, Any]]:
        raw = self.files.read(self.files.runtime_dir / layout.STATE)
        try:
            doc = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return {}
        comps = doc.get("components", {}) if isinstance(doc, dict) else {}
        return comps if isinstance(comps, dict) else {}

    async def _stop_daemon(self, *, sigkill: bool) -> None:
        if self.scope is None or self.seat is None or self.ended is None:
            return
        self.seat.sigkill = sigkill
        self.scope.cancel()
        await self.ended.wait()
        self.scope = self.seat = None
        self.incarnations.alive = False

    # ------------------------------------------------------------------ the run

    async def main(self) -> None:
        files = self.files
        files.runtime_dir.mkdir(parents=True)
        files.config_path.write_text(files.config(0))
        with Journal.open(files.runtime_dir) as journal:
            self.journal = journal
            self.operator = Operator(
                self.rng,
                files,
                journal,
                self.clears,
                self.keys,
                daemon_up=self._up,
                journal_max_id=self._max_id,
            )
            self.gate = TradingGate(
                files.runtime_dir,
                files.stop_file,
                time_fn=anyio.current_time,
                wall_fn=lambda: EPOCH + anyio.current_time(),
                watch_breaker=False,
            )
            async with anyio.create_task_group() as tg:
                self.tg = tg
                beats = {"feeder": files.heartbeat("feeder")}
                tg.start_soon(write_heartbeats, self.procs, beats, EPOCH)
                act = await self._start_daemon()
                await anyio.sleep(SETTLE_S)
                self._check(act)
                end = self.minutes * 60.0
                while not self.outcome.failures and anyio.current_time() < end:
                    gap = min(120.0, self.rng.expovariate(1.0 / self.profile.mean_gap_s))
                    await anyio.sleep(gap)
                    act = await self._step()
                    await anyio.sleep(SETTLE_S)
                    self._check(act)
                if not self.outcome.failures:
                    await self._liveness()
                self.outcome.virtual_s = anyio.current_time()
                await self._stop_daemon(sigkill=True)
                tg.cancel_scope.cancel()

    async def _step(self) -> dict[str, Any]:
        rng, op = self.rng, self.operator
        assert op is not None
        self.step_no += 1
        now = anyio.current_time()
        if not self._up():
            if self.down_until is not None and now >= self.down_until:
                return await self._start_daemon()
            if rng.random() < self.profile.fiddle_while_down:
                return op.fiddle_while_down()
        weights = [self.profile.weights[a] for a in ACTS]
        name = rng.choices(ACTS, weights)[0]
        return await self._act(name)

    async def _act(self, name: str) -> dict[str, Any]:
        rng, op, procs = self.rng, self.operator, self.procs
        assert op is not None
        match name:
            case "crash":
                who = rng.choice(SERVICES)
                code = rng.choice((1, 2, 137, -9, -11, 0))
                if not procs.running(who):
                    return {"act": "crash", "name": who, "running": False}
                procs.exit(who, code)
                return {"act": "crash", "name": who, "code": code}
            case "crash_loop":
                who = rng.choice(SERVICES)
                on = who not in self.crash_loop
                (self.crash_loop.add if on else self.crash_loop.discard)(who)
                procs.set_crash_on_start(who, rng.choice((1, 127)) if on else None)
                return {"act": "crash_loop", "name": who, "on": on}
            case "spawn_fail":
                self.spawn_fail = not self.spawn_fail
                for argv0 in self._argv0s():
                    if self.spawn_fail:
                        procs.set_failing(argv0)
                    else:
                        procs.clear_failing(argv0)
                return {"act": "spawn_fail", "on": self.spawn_fail}
            case "hang":
                ident = procs.current("feeder")
                if ident is not None:
                    procs.hung.add(ident.pid)
                return {"act": "hang", "running": ident is not None}
            case "slow_start":
                who = rng.choice(SERVICES)
                delay = round(rng.uniform(1.0, 40.0), 3)
                procs.slow_next[who] = delay
                return {"act": "slow_start", "name": who, "delay": delay}
            case "ignore_stop":
                who = rng.choice(SERVICES)
                on = who not in self.ignore_stop
                (self.ignore_stop.add if on else self.ignore_stop.discard)(who)
                procs.set_ignore_stop(who, on)
                return {"act": "ignore_stop", "name": who, "on": on}
            case "command" | "command_reused_key":
                act = op.command(reuse=name == "command_reused_key")
                self.outcome.coverage.update(
                    {
                        "key_replayed": act["outcome"] == "duplicate",
                        "key_conflict_refused": act["outcome"] == "conflict",
                    }
                )
                return act
            case "stop_create":
                return op.stop_create()
            case "stop_remove":
                return op.stop_remove()
            case "flags_whole" | "flags_partial" | "flags_garbage":
                kind = name.removeprefix("flags_")
                self.outcome.coverage["flags_garbage"] += kind == "garbage"
                return op.flags(kind)
            case "reload":
                act = op.reload()
                self.outcome.coverage["reload_valid" if act["valid"] else "reload_invalid"] += 1
                return act
            case (
                "fleet_halt"
                | "fleet_run"
                | "fleet_partition"
                | "fleet_empty_restart"
                | "fleet_slow"
                | "http_fault"
                | "queue_lock"
            ):
                return self.links.act(name, self.files)
            case "daemon_kill":
                return await self._kill()
            case "daemon_term":
                if not self._up():
                    return {"act": "daemon_term", "up": False}
                await self._stop_daemon(sigkill=False)
                await self._start_daemon()
                return {"act": "daemon_term", "up": True}
        await anyio.lowlevel.checkpoint()
        return {"act": "wait"}

    def _argv0s(self) -> list[str]:
        config = self.files.load()
        return [] if config is None else sorted({s.argv[0] for s in config.services.values()})

    async def _kill(self) -> dict[str, Any]:
        rng, op = self.rng, self.operator
        assert op is not None
        if not self._up():
            return {"act": "daemon_kill", "up": False}
        doc: dict[str, Any] = {"act": "daemon_kill"}
        if rng.random() < 0.5:
            doc["command"] = op.command(reuse=False)
        passes = rng.randint(0, self.profile.kill_checkpoints_max)
        for _ in range(passes):
            await anyio.lowlevel.checkpoint()
        await self._stop_daemon(sigkill=True)
        self.outcome.coverage["daemon_killed"] += 1
        down = round(rng.uniform(0.0, self.profile.downtime_max_s), 3)
        self.down_until = anyio.current_time() + down
        doc.update(passes=passes, down_s=down)
        if down == 0.0:
            doc["restart"] = await self._start_daemon()
        return doc

    # ------------------------------------------------------------------ the checks

    def _max_id(self) -> int:
        assert self.journal is not None
        rows = self.journal.query("SELECT COALESCE(MAX(id), 0) AS m FROM events")
        return int(rows[0]["m"])

    def _new_events(self) -> list[inv.JournalEvent]:
        assert self.journal is not None
        rows = self.journal.query(
            "SELECT id, kind, command_id, reason, data FROM events WHERE id > ? ORDER BY id",
            (self.last_event,),
        )
        out = []
        for row in rows:
            data = orjson.loads(row["data"]) if row["data"] else None
            out.append(
                inv.JournalEvent(row["id"], row["kind"], row["command_id"], row["reason"], data)
            )
        if out:
            self.last_event = out[-1].id
        return out

    def _fail(self, invariant: str, detail: str) -> None:
        failure = {
            "t": round(anyio.current_time(), 3),
            "step": self.step_no,
            "invariant": invariant,
            "detail": detail,
        }
        self.outcome.failures.append(failure)
        self.trace.emit({"failure": failure})

    def _check(self, act: dict[str, Any]) -> None:
        assert self.operator is not None and self.gate is not None
        cov = self.outcome.coverage
        events = self._new_events()
        found: list[tuple[str, list[str]]] = []
        found.append(("only_operator_clears", self.clears.see(events)))
        found.append(("key_one_command_once", self.keys.see(events) + self.operator.violations))
        self.operator.violations = []
        starts = self.procs.records[self.seen_starts :]
        self.seen_starts = len(self.procs.records)
        found.append(("no_start_in_failsafe", inv.no_start_in_failsafe(starts, known=self.strict)))
        if not self.strict:
            for bug, line in inv.known_starts_in_failsafe(starts):
                self.outcome.known[bug] += 1
                self.trace.emit({"known_bug": bug, "detail": line})
        cleared_now = False
        for e in events:
            notice = e.notice
            if notice == "failsafe":
                by_budget = "restart attempts" in e.message
                cov[
                    "failsafe_entered_by_max_restarts"
                    if by_budget
                    else "failsafe_entered_by_operator"
                ] += 1
            elif notice == "failsafe_cleared":
                cov["failsafe_cleared"] += 1
                cleared_now = True
            if e.kind == "result_written" and e.reason == "claimer_died":
                cov["claimer_died_settled"] += 1
        files = self.files
        stop_raw = files.read(files.stop_file)
        flags_raw = files.read(files.flags)
        docs = {
            layout.STOP_FILE_DEFAULT: stop_raw,
            layout.FLAGS: flags_raw,
            layout.HEALTH: files.read(files.runtime_dir / layout.HEALTH),
            layout.STATE: files.read(files.runtime_dir / layout.STATE),
        }
        found.append(("whole_documents", inv.whole_documents(docs, self.operator.by_hand)))
        self.gate.invalidate()
        answer = self.gate.allowed("buy")
        refused = inv.halted_refuses_buy(stop_raw is not None, flags_raw, answer)
        found.append(("halted_refuses_buy", refused))
        if not answer[0] and (stop_raw is not None):
            cov["gate_refused_while_halted"] += 1
        state = self._state()
        flags_by_hand = flags_raw is not None and flags_raw == self.operator.by_hand.get(
            layout.FLAGS
        )
        fleet = self.links.check(state, answer, flags_by_hand, self.clears.made)
        found.append(("fleet_halt_refuses_buy", fleet))
        seen: dict[str, Any] = {"up": state is not None, "stop": stop_raw is not None}
        if state is None and cleared_now:
            self.prev_failsafe = False  # cleared before the daemon died: seen by the ledger
        if state is not None:
            attempts = {n: cs.attempts for n, cs in state.components.items()}
            found.append(("restart_budget", inv.within_budget(attempts, MAX_RESTARTS)))
            failsafe = state.failsafe is not None
            if self.prev_failsafe and not failsafe and not cleared_now:
                found.append(("only_operator_clears", ["the failsafe ended without a clear"]))
            self.prev_failsafe = failsafe
            flags_doc = _doc(flags_raw)
            if flags_raw is None or flags_raw != self.operator.by_hand.get(layout.FLAGS):
                visible = inv.failsafe_visible(
                    failsafe, state.reduce_only is not None, stop_raw is not None, flags_doc
                )
                found.append(("failsafe_visible", visible))
            seen.update(
                fs=failsafe,
                ro=state.reduce_only is not None,
                c={
                    n: [cs.stage.value, cs.attempts, cs.held]
                    for n, cs in sorted(state.components.items())
                },
            )
        seen.update(self.links.seen(state))
        seen["gate"] = answer[0]
        seen["starts"] = len(self.procs.records)
        self.trace.emit(
            {"i": self.step_no, "t": round(anyio.current_time(), 3), "act": act, "seen": seen}
        )
        self.outcome.steps = self.step_no
        for invariant, lines in found:
            for line in lines:
                self._fail(invariant, line)

    async def _liveness(self) -> None:
        procs = self.procs
        for who in sorted(self.crash_loop):
            procs.set_crash_on_start(who, None)
        for argv0 in self._argv0s():
            procs.clear_failing(argv0)
        for who in SERVICES:
            procs.set_ignore_stop(who, False)
        procs.hung.clear()
        procs.slow_next.clear()
        self.links.faults_off()
        assert self.operator is not None
        self.operator.fix_config()
        if not self._up():
            await self._start_daemon()
        self.trace.emit({"liveness": "faults off", "t": round(anyio.current_time(), 3)})
        deadline = anyio.current_time() + LIVENESS_S
        verdict: dict[str, Any] = {}
        while True:
            await anyio.sleep(5.0)
            self._check({"act": "liveness"})
            if self.outcome.failures:
                return
            verdict = self._liveness_verdict()
            done = verdict["dor"] or verdict["latched"] or not verdict["unexplained"]
            if (done and not verdict["unfinished"]) or anyio.current_time() >= deadline:
                break
        kind = (
            "liveness_dor" if verdict["dor"] else "liveness_latched" if verdict["latched"] else ""
        )
        if kind:
            self.outcome.coverage[kind] += 1
        self.trace.emit({"liveness": verdict, "t": round(anyio.current_time(), 3)})
        for line in inv.live(
            verdict["dor"], verdict["latched"], verdict["unexplained"], verdict["unfinished"]
        ):
            self._fail("liveness", line)

    def _liveness_verdict(self) -> dict[str, Any]:
        assert self.operator is not None and self.seat is not None
        state = self._state()
        assert state is not None and self.seat.interpreter is not None
        health = _doc(self.files.read(self.files.runtime_dir / layout.HEALTH)) or {}
        flags = _doc(self.files.read(self.files.flags))
        stop = self.files.stop_file.exists()
        failsafe = state.failsafe is not None
        # Visible: in the health document, STOP.TXT (unless unwinding) and the flags
        # (or the flags are the operator's own unreadable edit, which the daemon leaves
        # alone with an alert: then STOP.TXT and the health document say it).
        flags_by_hand = self.files.read(self.files.flags) == self.operator.by_hand.get(layout.FLAGS)
        problems = inv.failsafe_visible(failsafe, state.reduce_only is not None, stop, flags)
        if flags_by_hand:
            problems = [p for p in problems if "flags say" not in p]
        latched = failsafe and not problems and health.get("failsafe") is True
        unexplained = [
            n
            for n, cs in sorted(state.components.items())
            if not (cs.stage is Stage.OBSERVE and healthy(cs)) and not cs.held
        ]
        unfinished = self.operator.unfinished()
        stranded = self._stranded(unfinished)
        new = [k for k in stranded if k not in self.stranded]
        if new:
            bug = "dead_claim_settle_not_retried"
            self.stranded.update(new)
            self.outcome.known[bug] += len(new)
            self.trace.emit({"known_bug": bug, "keys": new})
        unfinished = [k for k in unfinished if k not in stranded]
        return {
            "dor": self.seat.interpreter.runtime.dor() and health.get("dor") is True,
            "latched": bool(latched),
            "unexplained": unexplained,
            "unfinished": unfinished,
        }

    def _stranded(self, keys: list[str]) -> list[str]:
        """The known bug ``dead_claim_settle_not_retried``: commands still claimed by a
        dead daemon after the running one's settling of dead claims met the queue's
        lock (it is tried once, at the start)."""
        assert self.operator is not None and self.journal is not None
        if self.strict or self.links.lock.failed["settle_dead_claims"] == self.settle_fails:
            return []  # the running daemon's own settling did not meet the lock
        pid = self.incarnations.identity()[0]
        out = []
        for key in keys:
            command = queue.get(self.journal, self.operator.queued[key])
            if command is not None and command.status == "claimed" and command.claimer_pid != pid:
                out.append(key)
        return out


def _doc(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None
