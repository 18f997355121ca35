"""The daemon: one anyio task group that probes, feeds the core, and executes its actions.

Shape (STYLE.md §3): every source of facts is its own task and sends observations
into one memory stream — probe runners, one exit watcher per live process, the
command poller, the kill-switch watcher, the signal receiver. A single consumer
calls :func:`autoheal.core.step` and executes the returned actions in order. File
and journal writes are quick and done inline; process work (stop, clean, start)
runs in its own task per component and reports back as ``SpawnFinished``, so a
30-second stop grace never stalls probing or the kill switch.
"""

from __future__ import annotations

import functools
import logging
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
    DeadlineReached,
    IllegalCommandError,
    Observation,
    ProbeFailed,
    ProbeSucceeded,
    SpawnFinished,
    step,
)
from autoheal.core.actions import (
    Action,
    LogTransition,
    RemoveStop,
    RestartProcess,
    SendNotice,
    StartProcess,
    StopProcess,
    WriteFlags,
    WriteStop,
)
from autoheal.core.machine import dor, flags_for
from autoheal.core.stages import Stage
from autoheal.core.state import (
    RuntimeState,
    initial_state,
    shift_deadlines,
    state_from_dict,
    state_to_dict,
)
from autoheal.daemon import wiring
from autoheal.daemon.commands import CommandBridge, PendingCommand
from autoheal.daemon.health import HEALTH_FILENAME, build_health
from autoheal.daemon.killswitch import KillSwitchWatcher
from autoheal.daemon.lock import RuntimeLock
from autoheal.daemon.services import Services
from autoheal.procs import ProcessControl, ServiceSpec
from autoheal.store.atomic import read_json, write_json_atomic
from autoheal.store.flags import Flags, remove_stop_file, write_flags, write_stop_file
from autoheal.store.journal import Journal

log = logging.getLogger("autoheal")

STATE_FILENAME = "autoheal_state.json"
DAEMON_HEARTBEAT = "auto_heal.heartbeat.json"


class _Timed:
    """Wraps a probe to time each check, for the latency histogram (value is not latency)."""

    def __init__(self, probe: Any, clock: Callable[[], float]) -> None:
        self._probe = probe
        self._clock = clock
        self.last_latency: float | None = None

    async def check(self) -> Any:
        started = self._clock()
        try:
            return await self._probe.check()
        finally:
            self.last_latency = self._clock() - started

    def __getattr__(self, name: str) -> Any:
        return getattr(self._probe, name)


