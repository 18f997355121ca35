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
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoheal.config import MAX_CONFIG_BYTES, Config, ConfigError, load_config
from autoheal.core.policy import Policy
from autoheal.daemon import wiring
from autoheal.procs import ServiceSpec
from autoheal.store.alerts import write_alert

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
    journal_event: Callable[..., Any],
) -> None:
    """The running config stays: say so in the log, the journal and an alert file."""
    log.error("config_reload_refused problem=%s; the running config stays", problem)
    journal_event("config_reload_refused", reason=ALERT, data={"problem": problem})
    error = write_alert(runtime_dir, ALERT, ts=wall(), file=str(config_path), problem=problem)
    if error is not None:
        log.error("alert_write_failed alert=%s error=%s", ALERT, error)
