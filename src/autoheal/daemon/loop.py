"""The daemon: one anyio task group that probes, feeds the core, and executes its actions.

Shape (STYLE.md §3): every source of facts is its own task and sends observations
into one memory stream — probe runners (``probing``), one exit watcher per live
process (``services``), the command poller (``commands``), the kill-switch
watcher (``killswitch``), the signal receiver. A single consumer calls
:func:`autoheal.core.step` and executes the returned actions in order: file,
log and notice actions at once (``effects``); process work (stop, clean, start)
in its own task per component, reporting back as ``SpawnFinished``, so a
30-second stop grace never stalls probing or the kill switch.
"""

from __future__ import annotations

import functools
import gc
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from autoheal.config import Config
from autoheal.core import (
    CommandRefusedError,
    ConfigReloaded,
    DeadlineReached,
    FleetDetached,
    IllegalCommandError,
    Observation,
    SpawnFinished,
    step,
)
from autoheal.core.actions import (
    Action,
    ClearAlert,
    RaiseAlert,
    RestartProcess,
    SendNotice,
    StartProcess,
    StopProcess,
)
from autoheal.core.liveness import stale_after_s
from autoheal.core.machine import dor, flags_for
from autoheal.core.queries import starts_at_boot
from autoheal.core.stages import Stage
from autoheal.core.state import RuntimeState, initial_state
from autoheal.core.switch import SwitchWrite
from autoheal.daemon import files, wiring
from autoheal.daemon.commands import CommandBridge, PendingCommand
from autoheal.daemon.effects import Effects
from autoheal.daemon.health import HEALTH_REFRESH_S, build_health, content_key
from autoheal.daemon.injector import FaultInjector, InjectorFactory, InjectorPorts
from autoheal.daemon.killswitch import FileLayer, KillSwitch
from autoheal.daemon.probing import Probing
from autoheal.daemon.services import Services
from autoheal.procs import ProcessControl, ProcessControlLike, ServiceSpec
from autoheal.store import layout as runtime_files
from autoheal.store.alerts import clear_alert
from autoheal.store.atomic import write_json_atomic
from autoheal.store.journal import JOURNAL_FILENAME, Journal
from autoheal.store.lock import LockHeldError, RuntimeLock
from autoheal.terminal import clean

log = logging.getLogger("autoheal")

#: Heartbeats between checks of the services' log sizes (rotation also happens at each start).
LOG_ROTATE_EVERY = 10
#: Sent by the heartbeat through the observation queue each beat: the consumer turns.
BEAT = object()
#: The most queued items applied before the state is saved and health written.
_BATCH_MAX = 1000
#: While the kill-switch watch runs, a beat reads the kill-switch files every this many.
RECONCILE_EVERY = 10
#: The most of the consumer's time that saving the state and the health document may
#: take: 0.3 ms flushes (10 services) run at once, 15 ms ones (500) at most every 150 ms.
FLUSH_DUTY = 0.1


