"""The simulated host's files: real files in a folder per seed.

The config, the runtime directory (journal, state, health, flags, heartbeats) and
``STOP.TXT`` are real files under a fresh folder per seed (on tmpfs when there is
one), behind the simulated disk (:mod:`autoheal.sim.disk`: pending and durable
layers, a power loss that drops what was not synced, injected faults).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autoheal.config import Config, ConfigError, load_config
from autoheal.store import layout

__all__ = ["SERVICES", "SimFiles", "config_text"]

#: The services: the feeder has a heartbeat (it can hang), the trader a process probe.
SERVICES = ("feeder", "trader")

#: Unix time at virtual time 0: the wall clock is a label that follows the virtual one.
EPOCH = 1_700_000_000.0

MAX_RESTARTS = 3

_CONFIG = """\
environment = "paper"

[paths]
runtime_dir = "rt"
stop_file = "{stop}"

[policy]
failures_before_restart = 2
restart_backoff = ["15s", "30s", "60s"]
verify_window = "{verify}"
verify_min_uptime = "2s"
max_restarts = {max_restarts}
stable_reset = "{stable}"

[daemon]
heartbeat_interval = "5s"

[services.feeder]
argv = ["{{python}}", "-c", "feeder"]

[[services.feeder.probes]]
kind = "process"
interval = "2s"

[[services.feeder.probes]]
kind = "heartbeat"
path = "feeder.heartbeat.json"
max_age = "5s"
interval = "2s"

[services.trader]
argv = ["{{python}}", "-c", "trader"]
depends_on = [{trader_deps}]

[[services.trader.probes]]
kind = "process"
interval = "2s"
"""


def config_text(variant: int = 0, links: str = "", trader_deps: tuple[str, ...] = ()) -> str:
    """A valid config; ``variant`` changes what a reload may change (never the budget).

    ``links`` is appended (the seed's ``[dependencies.*]`` and ``[fleet]`` tables,
    :mod:`autoheal.sim.links`); ``trader_deps`` is what the trader depends on.
    """
    verify, stable = (("30s", "300s"), ("45s", "240s"))[variant % 2]
    deps = ", ".join(f'"{d}"' for d in trader_deps)
    text = _CONFIG.format(
        verify=verify,
        stable=stable,
        max_restarts=MAX_RESTARTS,
        stop=layout.STOP_FILE_DEFAULT,
        trader_deps=deps,
    )
    return text + links


@dataclass(frozen=True)
class SimFiles:
    """The paths of one seed's host, under ``root``."""

    root: Path
    #: The seed's network tables, appended to every config (:func:`config_text`).
    links: str = ""
    trader_deps: tuple[str, ...] = ()
    _loaded: dict[bytes, Config | None] = field(default_factory=dict, compare=False, repr=False)

    def config(self, variant: int = 0) -> str:
        """The config text of this seed's host (``variant``: see :func:`config_text`)."""
        return config_text(variant, self.links, self.trader_deps)

    @property
    def config_path(self) -> Path:
        return self.root / "autoheal.toml"

    @property
    def runtime_dir(self) -> Path:
        return self.root / "rt"

    @property
    def stop_file(self) -> Path:
        return self.root / layout.STOP_FILE_DEFAULT

    @property
    def flags(self) -> Path:
        return self.runtime_dir / layout.FLAGS

    def heartbeat(self, name: str) -> Path:
        return self.runtime_dir / f"{name}.heartbeat.json"

    def load(self) -> Config | None:
        """The config as a starting daemon reads it; None when it does not load.

        Loaded once per text (a config is frozen): the simulator asks often (each daemon
        start, each spawn fault), and a load is milliseconds of TOML and validation.
        """
        try:
            text = self.config_path.read_bytes()
        except OSError:
            return None
        if text not in self._loaded:
            try:
                self._loaded[text] = load_config(self.config_path)
            except ConfigError:
                self._loaded[text] = None
        return self._loaded[text]

    def read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
