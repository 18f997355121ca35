"""The freqtrade drills (issue 22) can fail: each, under a mutation that models a real
defect, reports FAILED and names what broke. The unmutated drills pass in CI's
``autoheal drill run``; the recipe they render is the shipped one, checked here too.

Mutations (scenario parameters: data, not code):

* killed: ``policy = { max_restarts = 0 }``: the daemon gives up instead of restarting.
* hung: ``policy = { failures_before_restart = 1000 }``: the failed checks never add up.
* STOP.TXT: ``guard = false, bot_api = false``: no mixin in the strategy and no
  ``[bot_api]``, nothing between the kill switch and the bot.
* outage: ``bot_api = false``: nobody tells the bot to pause.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoheal.config import load_config
from autoheal.drills.errors import StackError
from autoheal.drills.stacks.freqtrade import freqtrade_missing
from autoheal.drills.steps.freqtrade import recipe_path, render_recipe
from tests.drills.mutants import run, violated

pytestmark = [pytest.mark.timeout(180)]

needs_freqtrade = pytest.mark.skipif(
    freqtrade_missing() is not None, reason=str(freqtrade_missing())
)


MUTANTS = [
    (
        "freqtrade_killed",
        {"policy": {"max_restarts": 0}},
        {"event:restarted", "event:api_healthy", "restarts_added", "bot_pid_changed",
         "stop_file_present"},
    ),
    (
        "freqtrade_hung",
        {"policy": {"failures_before_restart": 1000}},
        {"event:restarted", "event:api_healthy", "restart_within_bound", "restarts_added"},
    ),
    (
        "freqtrade_stop_file",
        {"guard": False, "bot_api": False},
        {"event:bot_stopped", "new_trades_after_stop", "bot_state_at_end"},
    ),
    (
        "freqtrade_degraded",
        {"bot_api": False},
        {"stopentry_after_mode_change_s", "state_during_outage"},
    ),
]  # fmt: skip


@pytest.mark.slow
@needs_freqtrade
@pytest.mark.parametrize(("drill", "params", "expected"), MUTANTS, ids=[d for d, _, _ in MUTANTS])
def test_each_mutation_fails_the_drill_naming_what_broke(
    tmp_path: Path, drill: str, params: dict[str, Any], expected: set[str]
) -> None:
    assert violated(run(tmp_path, drill, **params)) == expected


def render(tmp_path: Path, **kw: Any) -> Path:
    text = render_recipe(
        recipe_path().read_text(encoding="utf-8"),
        runtime_dir=tmp_path / "rt",
        argv=["/opt/ft/bin/freqtrade", "trade"],
        api_url="http://127.0.0.1:41234",
        exchange_url="http://127.0.0.1:41235",
        pair="ETH/USDT",
        timeframe="1m",
        **kw,
    )
    path = tmp_path / "autoheal.toml"
    path.write_text(text)
    return path


def test_the_rendered_recipe_is_the_shipped_one_with_places_swapped(tmp_path: Path) -> None:
    shipped = load_config(recipe_path())
    cfg = load_config(render(tmp_path, policy={"max_restarts": 0}))
    assert cfg.services["freqtrade"].argv == ("/opt/ft/bin/freqtrade", "trade")
    assert cfg.bot_api is not None and shipped.bot_api is not None
    assert cfg.bot_api.url == "http://127.0.0.1:41234/api/v1"
    assert cfg.bot_api.table == shipped.bot_api.table
    probes = cfg.services["freqtrade"].probes
    assert [p.kind for p in probes] == [p.kind for p in shipped.services["freqtrade"].probes]
    assert probes[2].url.endswith("pair=ETH/USDT&timeframe=1m&limit=1")
    assert cfg.dependencies["exchange"].probes[0].url == "http://127.0.0.1:41235/api/v3/ping"
    assert cfg.policy.max_restarts == 0
    assert load_config(render(tmp_path, bot_api=False)).bot_api is None


def test_a_recipe_that_drifted_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no longer holds"):
        render_recipe(
            'environment = "paper"\n',
            runtime_dir=tmp_path,
            argv=["x"],
            api_url="http://127.0.0.1:1",
            exchange_url="http://127.0.0.1:2",
            pair="BTC/USDT",
            timeframe="1m",
        )