class Daemon:
    """Runs one runtime directory. Construct, then ``await daemon.run()``.

    It owns the core's state and the one consumer loop; everything with a concern of
    its own (processes, probes, effects, commands, the kill switch, chaos) lives in
    its own object and talks back through ``observe`` and ``apply``.
    """

    def __init__(
        self,
        config: Config,
        *,
        chaos: InjectorFactory | None = None,
        one_shot: bool = False,
        procs: ProcessControlLike | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        freeze_gc: bool = False,
    ) -> None:
        self.config = config
        self.chaos = chaos is not None
        # A whole-process decision: only ``autoheal run``, which owns its process, asks.
        self.freeze_gc = freeze_gc
        self.clock = clock
        self.wall = wall
        self.runtime_dir = config.paths.runtime_dir
        self.stop_file = config.paths.stop_file
        self.policy = wiring.build_policy(config)
        self.state: RuntimeState = initial_state(self.policy)
        self.wake_at: float | None = None
        self.specs: dict[str, ServiceSpec] = {
            name: wiring.service_spec(config, svc) for name, svc in config.services.items()
        }
        self.journal: Journal | None = None
        self.notifier: Any = None
        self.metrics: Any = None
        self._tg: TaskGroup | None = None
        self.effects = Effects(
            self.runtime_dir,
            wall=wall,
            journal=lambda: self.journal,
            notifier=lambda: self.notifier,
        )
        self.commands = CommandBridge(
            journal=lambda: self.journal,
            submit=self._send_item,
            apply=self.apply,
            notify=self.effects.notify,
            injector=lambda: self.chaos_handler,
        )
        self.killswitch = KillSwitch(
            FileLayer(self.runtime_dir, self.stop_file),
            state=lambda: self.state,
            apply=self.apply,
            execute=self.effects.execute,
            journal_event=self.journal_event,
            clock=clock,
            wall=wall,
        )
        self.services = Services(
            self.specs,
            procs or ProcessControl(),
            observe=self.observe,
            journal_event=self.journal_event,
            task_group=lambda: self._tg,
            watch_exits=not one_shot,
        )
        self.probing = Probing(
            observe=self.observe,
            verdict=self._verdict,
            journal_event=self.journal_event,
            clock=clock,
            metrics=lambda: self.metrics,
        )
        self.started_at = wall()
        self.loop_lag = 0.0
        self.last_iteration = clock()
        self.ready = False
        self.stopping = False
        self._health_dirty = True
        self._state_dirty = False
        self._batching = False
        self._in_flight = 0  # process actions (stop, start, restart) running
        self._flush_after = -math.inf  # the consumer's next flush may run from then
        self._watching = False  # the kill-switch watch runs (then a beat need not read)
        self._switch_in_health: object = None
        self._health_key = b""
        self._health_written_at = -math.inf
        self.last_health: dict[str, Any] | None = None
        self._send: Any = None
        self._reload_lock = anyio.Lock()
        self._config_sig = self._config_signature()
        # Handed in by the CLI (``run --chaos``); the daemon never imports autoheal.chaos.
        self.chaos_handler: FaultInjector | None = None
        if chaos is not None:
            self.chaos_handler = chaos(
                InjectorPorts(
                    config=lambda: self.config,
                    runtime_dir=self.runtime_dir,
                    services=self.services,
                    succeed=self.commands.succeed,
                    fail=lambda pending, reason, message, refused: self.commands.fail_reason(
                        pending, reason, message, refused=refused
                    ),
                    journal_event=self.journal_event,
                )
            )

    # ------------------------------------------------------------------ files

    def to_wall(self) -> float:
        return self.wall() - self.clock()

    def save_state(self) -> None:
        # A failed write stays due: the next flush (each beat at the latest) tries again.
        self._state_dirty = not files.save_state(
            self.runtime_dir, self.state, to_wall=self.to_wall(), now_wall=self.wall()
        )

    def flush(self) -> None:
        """Save the state and write the health document once for a batch of changes.

        While :attr:`_batching` (the consumer draining its queue, the start-up), ``apply``
        leaves both to this: at 500 services, a save and a health document per
        observation made the start quadratic. The kill-switch files are never batched.
        """
        started = self.clock()
        if self._state_dirty:
            self.save_state()
        if self._health_dirty:
            self.write_health()
        ended = self.clock()
        self._flush_after = ended + (ended - started) * (1 / FLUSH_DUTY - 1)
        if self._dirty():  # a write failed (logged): the beats retry it, not a busy loop
            retry_at = ended + self.config.daemon.heartbeat_interval
            self._flush_after = max(self._flush_after, retry_at)

    def health_doc(self) -> dict[str, Any]:
        doc = build_health(
            self.state,
            self.policy,
            readings=self.probing.readings,
            pids=self.services.pids(),
            to_wall=self.to_wall(),
            now_wall=self.wall(),
            daemon={
                "pid": os.getpid(),
                "started_at": self.started_at,
                "loop_lag_s": round(self.loop_lag, 6),
                "chaos": self.chaos,
                "config": str(self.config.path),
                "ready": self.ready,
                "stopped": self.stopping,
            },
            kill_switch=self.killswitch.health(to_wall=self.to_wall()),
        )
        if self.stopping:
            # The last document a stopping daemon writes: nothing supervises the runtime any
            # more (and its services are stopped), so it must not read as ready to trade.
            doc["dor"] = False
        return doc

    def write_health(self) -> None:
        """Build the health document; write it when what it says changed (or to refresh it).

        The status page and ``/metrics`` get every document built, written or not.
        """
        self._switch_in_health = self.killswitch.switch
        doc = self.health_doc()
        # The status page streams this very object: the page and the file cannot disagree.
        self.last_health = doc
        key = content_key(doc)
        now = self.clock()
        if key == self._health_key and now - self._health_written_at < HEALTH_REFRESH_S:
            self._health_dirty = False
            return
        if files.write_health(self.runtime_dir, doc):
            self._health_dirty = False
            self._health_key, self._health_written_at = key, now

    def recent_events(self, limit: int = 10) -> list[dict[str, Any]]:
        """The last journal events, newest first, as one line each (for the status page)."""
        if self.journal is None:
            return []
        out = []
        for event in reversed(self.journal.events(limit=limit)):
            data = event.data or {}
            detail = data.get("message") or (
                f"{data['from']}->{data['to']}" if "from" in data and "to" in data else ""
            )
            what = " ".join(str(x) for x in (event.component, event.reason, detail) if x)
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.ts))
            out.append({"when": when, "kind": event.kind, "what": what})
        return out

    def submit_command(self, kind: str, target: str, reason: str, actor: str) -> str:
        """Queue an operator command (the status page's buttons), as the CLI does.

        A breaker reset is the CLI's own durable path (``autoheal breaker reset --all``):
        submitted, claimed and run under the guard's file lock, on its own journal
        connection; the caller runs it in a worker thread.
        """
        from autoheal.store import commands as queue

        if kind == "breaker_reset":
            from autoheal.guard.breaker_reset import ALL, submit_reset

            command = submit_reset(
                self.config.paths.runtime_dir, [ALL], reason=reason, user=actor, timeout=5.0
            )
            return str(command.id)
        assert self.journal is not None
        submitted = queue.submit(self.journal, kind, target, {"reason": reason}, actor)
        self.commands.poke()
        return submitted.command.id

    # ------------------------------------------------------------------ the core

    async def observe(self, obs: Observation) -> None:
        await self._send.send(obs)

    async def _send_item(self, pending: PendingCommand) -> None:
        """A claimed command joins the observations: one consumer applies both in order."""
        await self._send.send(pending)

    def _verdict(self, target: str, probe: str) -> bool | None:
        holder = self.state.components.get(target) or self.state.dependencies.get(target)
        ps = None if holder is None else holder.probes.get(probe)
        return None if ps is None else ps.ok

    def apply(self, obs: Observation, command: PendingCommand | None = None) -> bool:
        """Step the core and execute its actions. Returns False when a command was refused."""
        try:
            decision = step(self.state, obs, self.clock(), self.policy)
        except (IllegalCommandError, CommandRefusedError) as exc:
            if command is not None:
                self.commands.fail(command, exc)
            return False
        changed = decision.state != self.state
        self.state, self.wake_at = decision.state, decision.wake_at
        for action in decision.actions:
            self.execute(action, command)
        if changed:
            self._health_dirty = True
            self._state_dirty = True
            if not self._batching or command is not None:  # saved before it is answered
                self.save_state()
        if command is not None and not command.waits_for_process:
            self.commands.succeed(command, {"dor": dor(self.state, self.policy)})
        return True

    def execute(self, action: Action, command: PendingCommand | None) -> None:
        if isinstance(action, RestartProcess | StartProcess | StopProcess):
            if command is not None:
                command.waits_for_process = True
            assert self._tg is not None
            self._tg.start_soon(self._process_action, action, command)
        else:
            if isinstance(action, SwitchWrite):
                self.killswitch.write(action)
            else:
                self.effects.execute(action)
            if isinstance(action, SwitchWrite | RaiseAlert | ClearAlert):
                self._health_dirty = True

    def journal_event(self, kind: str, **fields: Any) -> None:
        self.effects.journal_event(kind, **fields)

    def notify(self, action: SendNotice) -> None:
        self.effects.notify(action)

    # ------------------------------------------------------------------ processes

    async def _process_action(
        self, action: RestartProcess | StartProcess | StopProcess, command: PendingCommand | None
    ) -> None:
        self._in_flight += 1
        try:
            await self._process_action_now(action, command)
        finally:
            self._in_flight -= 1

    async def _process_action_now(
        self, action: RestartProcess | StartProcess | StopProcess, command: PendingCommand | None
    ) -> None:
        name = action.component
        async with self.services.busy(name):
            self.services.forget_own_exits(name)
            if isinstance(action, RestartProcess | StopProcess):
                await self.services.stop(name, action.reason)
            if isinstance(action, StopProcess):
                if command is not None:
                    self.commands.succeed(command, {"stopped": name})
                self._health_dirty = True
                return
            ok, reason = await self.spawn_new(name)
            self._health_dirty = True
            await self.observe(SpawnFinished(name, ok, reason))
            self.probing.poke(name)
            if command is not None:
                identity = self.services.identity(name)
                if ok:
                    pid = identity.pid if identity else None
                    self.commands.succeed(command, {"component": name, "pid": pid})
                else:
                    self.commands.fail_reason(command, reason)

    async def spawn_new(self, name: str) -> tuple[bool, str]:
        """Start ``name``; a replaced process's heartbeat must not verify its successor."""
        stale = tuple(pc.path for pc in self.config.services[name].probes if pc.path is not None)
        return await self.services.start(name, stale_files=stale)

    async def _adopt_or_start(self) -> None:
        """At start: adopt what a previous daemon left running, start what should run.

        The state is saved once at the end (:meth:`flush`), not once per service.
        """
        self._batching = True
        try:
            await self._adopt_or_start_each()
        finally:
            self._batching = False
        self.flush()

    async def _adopt_or_start_each(self) -> None:
        for name in wiring.start_order(self.config):
            if await self.services.adopt(name):
                self.apply(SpawnFinished(name, True))
                continue
            autostart = self.config.services[name].autostart
            if not starts_at_boot(self.state.components[name], autostart=autostart):
                continue
            ok, reason = await self.spawn_new(name)
            self.apply(SpawnFinished(name, ok, reason))

    def restart_probes(self) -> None:
        assert self._tg is not None
        known = set(self.state.components) | set(self.state.dependencies)
        self.probing.restart(self._tg, self.config, known)

    # ------------------------------------------------------------------ config reload

    def _config_signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.config.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _config_changed(self) -> bool:
        """Whether the config file changed since it was last (re)loaded."""
        return self._config_signature() != self._config_sig

    async def _reload(self) -> None:
        """Validate the config file again; the core decides what the change means."""
        from autoheal.daemon import reload

        async with self._reload_lock:
            # Taken before reading, so an edit during the reload is seen next time.
            self._config_sig = self._config_signature()
            outcome = reload.plan_reload(self.config, self.specs)
            if outcome.live and self.chaos_handler is not None:
                # First, before anything else changes, and even if the rest is refused.
                await self.chaos_handler.disable(
                    "environment_live",
                    f'environment = "live" since a config reload ({self.config.path}): '
                    "chaos is refused",
                )
            if isinstance(outcome, reload.ReloadRefused):
                reload.refuse(
                    outcome.problem,
                    runtime_dir=self.runtime_dir,
                    config_path=self.config.path,
                    wall=self.wall,
                    journal_event=self.journal_event,
                )
                return
            clear_alert(self.runtime_dir, reload.ALERT)
            self.config = outcome.config
            self.specs.update(outcome.specs)  # removed ones stay until they are stopped
            self.policy = outcome.policy
            self.apply(ConfigReloaded(outcome.changed))
            self.restart_probes()
            self.save_state()
            self.write_health()
            added, removed = list(outcome.added), list(outcome.removed)
            changed = sorted(outcome.changed)
            log.info("config_reloaded added=%s removed=%s changed=%s", added, removed, changed)
            self.journal_event(
                "config_reloaded", data={"added": added, "removed": removed, "changed": changed}
            )

    # ------------------------------------------------------------------ periodic

    async def _heartbeat(self, notifier: Any) -> None:
        interval = self.config.daemon.heartbeat_interval
        next_at = self.clock()
        seq = 0
        while True:
            next_at += interval
            await anyio.sleep(max(0.0, next_at - self.clock()))
            self.loop_lag = max(0.0, self.clock() - next_at)
            if next_at < self.clock() - interval:
                next_at = self.clock()
            seq += 1
            await self._send.send(BEAT)  # the consumer's proof of life (loop_healthy)
            files.write_daemon_heartbeat(
                self.runtime_dir, seq=seq, loop_lag=self.loop_lag, now_wall=self.wall()
            )
            # The watch hears the kill-switch files at once: reading them every beat is a
            # safety net needed only while it does not run, and every few beats in case
            # it missed something. Failed writes are retried on time either way (sync).
            if not self._watching or seq % RECONCILE_EVERY == 0 or self.killswitch.latch_changed():
                self.killswitch.reconcile()
            else:
                self.killswitch.sync()
            # The config is compared each beat (one stat): a reload within a second of an
            # edit, without a watcher thread waking the interpreter all the time.
            if self._config_changed() and not self._reload_lock.locked():
                log.info("config_changed path=%s", self.config.path)
                assert self._tg is not None
                self._tg.start_soon(self._reload)
            if seq % LOG_ROTATE_EVERY == 0:
                assert self._tg is not None
                self._tg.start_soon(self.services.rotate_logs)
            if not self.ready and self._all_probed():
                self.ready = True
                self._health_dirty = True
                notifier.ready(self.summary())
                log.info("ready %s", self.summary())
            # The document is built when something in it may have changed, for the status
            # page's live stream, and to refresh its readings; not for nothing at 500 services.
            if (
                self._health_dirty
                or self.killswitch.switch != self._switch_in_health
                or self.config.daemon.status_listen is not None
                or self.clock() - self._health_written_at >= HEALTH_REFRESH_S
            ):
                self.write_health()
            if getattr(notifier, "enabled", True):
                notifier.status(self.summary())

    def _on_watching(self, watching: bool) -> None:
        self._watching = watching
        self.commands.watching(watching)

    def _all_probed(self) -> bool:
        return self.probing.all_reported() and all(
            self.services.running(n) or cs.held or cs.stage is not Stage.OBSERVE
            for n, cs in self.state.components.items()
        )

    def summary(self) -> str:
        failing = [n for n, cs in self.state.components.items() if cs.stage is not Stage.OBSERVE]
        flags = flags_for(self.state)
        return (
            f"DOR={'true' if dor(self.state, self.policy) else 'false'} mode={flags.mode} "
            f"components={len(self.state.components)} not_observe={','.join(failing) or '-'}"
        )

    def loop_healthy(self) -> bool:
        return self.clock() - self.last_iteration < stale_after_s(
            self.config.daemon.heartbeat_interval
        )

    async def _signals(self, signals: Any, cancel: anyio.CancelScope) -> None:
        async for signum in signals:
            if signum == signal.SIGHUP:
                log.info("sighup: reloading %s", self.config.path)
                await self._reload()
                continue
            log.info("shutdown signal=%s", signal.Signals(signum).name)
            cancel.cancel()
            return

    # ------------------------------------------------------------------ main

    def _open(self, journal: Journal, *, webhooks: bool) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        (self.runtime_dir / "logs").mkdir(exist_ok=True)
        self.journal = journal
        self.notifier = self._make_notifier(webhooks=webhooks)
        for folder in {self.runtime_dir, self.stop_file.parent, self.runtime_dir / "runtime"}:
            files.remove_stale_temp_files(folder, now_wall=self.wall())
        restored = files.load_state(self.runtime_dir, self.policy, to_wall=self.to_wall())
        if restored is not None:
            self.state = restored

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        from autoheal.daemon.systemd import SystemdNotifier

        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        lock = RuntimeLock(self.runtime_dir)
        lock.acquire()
        notifier = SystemdNotifier.from_env(unset_environment=True)
        try:
            self._open(
                Journal.open(self.runtime_dir, group=self.config.daemon.journal_group),
                webhooks=True,
            )
            send, receive = anyio.create_memory_object_stream[Any](max_buffer_size=10_000)
            self._send = send
            shutdown = anyio.CancelScope()
            # The receiver stays open until the services are stopped: a second SIGTERM
            # during shutdown is then queued and ignored, where the default action would
            # kill the daemon half-way and orphan the services it was stopping.
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
                try:
                    with shutdown:
                        async with send, receive, anyio.create_task_group() as tg:
                            self._tg = tg
                            tg.start_soon(self._signals, sigs, shutdown)
                            await self._start(tg, notifier)
                            task_status.started()
                            await self._consume(receive)
                finally:
                    await self._shutdown(notifier)
        finally:
            lock.release()
            log.info("stopped")

    async def _start(self, tg: TaskGroup, notifier: Any) -> None:
        """Everything between taking the lock and serving: order matters here."""
        from autoheal.daemon.systemd import watchdog_loop

        # A failsafe on disk survives the daemon; nothing on disk loosens the resumed state.
        self.killswitch.reconcile(startup=True)
        await self._adopt_or_start()
        self.probing.start(tg, self.config)
        tg.start_soon(self._heartbeat, notifier)
        tg.start_soon(
            functools.partial(
                self.killswitch.watch,
                on_journal_change=self.commands.poke,
                journal_names={JOURNAL_FILENAME, f"{JOURNAL_FILENAME}-wal"},
                on_watching=self._on_watching,
            )
        )
        tg.start_soon(self.commands.poll)
        if self.chaos_handler is not None:
            self.chaos_handler.start(tg)
        sender = getattr(self.notifier, "sender", None)
        if sender is not None:
            tg.start_soon(sender.run)
        self._start_alertmanager(tg)
        if self.config.fleet is not None:  # Redis is imported only with [fleet]
            from autoheal.daemon.fleet import FleetAgent

            agent = FleetAgent(
                self.config.fleet, observe=self.observe, execute=self.effects.execute,
                state=lambda: self.state, health=self.health_doc,
                journal_event=self.journal_event, beat=self.config.daemon.heartbeat_interval,
                clock=self.clock, wall=self.wall,
            )  # fmt: skip
            tg.start_soon(agent.run)
        elif self.state.fleet.lost:  # [fleet] removed: nothing will ever read the switch again
            self.apply(FleetDetached())
        await self._start_status_server(tg)
        interval = notifier.watchdog_interval()
        if interval:
            tg.start_soon(
                functools.partial(watchdog_loop, notifier, self.loop_healthy, interval=interval / 2)
            )
        self.save_state()
        self.write_health()
        # Beat 0: a started daemon has a heartbeat at once, not one interval later, so
        # a reader that sees its health document also finds its proof of life.
        files.write_daemon_heartbeat(self.runtime_dir, seq=0, loop_lag=0.0, now_wall=self.wall())
        # What start-up built (config, specs, probe runners, tasks) lives as long as the
        # daemon: out of the collector's way, a full collection at 500 services stops
        # the loop for tens of milliseconds less (benchmarks/scale.py, loop lag).
        if self.freeze_gc:
            gc.collect()
            gc.freeze()
        log.info(
            "started pid=%d runtime_dir=%s chaos=%s %s",
            os.getpid(),
            self.runtime_dir,
            self.chaos,
            self.summary(),
        )

    async def _shutdown(self, notifier: Any) -> None:
        self.stopping = True
        self.services.stopping = True
        notifier.stopping()
        with anyio.CancelScope(shield=True):
            if self.chaos_handler is not None:
                await self.chaos_handler.heal_all()
            if self.config.daemon.stop_services_on_exit:
                await self.services.stop_all(wiring.stop_waves(self.config))
            self.save_state()
            self.write_health()
        if self.journal is not None:
            self.journal.close()

    async def run_command(self, pending: PendingCommand, journal: Journal) -> None:
        """Direct mode: apply one command and wait for its process work (no daemon loop)."""
        self._open(journal, webhooks=False)
        self.killswitch.reconcile(startup=True)
        send, receive = anyio.create_memory_object_stream[Any](max_buffer_size=100)
        self._send = send
        async with receive:
            async with send, anyio.create_task_group() as tg:
                self._tg = tg
                for name in self.specs:
                    await self.services.adopt(name)
                self.commands.execute(pending)
            # process actions reported back (SpawnFinished); apply what they said
            async for obs in receive:
                self.apply(obs)
        self.save_state()
        self.write_health()

    def _make_notifier(self, *, webhooks: bool) -> Any:
        from autoheal.daemon.notify import NotificationLog, Notifier, WebhookSender, WebhookSpec

        sender = None
        if self.config.webhooks and webhooks and self.journal is not None:
            specs = [
                WebhookSpec(
                    name=w.name,
                    url=w.url,
                    format=w.format,
                    secret_env=w.secret_env,
                    timeout=w.timeout,
                )
                for w in self.config.webhooks
            ]
            outbox = [spec for spec in specs if spec.format != "alertmanager"]
            sender = WebhookSender(outbox, self.journal) if outbox else None
        return Notifier(NotificationLog(self.runtime_dir / runtime_files.NOTIFICATIONS), sender)

    def _start_alertmanager(self, tg: TaskGroup) -> None:
        """Alertmanagers get state (the health document's problems), not events."""
        specs = [w for w in self.config.webhooks if w.format == "alertmanager"]
        if not specs:
            return
        import socket

        from autoheal.daemon.alertmanager import AlertmanagerPusher
        from autoheal.daemon.notify import WebhookSpec

        pusher = AlertmanagerPusher(
            [WebhookSpec(w.name, w.url, w.format, w.secret_env, w.timeout) for w in specs],
            self.health_doc,
            instance=socket.gethostname(),
        )
        tg.start_soon(pusher.run)

    async def _start_status_server(self, tg: TaskGroup) -> None:
        listen = self.config.daemon.status_listen
        if listen is None:
            return
        from autoheal.core.admission import budget_for_fds
        from autoheal.web.connections import fd_soft_limit
        from autoheal.web.metrics import Metrics, serve_status
        from autoheal.web.statuspage import StatusPage

        # The server's connections are sized from the descriptor limit, leaving the
        # supervisor enough to spawn, journal and write the kill switch (issue 18 A2).
        budget = budget_for_fds(fd_soft_limit(), len(self.config.services))
        log.info(
            "status_connections max=%d fd_soft_limit=%s",
            budget.limits.max_connections,
            budget.soft_limit if budget.soft_limit is not None else "unlimited",
        )
        if budget.short:
            log.warning(
                "fd_limit_low soft=%s needed=%d; raise it (LimitNOFILE= in the unit)",
                budget.soft_limit,
                budget.needed,
            )
        metrics = Metrics(self.health_doc)
        self.metrics = metrics
        token_env = self.config.daemon.status_token_env
        token = os.environ.get(token_env) if token_env else None
        if token_env and not token:
            log.error("status_token_missing env=%s; the status page stays read-only", token_env)
        page = StatusPage(
            lambda: self.last_health,
            self.recent_events,
            stale_after_s=stale_after_s(self.config.daemon.heartbeat_interval),
            token=token or None,
            submit=self.submit_command,
        )
        port = await tg.start(
            functools.partial(serve_status, page=page, limits=budget.limits),
            listen[0],
            listen[1],
            metrics,
            self.health_doc,
        )
        write_json_atomic(
            self.runtime_dir / runtime_files.STATUS_ENDPOINT,
            {"host": listen[0], "port": port},
            durable=False,
        )
        log.info("status_endpoint listening=%s:%s", listen[0], port)

    async def _consume(self, receive: Any) -> None:
        """The one consumer: observations and commands in order, and the core's deadlines.

        It sleeps until an item arrives or the core's ``wake_at``, never on a tick: the
        heartbeat's :data:`BEAT` is what proves each second that it still turns.
        """
        while True:
            self.last_iteration = self.clock()
            now = self.clock()
            timeout = math.inf
            if self.wake_at is not None:
                timeout = max(0.0, self.wake_at - now)
            if self._dirty() and self._in_flight == 0:
                timeout = min(timeout, max(0.0, self._flush_after - now))
            item = None
            with anyio.move_on_after(timeout):
                item = await receive.receive()
            self._batching = True
            try:
                self._take(DeadlineReached() if item is None else item)
                # What else is queued already joins this batch: one save, one document.
                for _ in range(_BATCH_MAX):
                    try:
                        self._take(receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
            finally:
                self._batching = False
            # While a restart's spawn runs, its SpawnFinished (or the next beat) flushes:
            # at 500 services a flush is about 15 ms of serialising that would otherwise
            # sit between the exit and the new process. And flushes take at most
            # FLUSH_DUTY of the loop's time: a burst of changes is written together.
            if (
                self._dirty()
                and (self._in_flight == 0 or item is BEAT)
                and (self.clock() >= self._flush_after or item is BEAT)
            ):
                self.flush()

    def _dirty(self) -> bool:
        return self._state_dirty or self._health_dirty

    def _take(self, item: Any) -> None:
        if item is BEAT:
            return
        if isinstance(item, PendingCommand):
            self.commands.execute(item)
        else:
            self.apply(item)


def run_daemon(config: Config, *, chaos: InjectorFactory | None = None) -> int:
    """Entry for ``autoheal run``: returns the exit code; ``chaos`` is the fault injector."""
    try:
        anyio.run(Daemon(config, chaos=chaos, freeze_gc=True).run)
    except LockHeldError as exc:
        print(clean(f"autoheal: {exc}"), flush=True, file=sys.stderr)
        return 1
    except ExceptionGroup as group:
        # A task group failing on the disk (full, read-only) says so in one line.
        oserrors, rest = group.split(OSError)
        if rest is not None or oserrors is None:
            raise
        print(clean(f"autoheal: run: {oserrors.exceptions[0]}"), flush=True, file=sys.stderr)
        return 1
    return 0


__all__ = ["Daemon", "Path", "run_daemon"]
