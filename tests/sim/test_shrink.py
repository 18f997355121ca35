"""Shrinking: ddmin finds the few acts that fail, and its printed test works pasted.

``test_seed_6_budget_off_by_one_restart_budget`` is the test that
``python -m autoheal.sim --seed 6 --minutes 5 --plant budget_off_by_one --shrink``
printed, pasted as it was, plus the ``xfail(strict=True)`` marker: it fails while the
planted bug is on, as a pasted regression test fails while its bug is there.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from autoheal.sim.run import run_seed
from autoheal.sim.script import run_script, script_of_trace
from autoheal.sim.shrink import _OutOfBudget, _Search, act_literal, regression_test, shrink

pytestmark = [pytest.mark.timeout(300)]


@functools.cache
def failing_seed() -> int:
    """The first seed (5 virtual minutes) that budget_off_by_one fails: which one it is
    moves whenever the simulator draws differently (a new act), so it is looked up."""
    for seed in range(1, 201):
        failures = run_seed(seed, 5, plant="budget_off_by_one", escapes=False).failures
        if failures and failures[0]["invariant"] == "restart_budget":
            return seed
    raise AssertionError("budget_off_by_one not found in 200 seeds")


def _acts(n: int) -> list[dict[str, object]]:
    return [{"gap": 1.0, "act": "wait", "n": i} for i in range(n)]


def test_ddmin_keeps_exactly_the_acts_the_failure_needs() -> None:
    def fails(script: list[dict[str, object]]) -> bool:
        return {3, 17, 18} <= {a["n"] for a in script}

    search = _Search(fails, max_replays=300, max_wall_s=60.0)
    assert [a["n"] for a in search.ddmin(_acts(40))] == [3, 17, 18]
    assert search.replays < 100


def test_the_search_stops_at_its_replay_budget() -> None:
    search = _Search(lambda s: len(s) > 5, max_replays=4, max_wall_s=60.0)
    with pytest.raises(_OutOfBudget):
        search.ddmin(_acts(40))
    assert search.replays == 4


def test_an_act_prints_as_a_python_literal() -> None:
    act = {"act": "flags_garbage", "bytes": '\x00\xff"', "gap": 2.5, "ok": None, "on": True}
    text = act_literal(act)
    assert text.startswith('{"gap": 2.5, "act": "flags_garbage"')
    assert eval(text) == act  # the literal is what the printed test holds


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_shrinker_cuts_a_planted_failure_to_a_few_acts(tmp_path: Path) -> None:
    seed = failing_seed()
    trace = tmp_path / "t.jsonl"
    out = run_seed(seed, 5, plant="budget_off_by_one", trace_path=trace)
    assert out.failures and out.failures[0]["invariant"] == "restart_budget"
    script = script_of_trace(trace)
    # The replay budget (300) bounds the search; the wall-time cap is only a safety net,
    # wide here so that a loaded machine does not cut the shrink short.
    found = shrink(
        script, seed=seed, invariant="restart_budget", plant="budget_off_by_one", max_wall_s=500
    )
    assert found.reproduced and not found.cut_short
    assert len(found.script) <= 4 < len(script), found.script
    assert found.replays <= 300
    # What it prints is a test that fails while the bug is on and holds without it.
    text = regression_test(found, command="python -m autoheal.sim ... --shrink")
    space: dict[str, object] = {}
    exec(compile(text, "<printed test>", "exec"), space)
    test = space[f"test_seed_{seed}_budget_off_by_one_restart_budget"]
    with pytest.raises(AssertionError):
        test()  # type: ignore[operator]
    assert run_script(found.script, seed=seed).failures == []


# ---- pasted from the output of
# python -m autoheal.sim --seed 6 --minutes 5 --plant budget_off_by_one --shrink


@pytest.mark.xfail(strict=True, reason="planted bug budget_off_by_one is on", raises=AssertionError)
def test_seed_6_budget_off_by_one_restart_budget() -> None:
    """restart_budget failed; 40 acts cut to 3 by

    python -m autoheal.sim --seed 6 --minutes 5 --plant budget_off_by_one --shrink
    """
    script = [
        {"gap": 0.1, "act": "crash_loop", "code": 1, "name": "trader", "on": True},
        {
            "gap": 0.1,
            "act": "command",
            "key": "k4",
            "reason": "by hand",
            "target": "trader",
            "type": "restart",
        },
        {"gap": 44.7, "act": "wait"},
    ]
    outcome = run_script(script, seed=6, plant="budget_off_by_one")
    failed = [f for f in outcome.failures if f["invariant"] == "restart_budget"]
    assert failed == []


def test_the_pasted_script_holds_without_the_planted_bug() -> None:
    script = [
        {"gap": 0.1, "act": "crash_loop", "code": 1, "name": "trader", "on": True},
        {"gap": 0.1, "act": "command", "key": "k4", "target": "trader", "type": "restart"},
        {"gap": 44.7, "act": "wait"},
    ]
    assert run_script(script, seed=6).failures == []


def test_the_command_line_prints_the_acts_and_a_test_even_when_cut_short(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from autoheal.sim.__main__ import main

    seed = failing_seed()
    argv = ["--seed", str(seed), "--minutes", "5", "--plant", "budget_off_by_one", "--shrink"]
    assert main([*argv, "--shrink-replays", "3"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"shrink: restart_budget: \d+ acts cut to ", out), out
    assert "in 3 replays" in out and "(budget spent: it may shrink further)" in out
    test = out[out.index("from autoheal.sim.script import run_script") :]
    compile(test, "<printed>", "exec")  # the printed test is Python as printed
    assert f'run_script(script, seed={seed}, plant="budget_off_by_one")' in test


def test_the_command_line_says_when_there_is_nothing_to_shrink(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from autoheal.sim.__main__ import main

    assert main(["--seed", "7", "--minutes", "1", "--shrink"]) == 0
    assert "shrink: nothing failed, nothing to shrink" in capsys.readouterr().out
