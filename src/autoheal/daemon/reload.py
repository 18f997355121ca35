"""Hot reload: validate a new config and say what changed; the core decides what that means.

:func:`plan_reload` reads and validates the file and compares it with the running
config; it changes nothing. The daemon then swaps in the new config and steps the
core with :class:`~autoheal.core.observations.ConfigReloaded`, which decides what
happens to each component: healthy ones whose settings did not change keep running
(same PIDs) with their attempts and deadlines; added ones start, removed ones stop,
changed ones restart, and nothing starts or restarts while the failsafe holds. An
invalid config changes nothing: it raises an alert (``alerts/config_invalid.json``)
and the old config keeps running.

A config that now says ``environment = "live"`` ends chaos mode first, before
anything else changes, and even when the rest of it is refused: every active
fault is healed and every later fault refused (``chaos_disabled``, reason
``environment_live``). Fault injection never runs against a live environment,
whether it was live at start or became live since.

:class:`Reloader` is the reload's own watcher: it looks at the config file once a
beat (one ``stat``: a reload within a second of an edit, without a watcher thread
waking the interpreter all the time), and ``SIGHUP`` asks it directly.
:class:`Settings` holds the config in force, which the parts read when they act.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from autoheal.config import MAX_CONFIG_BYTES, Config, ConfigError, load_config
from autoheal.core.observations import ConfigReloaded
from autoheal.core.policy import Policy
from autoheal.daemon import wiring
from autoheal.daemon.clock import Clock
from autoheal.daemon.effects import JournalEvent
from autoheal.daemon.injector import FaultInjector
from autoheal.daemon.interpreter import Interpreter
from autoheal.daemon.persist import Persist
from autoheal.procs import ServiceSpec
from autoheal.store.alerts import clear_alert, write_alert

log = logging.getLogger("autoheal")

ALERT = "config_invalid"


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """A valid new config and how its services differ from the running ones."""

    config: Config
    policy: Policy
    specs: dict[str, ServiceSpec]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: frozenset[str]

    @property
    def live(self) -> bool:
        return self.config.environment == "live"


@dataclass(frozen=True, slots=True)
class ReloadRefused:
    """The new config cannot be applied; ``live``: the file says ``environment = "live"``."""

    problem: str
    live: bool


def _says_live(path: Path) -> bool:
    """Whether a config file that does not validate still says ``environment = "live"``."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.loads(fh.read(MAX_CONFIG_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return doc.get("environment") == "live"


def plan_reload(old: Config, old_specs: Mapping[str, ServiceSpec]) -> ReloadPlan | ReloadRefused:
    """Load and validate ``old.path`` again and compare it with the running config."""
    try:
        new = load_config(old.path)
    except ConfigError as err:
        return ReloadRefused(str(err), live=_says_live(old.path))
    live = new.environment == "live"
    if new.paths != old.paths:
        return ReloadRefused(
            "paths (runtime_dir, stop_file) cannot change while running; restart the daemon",
            live=live,
        )
    if (new.bot_api is None) != (old.bot_api is None):
        return ReloadRefused(
            "[bot_api] cannot be added or removed while running (what the table changes "
            "applies at once); restart the daemon",
            live=live,
        )
    try:
        policy = wiring.build_policy(new)
    except ValueError as exc:
        return ReloadRefused(str(exc), live=live)
    # A secret the running config read stays out of the services' environment even if
    # the new config no longer names it: the daemon's own environment still holds it.
    withheld = frozenset().union(*(spec.env_remove for spec in old_specs.values()))
    specs = {
        name: wiring.service_spec(new, svc, keep_out=withheld) for name, svc in new.services.items()
    }
    return ReloadPlan(
        config=new,
        policy=policy,
        specs=specs,
        added=tuple(n for n in new.services if n not in old.services),
        removed=tuple(n for n in old.services if n not in new.services),
        changed=frozenset(
            n
            for n in new.services
            if n in old.services
            and (new.services[n] != old.services[n] or specs[n] != old_specs.get(n))
        ),
    )


