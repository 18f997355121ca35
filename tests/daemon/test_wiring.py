"""wiring.stop_waves: a service stops only after every service that depends on it."""

from __future__ import annotations

from pathlib import Path

from autoheal.config import load_config
from autoheal.daemon.wiring import start_order, stop_waves

CONFIG = """\
environment = "paper"

[paths]
runtime_dir = "shared_data"

[services.exchange]
argv = ["x"]

[services.feeder]
argv = ["x"]
depends_on = ["exchange", "rest"]

[services.trader]
argv = ["x"]
depends_on = ["feeder"]

[services.reporter]
argv = ["x"]

[dependencies.rest]
[[dependencies.rest.probes]]
kind = "http"
url = "http://127.0.0.1:1/ping"
"""


def test_stop_waves_stop_users_first_and_independents_together(tmp_path: Path) -> None:
    path = tmp_path / "autoheal.toml"
    path.write_text(CONFIG)
    config = load_config(path)
    waves = stop_waves(config)
    assert waves == [["reporter", "trader"], ["feeder"], ["exchange"]]
    # every service once, and never before one that depends on it
    assert sorted(n for wave in waves for n in wave) == sorted(config.services)
    position = {n: i for i, wave in enumerate(waves) for n in wave}
    for name, svc in config.services.items():
        for dep in svc.depends_on:
            if dep in config.services:
                assert position[dep] > position[name]
    assert start_order(config).index("exchange") < start_order(config).index("trader")
