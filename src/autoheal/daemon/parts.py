"""The daemon's parts, built in the order of what each needs: plain values only.

What is opened first (the lock, the journal, the notifier) is handed in; then each
part is built after everything it needs exists, so every port is a plain value: a
part, or a bound method of one. Nothing is a lambda over a daemon object, and
nothing is filled in later. The order, and why:

1. the config in force (:class:`~autoheal.daemon.reload.Settings`), the core's state
   (:class:`~autoheal.daemon.runtime.Runtime`) and the daemon's own facts;
2. effects (journal, notifier), the command queue, the kill-switch files, the
   service processes: they report through the stream or return what they saw;
3. probing (asks the runtime for verdicts), the files the daemon writes
   (:class:`~autoheal.daemon.persist.Persist`, reads all of the above), ``/metrics``;
4. process work (answers commands, pokes probes) and the fault injector;
5. the interpreter, which hands each action to one of them.

The tasks (beat, watch, reload, fleet, servers) are started by
:mod:`autoheal.daemon.loop`, in one task group, once all of this exists.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from anyio.abc import TaskGroup

from autoheal.config import Config
from autoheal.core.observations import Observation
from autoheal.core.queries import spawn_allowed
from autoheal.core.state import RuntimeState
from autoheal.daemon import wiring
from autoheal.daemon.bot_api import BotApi
from autoheal.daemon.clock import Clock
from autoheal.daemon.commands import CommandBridge
from autoheal.daemon.effects import Effects
from autoheal.daemon.injector import FaultInjector, InjectorFactory, InjectorPorts
from autoheal.daemon.interpreter import Executors, Interpreter, Item
from autoheal.daemon.killswitch import FileLayer, KillSwitch
from autoheal.daemon.notify import NotificationLog, Notifier, WebhookSender, WebhookSpec
from autoheal.daemon.persist import DaemonFacts, Persist
from autoheal.daemon.probing import Probing
from autoheal.daemon.processes import ProcessWork
from autoheal.daemon.reload import Settings
from autoheal.daemon.runtime import Runtime
from autoheal.daemon.services import Services
from autoheal.probes.result import ProbeResult
from autoheal.procs import ProcessControlLike
from autoheal.store import layout
from autoheal.store.journal import Journal
from autoheal.web.metrics import Metrics

__all__ = ["Parts", "build", "make_notifier"]


@dataclass(frozen=True, slots=True)
class Parts:
    """Everything one run of the interpreter uses (daemon or direct command)."""

    settings: Settings
    runtime: Runtime
    facts: DaemonFacts
    journal: Journal
    notifier: Notifier
    effects: Effects
    commands: CommandBridge
    killswitch: KillSwitch
    services: Services
    probing: Probing
    persist: Persist
    metrics: Metrics | None
    processes: ProcessWork
    injector: FaultInjector | None
    interpreter: Interpreter
    bot_api: BotApi | None = None


def make_notifier(config: Config, journal: Journal, clock: Clock, *, webhooks: bool) -> Notifier:
    """``notifications.log``, and the webhooks' outbox when ``webhooks`` (a daemon)."""
    sender = None
    if config.webhooks and webhooks:
        specs = [
            WebhookSpec(
                name=w.name, url=w.url, format=w.format, secret_env=w.secret_env, timeout=w.timeout
            )
            for w in config.webhooks
        ]
        # Alertmanagers get state (the health document's problems), not events.
        outbox = [spec for spec in specs if spec.format != "alertmanager"]
        sender = WebhookSender(outbox, journal, clock=clock) if outbox else None
    return Notifier(NotificationLog(config.paths.runtime_dir / layout.NOTIFICATIONS), sender)


def build(
    config: Config,
    state: RuntimeState,
    *,
    clock: Clock,
    procs: ProcessControlLike,
    journal: Journal,
    notifier: Notifier,
    task_group: TaskGroup,
    send: Callable[[Item], Awaitable[None]],
    chaos: InjectorFactory | None = None,
    watch_exits: bool = True,
) -> Parts:
    """Build every part, in the order of what each needs (see the module docstring).

    Args:
        config: the config at start.
        state: the core's state to start from.
        clock: the daemon's one clock.
        procs: the process control (the fakes in tests).
        journal: the open journal.
        notifier: the open notifier.
        task_group: the one task group (process work, exit watchers).
        send: the consumer's stream.
        chaos: the fault injector's factory (``run --chaos``), else None.
        watch_exits: False in the direct mode, where nobody stays to watch.
    """
    runtime_dir = config.paths.runtime_dir
    settings = Settings(
        config, {n: wiring.service_spec(config, s) for n, s in config.services.items()}
    )
    runtime = Runtime(state, wiring.build_policy(config))
    facts = DaemonFacts(
        pid=os.getpid(),
        started_at=clock.wall(),
        chaos=chaos is not None,
        config=str(config.path),
    )
    effects = Effects(runtime_dir, wall=clock.wall, journal=journal, notifier=notifier)
    observe: Callable[[Observation], Awaitable[None]] = send
    commands = CommandBridge(journal=journal, submit=send, notify=effects.notify, clock=clock)
    killswitch = KillSwitch(FileLayer(runtime_dir, config.paths.stop_file), wall=clock.wall)
    services = Services(
        settings.specs,
        procs,
        observe=observe,
        journal_event=effects.journal_event,
        task_group=task_group,
        watch_exits=watch_exits,
        may_spawn=lambda: spawn_allowed(runtime.state),
    )
    readings: dict[tuple[str, str], ProbeResult] = {}
    persist = Persist(
        runtime_dir,
        clock=clock,
        runtime=runtime,
        facts=facts,
        readings=readings,
        pids=services.pids,
        config=settings.current,
    )
    metrics = None if config.daemon.status_listen is None else Metrics(persist.health_doc)
    probing = Probing(
        observe=observe,
        verdict=runtime.verdict,
        journal_event=effects.journal_event,
        clock=clock,
        readings=readings,
        metrics=metrics,
        # Resource probes read their service's PID from the process table; an exec
        # probe's command inherits no secret (nor one a reload stopped naming).
        pid_of=services.pid,
        env_remove=lambda: wiring.exec_env_remove(settings.current()).union(
            *(spec.env_remove for spec in settings.specs.values())
        ),
    )
    processes = ProcessWork(
        services,
        config=settings.current,
        task_group=task_group,
        observe=observe,
        poke=probing.poke,
        commands=commands,
        persist=persist,
    )
    injector = None
    if chaos is not None:
        # Handed in by the CLI (``run --chaos``); the daemon never imports autoheal.chaos.
        injector = chaos(
            InjectorPorts(
                config=settings.current,
                runtime_dir=runtime_dir,
                services=services,
                succeed=commands.succeed,
                fail=commands.fail_reason,
                journal_event=effects.journal_event,
            )
        )
    bot_api = None
    if config.bot_api is not None and watch_exits:  # a daemon's, never a direct command's
        bot_api = BotApi(settings.current, clock=clock, effects=effects, runtime_dir=runtime_dir)
    interpreter = Interpreter(
        runtime,
        Executors(killswitch, effects, processes, commands, injector, bot_api),
        clock=clock,
        persist=persist,
        config=settings.current,
    )
    return Parts(
        settings=settings,
        runtime=runtime,
        facts=facts,
        journal=journal,
        notifier=notifier,
        effects=effects,
        commands=commands,
        killswitch=killswitch,
        services=services,
        probing=probing,
        persist=persist,
        metrics=metrics,
        processes=processes,
        injector=injector,
        interpreter=interpreter,
        bot_api=bot_api,
    )
