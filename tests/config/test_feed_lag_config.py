"""``kind = "feed_lag"`` in the config (issue 23): defaults, each mistake at its key, the probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.config import ConfigError, load_config
from autoheal.daemon.wiring import make_probe
from autoheal.probes.feed_lag import FeedLagProbe
from tests.config.test_load import write

pytestmark = [pytest.mark.timeout(60)]

HEAD = (
    'environment = "paper"\n[paths]\nruntime_dir = "rt"\n[services.feeder]\nargv = ["true"]\n'
    '[[services.feeder.probes]]\nkind = "feed_lag"\n'
)
KEY = "services.feeder.probes[0]"


def test_feed_lag_resolves_with_its_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, HEAD + 'max_age = "5s"\n'))
    (probe,) = cfg.services["feeder"].probes
    assert (probe.kind, probe.name, probe.max_age, probe.symbols, probe.max_gaps) == (
        "feed_lag",
        "feed_lag",
        5.0,
        (),
        0,
    )
    assert probe.path == cfg.paths.runtime_dir / "feeder.heartbeat.json"
    built = make_probe(probe)
    assert isinstance(built, FeedLagProbe) and built.max_age == 5.0


def test_feed_lag_takes_symbols_and_max_gaps(tmp_path: Path) -> None:
    text = HEAD + 'max_age = "2s"\nsymbols = ["BTCUSDT", "ETH/USDT"]\nmax_gaps = 3\n'
    (probe,) = load_config(write(tmp_path, text)).services["feeder"].probes
    assert (probe.symbols, probe.max_gaps) == (("BTCUSDT", "ETH/USDT"), 3)


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("", f"{KEY}.max_age", "required"),
        ('max_age = "2s"\nsymbols = []\n', f"{KEY}.symbols", "at least one"),
        ('max_age = "2s"\nsymbols = ["BTC USDT"]\n', f"{KEY}.symbols[0]", "not a market symbol"),
        ('max_age = "2s"\nsymbols = ["A", "A"]\n', f"{KEY}.symbols[1]", "duplicate"),
        ('max_age = "2s"\nmax_gaps = -1\n', f"{KEY}.max_gaps", "0 or more"),
        ('max_age = "2s"\nurl = "http://127.0.0.1/"\n', f"{KEY}.url", "not used"),
        ('max_age = "0s"\n', f"{KEY}.max_age", ""),
    ],
)
def test_feed_lag_mistakes_name_their_key(tmp_path: Path, extra: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, HEAD + extra))
    assert err.value.key == key and words in err.value.problem


def test_symbols_and_max_gaps_belong_to_feed_lag_only(tmp_path: Path) -> None:
    text = HEAD.replace('"feed_lag"', '"heartbeat"') + 'max_age = "2s"\nmax_gaps = 1\n'
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert err.value.key == f"{KEY}.max_gaps"