def refuse(
    problem: str,
    *,
    runtime_dir: Path,
    config_path: Path,
    wall: Callable[[], float],
    journal_event: JournalEvent,
) -> None:
    """The running config stays: say so in the log, the journal and an alert file."""
    log.error("config_reload_refused problem=%s; the running config stays", problem)
    journal_event("config_reload_refused", reason=ALERT, data={"problem": problem})
    error = write_alert(runtime_dir, ALERT, ts=wall(), file=str(config_path), problem=problem)
    if error is not None:
        log.error("alert_write_failed alert=%s error=%s", ALERT, error)


@dataclass
class Settings:
    """The config in force and its services' process specs (a reload replaces them).

    ``specs`` is shared with :class:`~autoheal.daemon.services.Services` and updated in
    place: removed services keep theirs until they are stopped.
    """

    config: Config
    specs: dict[str, ServiceSpec]

    def current(self) -> Config:
        return self.config


def config_signature(path: Path) -> tuple[int, int, int] | None:
    """Which config file is there (inode, size, mtime); None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Reloader:
    """Reloads the config when it changes on disk or ``SIGHUP`` asks.

    Args:
        settings: the config in force (replaced here).
        interpreter: steps the core with :class:`ConfigReloaded` (its runtime's policy
            is replaced first).
        persist: the state and the health document, written after a reload.
        restart_probes: starts the probe runners of a config again, for the targets the
            state knows.
        injector: the fault injector of a ``--chaos`` daemon, else None.
        journal_event: records the reload.
        clock: the daemon's clock.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        interpreter: Interpreter,
        persist: Persist,
        restart_probes: Callable[[Config, set[str]], None],
        injector: FaultInjector | None,
        journal_event: JournalEvent,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._interpreter = interpreter
        self._persist = persist
        self._restart_probes = restart_probes
        self._injector = injector
        self._journal_event = journal_event
        self._clock = clock
        self._lock = anyio.Lock()
        self._signature = config_signature(settings.config.path)

    async def watch(self, interval: float) -> None:
        """Compare the config file every ``interval`` (one ``stat``); reload on a change."""
        path = self._settings.config.path
        while True:
            await self._clock.sleep(interval)
            if config_signature(path) != self._signature and not self._lock.locked():
                log.info("config_changed path=%s", path)
                await self.reload()

    async def reload(self) -> None:
        """Validate the config file again; the core decides what the change means."""
        async with self._lock:
            config = self._settings.config
            # Taken before reading, so an edit during the reload is seen next time.
            self._signature = config_signature(config.path)
            outcome = plan_reload(config, self._settings.specs)
            if outcome.live and self._injector is not None:
                # First, before anything else changes, and even if the rest is refused.
                await self._injector.disable(
                    "environment_live",
                    f'environment = "live" since a config reload ({config.path}): chaos is refused',
                )
            if isinstance(outcome, ReloadRefused):
                refuse(
                    outcome.problem,
                    runtime_dir=config.paths.runtime_dir,
                    config_path=config.path,
                    wall=self._clock.wall,
                    journal_event=self._journal_event,
                )
                return
            self._apply(outcome)

    def _apply(self, plan: ReloadPlan) -> None:
        clear_alert(plan.config.paths.runtime_dir, ALERT)
        self._settings.config = plan.config
        self._settings.specs.update(plan.specs)  # removed ones stay until they are stopped
        runtime = self._interpreter.runtime
        runtime.policy = plan.policy
        self._interpreter.apply(ConfigReloaded(plan.changed))
        self._restart_probes(plan.config, {*runtime.state.components, *runtime.state.dependencies})
        self._persist.write_all()
        added, removed = list(plan.added), list(plan.removed)
        changed = sorted(plan.changed)
        log.info("config_reloaded added=%s removed=%s changed=%s", added, removed, changed)
        self._journal_event(
            "config_reloaded", data={"added": added, "removed": removed, "changed": changed}
        )
