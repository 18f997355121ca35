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
from autoheal.core.state import RuntimeState, shift_deadlines, state_to_dict
from autoheal.daemon.clock import LoopClock
from autoheal.daemon.interpreter import Interpreter
from autoheal.guard.gate import TradingGate
from autoheal.sim import invariants as inv
from autoheal.sim.daemon import Incarnations, Seat, SimDaemon, claimer_identities
from autoheal.sim.disk import temp_root
from autoheal.sim.disk_acts import SimDisk, sim_disk
from autoheal.sim.escapes import EscapeWatch, watching
from autoheal.sim.files import EPOCH, MAX_RESTARTS, SERVICES, SimFiles
from autoheal.sim.links import LINK_SOMETIMES, Links, known_daemon_death
from autoheal.sim.operator import Operator
from autoheal.sim.plants import planted
from autoheal.sim.processes import SimProcessControl, foreign_harmed, write_heartbeats
from autoheal.sim.profile import ACTS, FaultProfile, draw_profile
from autoheal.sim.replay import Replayer
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
    "pid_reused",
    "claimer_died_settled",
    "command_expired",
    "key_replayed",
    "key_conflict_refused",
    "flags_garbage",
    "reload_valid",
    "reload_invalid",
    "gate_refused_while_halted",
    "liveness_dor",
    "liveness_latched",
    "power_loss",
    "power_loss_reverted_a_file",
    "crash_during_write",
    "disk_fault_struck",
    "event_fault_struck",
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
    allowed_escapes: Counter[str] = field(default_factory=Counter)
    """Calls that escape the simulation, allowed (:data:`autoheal.sim.escapes.ALLOWED`)."""


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
    script: list[dict[str, Any]] | None = None,
    escapes: bool = True,
    strict_escapes: bool = False,
) -> Outcome:
    """Run one seed for ``minutes`` virtual minutes (then the liveness phase).

    Args:
        plant: a planted bug to switch on (:data:`autoheal.sim.plants.PLANTS`).
        trace_path: write the trace there too.
        on_profile: called with the seed's profile before the run.
        strict: a known bug's violation fails the seed (else it is counted apart).
        script: replay these acts (the trace's ``do`` dicts, :mod:`autoheal.sim.script`)
            instead of drawing them; ``minutes`` is then unused. The seed still orders
            trio's scheduling, so a seed's own script replays its run exactly.
        escapes: watch for wall time, randomness, threads and real I/O reached from
            the daemon's code (:mod:`autoheal.sim.escapes`; False: faster, unwatched).
        strict_escapes: a known escape fails the seed too (else it is counted apart).
    """
    minutes = float(minutes)  # 2 and 2.0 are one run: the trace's header says 2.0
    rng = random.Random(seed)
    profile = draw_profile(rng)
    links = Links(rng, profile)
    if on_profile is not None:
        on_profile(profile)
    outcome = Outcome(seed, minutes, plant, profile)
    trace = Trace(trace_path)
    header = {"seed": seed, "minutes": minutes, "plant": plant, "profile": profile.to_doc()}
    if script is not None:
        header["script"] = len(script)
    trace.emit(header)
    started = time.perf_counter()
    incarnations = Incarnations()
    clock = MockClock(autojump_threshold=0)
    with (
        temp_root() as tmp,  # tmpfs when there is one
        _quiet(),
        _deterministic_trio(seed),
        claimer_identities(incarnations),
        sim_disk(
            Path(tmp),
            rng,
            clock.current_time,
            clock.jump,
            exempt=tuple(f"{s}.heartbeat.json" for s in SERVICES),
        ) as disk,
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
        sim.disk = disk
        sim.script = script
        with watching(on=escapes, strict=strict_escapes) as watch:
            sim.escapes = watch
            trio.run(sim.main, clock=clock)
        sim.escaped(outcome.virtual_s)  # heard after the last check (the daemon's last steps)
        outcome.allowed_escapes = watch.allowed
        _disk_coverage(disk, outcome)
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
        self.failsafe_saved = True
        """At the last daemon's death: its failsafe was in the durable state file."""
        self.crash_loop: set[str] = set()
        self.spawn_fail = False
        self.ignore_stop: set[str] = set()
        self.strict = False
        #: The acts to replay instead of drawing them (:func:`run_script`), or None.
        self.script: list[dict[str, Any]] | None = None
        self.escapes = EscapeWatch()
        self.tg: TaskGroup | None = None
        self.journal: Journal | None = None
        self.operator: Operator | None = None
        self.gate: TradingGate | None = None
        self.replayer: Replayer | None = None
        self.disk: SimDisk | None = None

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
        seat.steps.first_event = self._max_id()
        self.replayer = Replayer(seat.steps)
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
        if seat.resumed is not None:  # a failsafe its state file holds: entered back then
            self.clears.resumed(seat.steps.first_event, fleet=seat.resumed.set_by == "fleet")
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
        state = self._state()
        if state is not None and self.disk is not None:
            self.failsafe_saved = state.failsafe is None or self.disk.failsafe_saved(
                self.files.runtime_dir / layout.STATE
            )
        self.scope.cancel()
        await self.ended.wait()
        self._replay_check(self._state())  # what the daemon journaled until it ended
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
                script = None if self.script is None else iter(self.script)
                while not self.outcome.failures:
                    if script is None:  # drawn from the seed, until the minutes are up
                        if anyio.current_time() >= end:
                            break
                        gap = min(120.0, self.rng.expovariate(1.0 / self.profile.mean_gap_s))
                        await anyio.sleep(gap)
                        plan = {"gap": gap, **self._draw()}
                    else:  # replayed: the script's acts, each after its gap
                        replayed = next(script, None)
                        if replayed is None:
                            break
                        plan = replayed
                        await anyio.sleep(float(plan.get("gap", 0.0)))
                    self.step_no += 1
                    act = await self._do(plan)
                    await anyio.sleep(SETTLE_S)
                    self._check(act, plan)
                if not self.outcome.failures:
                    await self._liveness()
                self.outcome.virtual_s = anyio.current_time()
                await self._stop_daemon(sigkill=True)
                tg.cancel_scope.cancel()

    def _draw(self) -> dict[str, Any]:
        """The next step's act, drawn from the seed: every parameter, nothing done yet.

        What may be drawn depends on the state (a daemon that is down, a fault already
        on), as it always did; what is done depends on the returned dict alone
        (:meth:`_do`), so a script of these dicts replays the run without the generator.
        """
        rng, op = self.rng, self.operator
        assert op is not None
        now = anyio.current_time()
        if not self._up():
            if self.down_until is not None and now >= self.down_until:
                return {"act": "daemon_start"}
            if rng.random() < self.profile.fiddle_while_down:
                return op.draw_fiddle_while_down()
        weights = [self.profile.weights[a] for a in ACTS]
        name = rng.choices(ACTS, weights)[0]
        match name:
            case "crash":
                who = rng.choice(SERVICES)
                return {"act": "crash", "name": who, "code": rng.choice((1, 2, 137, -9, -11, 0))}
            case "crash_loop":
                who = rng.choice(SERVICES)
                on = who not in self.crash_loop
                code = rng.choice((1, 127)) if on else None
                return {"act": "crash_loop", "name": who, "on": on, "code": code}
            case "spawn_fail":
                return {"act": "spawn_fail", "on": not self.spawn_fail}
            case "slow_start":
                who = rng.choice(SERVICES)
                return {"act": "slow_start", "name": who, "delay": round(rng.uniform(1.0, 40.0), 3)}
            case "ignore_stop":
                who = rng.choice(SERVICES)
                return {"act": "ignore_stop", "name": who, "on": who not in self.ignore_stop}
            case "pid_reuse":
                return {"act": "pid_reuse", "name": rng.choice(SERVICES)}
            case "command" | "command_reused_key":
                return op.draw_command(reuse=name == "command_reused_key")
            case "stop_create":
                return op.draw_stop_create()
            case "flags_whole" | "flags_partial" | "flags_garbage":
                return op.draw_flags(name.removeprefix("flags_"))
            case "reload":
                return op.draw_reload()
            case "daemon_kill":
                if not self._up():
                    return {"act": "daemon_kill", "up": False}
                plan: dict[str, Any] = {"act": "daemon_kill"}
                if rng.random() < 0.5:
                    plan["command"] = op.draw_command(reuse=False)
                plan["passes"] = rng.randint(0, self.profile.kill_checkpoints_max)
                plan["down_s"] = self._draw_down()
                return plan
            case "power_loss":
                if not self._up():
                    return {"act": "power_loss"}
                return {"act": "power_loss", "down_s": self._draw_down()}
            case "fleet_partition" | "fleet_slow" | "http_fault" | "queue_lock":
                return self.links.draw(name)
            case "disk_fault":
                assert self.disk is not None
                return self.disk.draw_fault(rng, self.profile)
            case "event_fault":
                assert self.disk is not None
                return self.disk.draw_event_fault(rng, self.profile)
        return {"act": name}  # hang, stop_remove, daemon_term, wait: nothing to draw

    async def _do(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Perform the act ``plan`` holds (:meth:`_draw`); what the trace says of it.

        An act that no longer applies (a crash of a process that is not running, a
        kill of a daemon that is down) does nothing, as it did when it was drawn.
        """
        op, procs = self.operator, self.procs
        assert op is not None
        name = plan["act"]
        match name:
            case "daemon_start":
                if self._up():
                    return {"act": "daemon_start", "already_up": True}
                return await self._start_daemon()
            case "crash":
                who = plan["name"]
                if not procs.running(who):
                    return {"act": "crash", "name": who, "running": False}
                procs.exit(who, plan["code"])
                return {"act": "crash", "name": who, "code": plan["code"]}
            case "crash_loop":
                who, on = plan["name"], plan["on"]
                (self.crash_loop.add if on else self.crash_loop.discard)(who)
                procs.set_crash_on_start(who, plan["code"] if on else None)
                return {"act": "crash_loop", "name": who, "on": on}
            case "spawn_fail":
                self.spawn_fail = plan["on"]
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
                procs.slow_next[plan["name"]] = plan["delay"]
                return {"act": "slow_start", "name": plan["name"], "delay": plan["delay"]}
            case "ignore_stop":
                who, on = plan["name"], plan["on"]
                (self.ignore_stop.add if on else self.ignore_stop.discard)(who)
                procs.set_ignore_stop(who, on)
                return {"act": "ignore_stop", "name": who, "on": on}
            case "pid_reuse":
                who = plan["name"]
                pid = procs.reuse_pid_of(who)
                self.outcome.coverage["pid_reused"] += pid is not None
                return {"act": "pid_reuse", "name": who, "reused": pid is not None}
            case "command":
                act = op.command(plan)
                self.outcome.coverage.update(
                    {
                        "key_replayed": act["outcome"] == "duplicate",
                        "key_conflict_refused": act["outcome"] == "conflict",
                    }
                )
                return act
            case "stop_create":
                return op.stop_create(plan)
            case "stop_remove":
                return op.stop_remove()
            case "flags_whole" | "flags_partial" | "flags_garbage":
                self.outcome.coverage["flags_garbage"] += name == "flags_garbage"
                return op.flags(plan)
            case "reload":
                act = op.reload(plan)
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
                return self.links.act(plan, self.files)
            case "daemon_kill":
                return await self._kill(plan)
            case "power_loss":
                return await self._power_loss(plan)
            case "disk_fault":
                assert self.disk is not None
                return self.disk.fault(plan, anyio.current_time())
            case "event_fault":
                assert self.disk is not None
                return self.disk.event_fault(plan, anyio.current_time())
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

    async def _kill(self, plan: dict[str, Any]) -> dict[str, Any]:
        op = self.operator
        assert op is not None
        if not self._up() or plan.get("up") is False:
            return {"act": "daemon_kill", "up": False}
        doc: dict[str, Any] = {"act": "daemon_kill"}
        if "command" in plan:
            doc["command"] = op.command(plan["command"])
        passes = int(plan.get("passes", 0))
        for _ in range(passes):
            await anyio.lowlevel.checkpoint()
        assert self.disk is not None
        self.outcome.coverage["crash_during_write"] += self.disk.writing()
        await self._stop_daemon(sigkill=True)
        self.outcome.coverage["daemon_killed"] += 1
        down = float(plan.get("down_s", 0.0))
        self.down_until = anyio.current_time() + down
        doc.update(passes=passes, down_s=down)
        if down == 0.0:
            doc["restart"] = await self._start_daemon()
        return doc

    def _draw_down(self) -> float:
        """How long a killed daemon stays down (virtual s; 0: it restarts at once)."""
        return round(self.rng.uniform(0.0, self.profile.downtime_max_s), 3)

    async def _power_loss(self, plan: dict[str, Any]) -> dict[str, Any]:
        """The host loses power: the daemon and every service die at once (SIGKILL),
        and every modelled file is what the disk had made durable; the daemon comes
        back after a drawn downtime, as after a kill."""
        assert self.disk is not None
        up = self._up()
        self.outcome.coverage["crash_during_write"] += self.disk.writing()
        await self._stop_daemon(sigkill=True)
        for who in SERVICES:
            if self.procs.running(who):
                self.procs.exit(who, -9)
        reverted = self.disk.power_loss()
        self.outcome.coverage["power_loss"] += 1
        self.outcome.coverage["power_loss_reverted_a_file"] += bool(reverted)
        doc: dict[str, Any] = {"act": "power_loss", "up": up, "reverted": reverted}
        if up:
            down = float(plan.get("down_s", 0.0))
            self.down_until = anyio.current_time() + down
            doc["down_s"] = down
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

    def _counted_apart(self, bug: str) -> bool:
        """A violation that is an instance of ``bug`` is counted apart (a known bug)."""
        return not self.strict and bug in inv.KNOWN_BUGS

    def _replay_check(self, held: RuntimeState | None) -> None:
        if self.replayer is not None and self.journal is not None:
            for line in self.replayer.check(self.journal, held):
                self._fail("replay_same_transitions", line)

    def escaped(self, t: float | None = None) -> None:
        """Each escape heard since the last look fails the seed."""
        for line in self.escapes.take():
            self._fail("escape", line, t=t)

    def _fail(self, invariant: str, detail: str, *, t: float | None = None) -> None:
        if t is None:
            t = anyio.current_time()
        failure = {
            "t": round(t, 3),
            "step": self.step_no,
            "invariant": invariant,
            "detail": detail,
        }
        self.outcome.failures.append(failure)
        self.trace.emit({"failure": failure})

    def _check(self, act: dict[str, Any], plan: dict[str, Any] | None = None) -> None:
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
            if e.kind == "command.rejected" and e.reason == "expired":
                cov["command_expired"] += 1
        files = self.files
        stop_raw = files.read(files.stop_file)
        flags_raw = files.read(files.flags)
        docs = {
            layout.STOP_FILE_DEFAULT: stop_raw,
            layout.FLAGS: flags_raw,
            layout.HEALTH: files.read(files.runtime_dir / layout.HEALTH),
            layout.STATE: files.read(files.runtime_dir / layout.STATE),
        }
        torn = inv.whole_documents(docs, self.operator.by_hand)
        if self.disk is not None and self._counted_apart("document_empty_after_power_loss"):
            for _name, line in self.disk.emptied_by_power_loss(torn, docs):
                torn.remove(line)
                bug = "document_empty_after_power_loss"
                self.outcome.known[bug] += 1
                self.trace.emit({"known_bug": bug, "detail": line})
        found.append(("whole_documents", torn))
        self.gate.invalidate()
        answer = self.gate.allowed("buy")
        refused = inv.halted_refuses_buy(stop_raw is not None, flags_raw, answer)
        found.append(("halted_refuses_buy", refused))
        if not answer[0] and (stop_raw is not None):
            cov["gate_refused_while_halted"] += 1
        state = self._state()
        self._replay_check(state)
        held = self.seat.pids().values() if self.seat is not None and state is not None else ()
        found.append(("never_harms_another_program", foreign_harmed(self.procs, held)))
        flags_by_hand = flags_raw is not None and flags_raw == self.operator.by_hand.get(
            layout.FLAGS
        )
        excused_now = self.disk is not None and self.disk.excused(anyio.current_time())
        fleet = self.links.check(state, answer, flags_by_hand, self.clears.made, excused_now)
        found.append(("fleet_halt_refuses_buy", fleet))
        seen: dict[str, Any] = {"up": state is not None, "stop": stop_raw is not None}
        if state is None and cleared_now:
            self.prev_failsafe = False  # cleared before the daemon died: seen by the ledger
        if state is not None:
            attempts = {n: cs.attempts for n, cs in state.components.items()}
            found.append(("restart_budget", inv.within_budget(attempts, MAX_RESTARTS)))
            found.append(("saved_state_durable", self._saved_state_durable(state)))
            failsafe = state.failsafe is not None
            if self.prev_failsafe and not failsafe and not cleared_now:
                line = "the failsafe ended without a clear"
                lost = "failsafe_lost_when_the_state_write_failed"
                if self.failsafe_saved or not self._counted_apart(lost):
                    found.append(("only_operator_clears", [line]))
                else:  # its state write failed, then the daemon died: a known bug
                    bug = "failsafe_lost_when_the_state_write_failed"
                    self.outcome.known[bug] += 1
                    self.trace.emit({"known_bug": bug, "detail": line})
            self.prev_failsafe = failsafe
            flags_doc = _doc(flags_raw)
            excused = self.disk is not None and self.disk.excused(anyio.current_time())
            if not excused and (
                flags_raw is None or flags_raw != self.operator.by_hand.get(layout.FLAGS)
            ):
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
        step_line: dict[str, Any] = {
            "i": self.step_no,
            "t": round(anyio.current_time(), 3),
            "act": act,
            "seen": seen,
        }
        if plan is not None:
            step_line["do"] = plan  # everything needed to redo the act (autoheal.sim.script)
        self.trace.emit(step_line)
        self.outcome.steps = self.step_no
        for invariant, lines in found:
            for line in lines:
                self._fail(invariant, line)
        self.escaped()

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
        if self.disk is not None:
            self.disk.quiet(anyio.current_time())
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

    def _saved_state_durable(self, state: RuntimeState) -> list[str]:
        persist = self.seat.persist if self.seat is not None else None
        if persist is None or persist.state_dirty or self.disk is None:
            return []
        expected = state_to_dict(shift_deadlines(state, persist.to_wall()))
        path = self.files.runtime_dir / layout.STATE
        return inv.saved_state_durable(self.disk.ledger.durable_bytes(path), expected)

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
        if self.strict or "dead_claim_settle_not_retried" not in inv.KNOWN_BUGS:
            return []  # fixed: a settling that met the lock is tried again at each poll
        if self.links.lock.failed["settle_dead_claims"] == self.settle_fails:
            return []  # the running daemon's own settling did not meet the lock
        pid = self.incarnations.identity()[0]
        out = []
        for key in keys:
            command = queue.get(self.journal, self.operator.queued[key])
            if command is not None and command.status == "claimed" and command.claimer_pid != pid:
                out.append(key)
        return out


def _disk_coverage(disk: SimDisk, outcome: Outcome) -> None:
    outcome.coverage["disk_fault_struck"] += sum(disk.faults.struck.values())
    outcome.coverage["event_fault_struck"] += sum(disk.events.struck.values())
    for kind, n in disk.faults.struck.items():
        outcome.coverage[f"disk_{kind}"] += n
    for kind, n in disk.events.struck.items():
        outcome.coverage[f"event_{kind}"] += n


def _doc(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None