class Daemon:
    """Runs one runtime directory. Construct, then ``await daemon.run()``."""

    def __init__(
        self,
        config: Config,
        *,
        chaos: bool = False,
        one_shot: bool = False,
        procs: ProcessControl | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.chaos = chaos
        self.one_shot = one_shot
        self.policy = wiring.build_policy(config)
        self.specs: dict[str, ServiceSpec] = {
            name: wiring.service_spec(config, svc) for name, svc in config.services.items()
        }
        self.services = Services(
            self.specs,
            procs or ProcessControl(),
            observe=self.observe,
            journal_event=self.journal_event,
            watch_exits=not one_shot,
        )
        self.clock = clock
        self.wall = wall
        self.runtime_dir = config.paths.runtime_dir
        self.stop_file = config.paths.stop_file
        self.state: RuntimeState = initial_state(self.policy)
        self.wake_at: float | None = None
        self.readings: dict[tuple[str, str], Any] = {}
        self.runners: dict[tuple[str, str], Any] = {}
        self.started_at = wall()
        self.loop_lag = 0.0
        self.last_iteration = clock()
        self.ready = False
        self.journal: Journal | None = None
        self.notifier: Any = None
        self.metrics: Any = None
        self._health_dirty = True
        self._send: Any = None
        self._tg: TaskGroup | None = None
        self._hb_seq = 0
        self._first_round: set[tuple[str, str]] = set()
        self.killswitch = KillSwitchWatcher(self)
        self.commands = CommandBridge(self)
        self.stopping = False
        self._probe_scopes: dict[tuple[str, str], anyio.CancelScope] = {}
        self._reload_lock = anyio.Lock()
        self._config_sig = self._config_signature()
        if chaos:
            from autoheal.daemon.chaos import ChaosHandler

            self.chaos_handler: ChaosHandler | None = ChaosHandler(self)
        else:
            self.chaos_handler = None

    # ------------------------------------------------------------------ state file

    def to_wall(self) -> float:
        return self.wall() - self.clock()

    def load_state(self) -> None:
        result = read_json(self.runtime_dir / STATE_FILENAME)
        if result.doc is None:
            if result.reason != "missing":
                log.warning(
                    "state_file_unreadable reason=%s detail=%s; starting fresh",
                    result.reason,
                    result.detail,
                )
            return
        restored = state_from_dict(result.doc, self.policy)
        self.state = shift_deadlines(restored, -self.to_wall())
        for name, cs in self.state.components.items():
            log.info(
                "state_resumed component=%s stage=%s attempts=%d restarts=%d",
                name,
                cs.stage,
                cs.attempts,
                cs.restarts,
            )

    def save_state(self) -> None:
        doc = state_to_dict(shift_deadlines(self.state, self.to_wall()))
        doc["written_at_unix"] = self.wall()
        try:
            write_json_atomic(self.runtime_dir / STATE_FILENAME, doc)
        except OSError as exc:
            log.error("state_write_failed error=%s", exc)

    def health_doc(self) -> dict[str, Any]:
        doc = build_health(
            self.state,
            self.policy,
            readings=self.readings,
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
        )
        if self.stopping:
            # The last document a stopping daemon writes: nothing supervises the runtime any
            # more (and its services are stopped), so it must not read as ready to trade.
            doc["dor"] = False
        return doc

    def write_health(self) -> None:
        try:
            write_json_atomic(self.runtime_dir / HEALTH_FILENAME, self.health_doc(), durable=False)
            self._health_dirty = False
        except OSError as exc:
            log.error("health_write_failed error=%s", exc)

    # ------------------------------------------------------------------ the core

    async def observe(self, obs: Observation) -> None:
        await self._send.send(obs)

    def apply(self, obs: Observation, command: PendingCommand | None = None) -> bool:
        """Step the core and execute its actions. Returns False when a command was refused."""
        now = self.clock()
        try:
            decision = step(self.state, obs, now, self.policy)
        except (IllegalCommandError, CommandRefusedError) as exc:
            if command is not None:
                self.commands.fail(command, exc)
            return False
        changed = decision.state != self.state
        self.state, self.wake_at = decision.state, decision.wake_at
        for action in decision.actions:
            self.execute(action, command)
        if changed:
            self.save_state()
            self._health_dirty = True
        if command is not None and not command.waits_for_process:
            self.commands.succeed(command, {"dor": dor(self.state, self.policy)})
        return True

    def execute(self, action: Action, command: PendingCommand | None) -> None:
        match action:
            case WriteFlags():
                flags = Flags(
                    action.failsafe_active, action.mode, action.reason, self.wall(), action.set_by
                )
                try:
                    write_flags(self.runtime_dir, flags)
                    self.killswitch.expect(flags)
                except OSError as exc:
                    log.error("flags_write_failed error=%s", exc)
                log.info(
                    "flags_written failsafe_active=%s mode=%s reason=%s",
                    action.failsafe_active,
                    action.mode,
                    action.reason,
                )
            case WriteStop():
                try:
                    write_stop_file(self.stop_file, action.reason, set_by=action.set_by)
                except OSError as exc:
                    log.error("stop_file_write_failed error=%s", exc)
                self.killswitch.expect_stop(True)
                log.warning("stop_file_written path=%s reason=%s", self.stop_file, action.reason)
            case RemoveStop():
                remove_stop_file(self.stop_file)
                self.killswitch.expect_stop(False)
                log.warning(
                    "stop_file_removed path=%s by=%s reason=%s",
                    self.stop_file,
                    action.set_by,
                    action.reason,
                )
            case SendNotice():
                self.notify(action)
            case LogTransition():
                log.info(
                    "stage_transition component=%s from=%s to=%s reason=%s attempt=%d/%d",
                    action.component,
                    action.from_stage,
                    action.to_stage,
                    action.reason,
                    action.attempt,
                    action.max_attempts,
                )
                self.journal_event(
                    "stage_transition",
                    component=action.component,
                    reason=action.reason,
                    data={
                        "from": action.from_stage.value,
                        "to": action.to_stage.value,
                        "attempt": action.attempt,
                        "max_attempts": action.max_attempts,
                    },
                )
            case RestartProcess() | StartProcess() | StopProcess():
                if command is not None:
                    command.waits_for_process = True
                assert self._tg is not None
                self._tg.start_soon(self._process_action, action, command)

    def journal_event(self, kind: str, **fields: Any) -> None:
        if self.journal is None:
            return
        try:
            self.journal.record(kind, actor=fields.pop("actor", "autoheal"), **fields)
        except Exception as exc:
            log.error("journal_write_failed kind=%s error=%s", kind, exc)

    def notify(self, action: SendNotice) -> None:
        from autoheal.daemon.notify import Notification

        log.warning(
            "notice kind=%s target=%s reason=%s message=%s",
            action.kind,
            action.target,
            action.reason,
            action.message,
        )
        self.journal_event(
            "notice",
            component=action.target,
            reason=action.reason,
            data={"kind": action.kind, "message": action.message},
        )
        if self.notifier is None:
            return
        try:
            self.notifier.notify(
                Notification(
                    kind=action.kind,
                    component=action.target,
                    reason=action.reason,
                    message=action.message,
                    ts=self.wall(),
                    data={},
                )
            )
        except Exception as exc:
            log.error("notify_failed error=%s", exc)

    # ------------------------------------------------------------------ processes

    async def _process_action(self, action: Action, command: PendingCommand | None) -> None:
        assert isinstance(action, RestartProcess | StartProcess | StopProcess)
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
            ok, reason = await self.services.start(name, stale_files=self._heartbeat_files(name))
            self._health_dirty = True
            await self.observe(SpawnFinished(name, ok, reason))
            for (target, _), runner in self.runners.items():
                if target == name:
                    runner.poke()
            if command is not None:
                identity = self.services.identity(name)
                if ok:
                    pid = identity.pid if identity else None
                    self.commands.succeed(command, {"component": name, "pid": pid})
                else:
                    self.commands.fail_reason(command, reason)

    def _heartbeat_files(self, name: str) -> tuple[Path, ...]:
        """A replaced process's heartbeat must not verify its successor."""
        return tuple(pc.path for pc in self.config.services[name].probes if pc.path is not None)

    async def _adopt_or_start(self) -> None:
        """At start: adopt what a previous daemon left running, start what should run."""
        for name in wiring.start_order(self.config):
            if await self.services.adopt(name):
                self.apply(SpawnFinished(name, True))
                continue
            cs = self.state.components[name]
            waiting = cs.stage is Stage.BACKOFF and cs.restart_at is not None
            if cs.held or cs.stage in (Stage.FAILSAFE, Stage.NOTIFY) or waiting:
                continue
            if not self.config.services[name].autostart and cs.stage is Stage.OBSERVE:
                continue
            ok, reason = await self.services.start(name, stale_files=self._heartbeat_files(name))
            self.apply(SpawnFinished(name, ok, reason))

    # ------------------------------------------------------------------ probes

    def _config_signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.config.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    async def _reload(self) -> None:
        from autoheal.daemon.reload import reload_config

        async with self._reload_lock:
            # Taken before reading, so an edit during the reload is seen next time.
            self._config_sig = self._config_signature()
            await reload_config(self)

    def _config_changed(self) -> bool:
        """Whether the config file changed since it was last (re)loaded."""
        return self._config_signature() != self._config_sig

    async def spawn_new(self, name: str) -> tuple[bool, str]:
        return await self.services.start(name, stale_files=self._heartbeat_files(name))

    def restart_probes(self) -> None:
        """Cancel every probe runner and start the configured set again."""
        for scope in self._probe_scopes.values():
            scope.cancel()
        self._probe_scopes.clear()
        self.runners.clear()
        self.readings = {
            k: v
            for k, v in self.readings.items()
            if k[0] in self.state.components or k[0] in self.state.dependencies
        }
        assert self._tg is not None
        for pt in wiring.probe_targets(self.config):
            self._tg.start_soon(self._run_probe, pt)

    async def _run_probe(self, pt: wiring.ProbeTarget) -> None:
        scope = anyio.CancelScope()
        self._probe_scopes[(pt.target, pt.config.name)] = scope
        with scope:
            await self._run_probe_inner(pt)

    def _verdict(self, target: str, probe: str) -> bool | None:
        holder = self.state.components.get(target) or self.state.dependencies.get(target)
        if holder is None:
            return None
        ps = holder.probes.get(probe)
        return None if ps is None else ps.ok

    async def _run_probe_inner(self, pt: wiring.ProbeTarget) -> None:
        from autoheal.probes import ProbeRunner

        probe = _Timed(wiring.make_probe(pt.config, clock=self.clock), self.clock)
        key = (pt.target, pt.config.name)

        async def emit(result: Any) -> None:
            previous = self.readings.get(key)
            self.readings[key] = result
            if previous is None or (previous.ok, previous.reason) != (result.ok, result.reason):
                self.journal_event(
                    "probe_changed",
                    component=pt.target,
                    reason=result.reason or "ok",
                    data={"probe": pt.config.name, "ok": result.ok, "value": result.value},
                )
            self._first_round.add(key)
            if self.metrics is not None:
                self.metrics.observe_probe(
                    pt.target, pt.config.name, result.ok, result.reason, probe.last_latency
                )
            if result.ok and self._verdict(pt.target, pt.config.name) is True:
                # A success on a probe the core already holds as passing changes no
                # decision (step is idempotent there): skip the step, keep the reading.
                return
            obs: Observation = (
                ProbeSucceeded(pt.target, pt.config.name)
                if result.ok
                else ProbeFailed(pt.target, pt.config.name, result.reason)
            )
            await self.observe(obs)

        runner = ProbeRunner(
            probe, emit, interval=pt.config.interval, timeout=pt.config.timeout, clock=self.clock
        )
        self.runners[key] = runner
        try:
            await runner.run()
        finally:
            aclose = getattr(probe, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    # ------------------------------------------------------------------ periodic

    async def _heartbeat(self, notifier: Any) -> None:
        interval = self.config.daemon.heartbeat_interval
        path = self.runtime_dir / DAEMON_HEARTBEAT
        next_at = self.clock()
        while True:
            next_at += interval
            await anyio.sleep(max(0.0, next_at - self.clock()))
            self.loop_lag = max(0.0, self.clock() - next_at)
            if next_at < self.clock() - interval:
                next_at = self.clock()
            self._hb_seq += 1
            try:
                write_json_atomic(
                    path,
                    {
                        "component": "auto_heal",
                        "pid": os.getpid(),
                        "ts": self.wall(),
                        "seq": self._hb_seq,
                        "loop_lag_s": round(self.loop_lag, 6),
                    },
                    durable=False,
                )
            except OSError as exc:
                log.error("heartbeat_write_failed error=%s", exc)
            self.write_health()
            self.killswitch.reconcile()
            # The config is compared each beat (one stat): a reload within a second of an
            # edit, without a watcher thread waking the interpreter all the time.
            if self._config_changed() and not self._reload_lock.locked():
                log.info("config_changed path=%s", self.config.path)
                assert self._tg is not None
                self._tg.start_soon(self._reload)
            if not self.ready and self._all_probed():
                self.ready = True
                notifier.ready(self.summary())
                log.info("ready %s", self.summary())
            notifier.status(self.summary())

    def _all_probed(self) -> bool:
        return all(k in self._first_round for k in self.runners) and all(
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
        return self.clock() - self.last_iteration < max(
            5.0, 5 * self.config.daemon.heartbeat_interval
        )

    async def _signals(self, cancel: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    log.info("sighup: reloading %s", self.config.path)
                    await self._reload()
                    continue
                log.info("shutdown signal=%s", signal.Signals(signum).name)
                cancel.cancel()
                return

    # ------------------------------------------------------------------ main

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        from autoheal.daemon.systemd import SystemdNotifier, watchdog_loop

        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        (self.runtime_dir / "logs").mkdir(exist_ok=True)
        lock = RuntimeLock(self.runtime_dir)
        lock.acquire()
        notifier = SystemdNotifier.from_env(unset_environment=True)
        try:
            self.journal = Journal.open(self.runtime_dir, group=self.config.daemon.journal_group)
            self._setup_notifier()
            self.load_state()
            send, receive = anyio.create_memory_object_stream[Any](max_buffer_size=10_000)
            self._send = send
            shutdown = anyio.CancelScope()
            with shutdown:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    self.services.tg = tg
                    tg.start_soon(self._signals, shutdown)
                    self.killswitch.startup()
                    self._sync_flags_at_start()
                    await self._adopt_or_start()
                    for pt in wiring.probe_targets(self.config):
                        tg.start_soon(self._run_probe, pt)
                    tg.start_soon(self._heartbeat, notifier)
                    tg.start_soon(self.killswitch.watch)
                    tg.start_soon(self.commands.poll)
                    if self.chaos_handler is not None:
                        from autoheal.daemon.chaos import ChaosError, establish_stop_conditions

                        try:
                            protected = establish_stop_conditions(self.config.chaos.protected_files)
                        except ChaosError as exc:  # checked by the CLI; changed since
                            self.chaos_handler.disabled = str(exc)
                            log.error("chaos_disabled reason=%s", exc)
                        else:
                            tg.start_soon(self.chaos_handler.guard, protected)
                    if self.notifier is not None and self.notifier.sender is not None:
                        tg.start_soon(self.notifier.sender.run)
                    await self._start_status_server(tg)
                    interval = notifier.watchdog_interval()
                    if interval:
                        tg.start_soon(
                            functools.partial(
                                watchdog_loop, notifier, self.loop_healthy, interval=interval / 2
                            )
                        )
                    self.save_state()
                    self.write_health()
                    log.info(
                        "started pid=%d runtime_dir=%s chaos=%s %s",
                        os.getpid(),
                        self.runtime_dir,
                        self.chaos,
                        self.summary(),
                    )
                    task_status.started()
                    await self._consume(receive)
        finally:
            self.stopping = True
            self.services.stopping = True
            if self.chaos_handler is not None:
                with anyio.CancelScope(shield=True):
                    await self.chaos_handler.heal_all()
            notifier.stopping()
            with anyio.CancelScope(shield=True):
                if self.config.daemon.stop_services_on_exit:
                    await self.services.stop_all(list(reversed(wiring.start_order(self.config))))
                self.save_state()
                self.write_health()
            if self.journal is not None:
                self.journal.close()
            lock.release()
            log.info("stopped")

    async def run_command(self, pending: PendingCommand, journal: Journal) -> None:
        """Direct mode: apply one command and wait for its process work (no daemon loop)."""
        self.journal = journal
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        (self.runtime_dir / "logs").mkdir(exist_ok=True)
        self._setup_notifier(webhooks=False)
        self.load_state()
        send, receive = anyio.create_memory_object_stream[Any](max_buffer_size=100)
        self._send = send
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for name in self.specs:
                await self.services.adopt(name)
            self.commands.execute(pending)
        # process actions report back (SpawnFinished); apply what they said
        send.close()
        async with receive:
            async for obs in receive:
                self.apply(obs)
        self.save_state()
        self.write_health()

    def _sync_flags_at_start(self) -> None:
        """Make the files say what the (resumed) state says; a latched failsafe is re-asserted."""
        view = flags_for(self.state)
        self.execute(WriteFlags(view.failsafe_active, view.mode, view.reason, view.set_by), None)
        if self.state.failsafe is not None:
            self.execute(WriteStop(self.state.failsafe.reason, self.state.failsafe.set_by), None)

    def _setup_notifier(self, *, webhooks: bool = True) -> None:
        from autoheal.daemon.notify import NotificationLog, Notifier, WebhookSender, WebhookSpec

        sender = None
        if self.config.webhooks and webhooks:
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
            if self.journal is not None:
                sender = WebhookSender(specs, self.journal)
        self.notifier = Notifier(NotificationLog(self.runtime_dir / "notifications.log"), sender)

    async def _start_status_server(self, tg: TaskGroup) -> None:
        listen = self.config.daemon.status_listen
        if listen is None:
            return
        from autoheal.daemon.metrics import Metrics, serve_status

        self.metrics = Metrics(self.health_doc)
        port = await tg.start(serve_status, listen[0], listen[1], self.metrics, self.health_doc)
        write_json_atomic(
            self.runtime_dir / "status_endpoint.json",
            {"host": listen[0], "port": port},
            durable=False,
        )
        log.info("status_endpoint listening=%s:%s", listen[0], port)

    async def _consume(self, receive: Any) -> None:
        while True:
            self.last_iteration = self.clock()
            timeout = 1.0
            if self.wake_at is not None:
                timeout = min(timeout, max(0.0, self.wake_at - self.clock()))
            item = None
            with anyio.move_on_after(timeout):
                item = await receive.receive()
            if item is None:
                self.apply(DeadlineReached())
            elif isinstance(item, PendingCommand):
                self.commands.execute(item)
            else:
                self.apply(item)
            if self._health_dirty:
                self.write_health()


def run_daemon(config: Config, *, chaos: bool = False) -> int:
    """Entry for ``autoheal run``: returns the exit code."""
    from autoheal.daemon.lock import LockHeldError

    try:
        anyio.run(Daemon(config, chaos=chaos).run)
    except LockHeldError as exc:
        print(f"autoheal: {exc}", flush=True, file=sys.stderr)
        return 1
    return 0


__all__ = ["Daemon", "Path", "run_daemon"]
