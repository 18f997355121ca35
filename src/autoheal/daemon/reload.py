"""Hot reload: validate a new config and apply only what changed.

Healthy services whose settings did not change keep running (same PIDs); new
services start, removed ones stop, changed ones restart. The core's state is
carried over through its serialised form, so attempts and deadlines of
unchanged components survive. An invalid config changes nothing: it raises an
alert (``alerts/config_invalid.json``) and the old config keeps running.

A config that now says ``environment = "live"`` ends chaos mode first, before
anything else changes, and even when the rest of it is refused: every active
fault is healed and every later fault refused (``chaos_disabled``, reason
``environment_live``). Fault injection never runs against a live environment,
whether it was live at start or became live since.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from autoheal.config import MAX_CONFIG_BYTES, ConfigError, load_config
from autoheal.core import SpawnFinished
from autoheal.core.actions import RestartProcess, StopProcess
from autoheal.core.state import state_from_dict, state_to_dict
from autoheal.daemon import wiring
from autoheal.store.alerts import clear_alert, write_alert

if TYPE_CHECKING:
    from autoheal.daemon.loop import Daemon

log = logging.getLogger("autoheal")

ALERT = "config_invalid"


def _alert(daemon: Daemon, problem: str) -> None:
    log.error("config_reload_refused problem=%s; the running config stays", problem)
    daemon.journal_event("config_reload_refused", reason=ALERT, data={"problem": problem})
    error = write_alert(
        daemon.runtime_dir, ALERT, ts=daemon.wall(), file=str(daemon.config.path), problem=problem
    )
    if error is not None:
        log.error("alert_write_failed alert=%s error=%s", ALERT, error)


def _says_live(path: Path) -> bool:
    """Whether a config file that does not validate still says ``environment = "live"``."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.loads(fh.read(MAX_CONFIG_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return doc.get("environment") == "live"


async def _end_chaos_if_live(daemon: Daemon, live: bool) -> None:
    if live and daemon.chaos_handler is not None:
        await daemon.chaos_handler.disable(
            "environment_live",
            f'environment = "live" since a config reload ({daemon.config.path}): '
            "chaos is refused",
        )


async def reload_config(daemon: Daemon) -> bool:
    """Load, validate and apply the config file again; returns whether it was applied."""
    try:
        new = load_config(daemon.config.path)
    except ConfigError as err:
        # Refused, but a file that says "live" ends chaos all the same: fail safe.
        await _end_chaos_if_live(daemon, _says_live(daemon.config.path))
        _alert(daemon, str(err))
        return False
    # First, before anything else changes (and even if the rest is refused).
    await _end_chaos_if_live(daemon, new.environment == "live")
    old = daemon.config
    if new.paths != old.paths:
        _alert(
            daemon, "paths (runtime_dir, stop_file) cannot change while running; restart the daemon"
        )
        return False
    try:
        policy = wiring.build_policy(new)
    except ValueError as exc:
        _alert(daemon, str(exc))
        return False
    clear_alert(daemon.runtime_dir, ALERT)
    new_specs = {name: wiring.service_spec(new, svc) for name, svc in new.services.items()}
    added = [n for n in new.services if n not in old.services]
    removed = [n for n in old.services if n not in new.services]
    changed = [
        n
        for n in new.services
        if n in old.services
        and (new.services[n] != old.services[n] or new_specs[n] != daemon.specs[n])
    ]
    # Stop removed services with the old specs, before they disappear from the state.
    for name in removed:
        daemon.execute(StopProcess(name, "config_reload"), None)
    daemon.config = new
    daemon.specs.update(new_specs)
    daemon.policy = policy
    daemon.state = state_from_dict(state_to_dict(daemon.state), policy)
    daemon.restart_probes()
    for name in changed:
        cs = daemon.state.components[name]
        heal = policy.components[name].heal
        daemon.execute(RestartProcess(name, cs.attempts, heal.max_restarts, "config_changed"), None)
    for name in added:
        ok, reason = await daemon.spawn_new(name)
        daemon.apply(SpawnFinished(name, ok, reason))
    daemon.save_state()
    daemon.write_health()
    log.info("config_reloaded added=%s removed=%s changed=%s", added, removed, changed)
    daemon.journal_event(
        "config_reloaded", data={"added": added, "removed": removed, "changed": changed}
    )
    return True
