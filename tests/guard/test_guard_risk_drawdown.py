"""The drawdown from the peak, K consecutive breaching reads, and the pause on a bad read.

The pure rules (:mod:`autoheal.guard.risk_drawdown`) under a hypothesis state machine
against a model; then the same reads through :class:`RiskGuard` on real files, with
restarts (a new guard on the same runtime directory) among the steps: the count and
the peak are durable, so a restart neither forgives a breach nor invents one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from autoheal.guard.risk import RiskBook, RiskGuard, RiskOrder, parse_limits
from autoheal.guard.risk_drawdown import Drawdown, DrawdownRule, breaches, observe
from autoheal.guard.risk_limits import RiskConfigError
from tests.guard.conftest import FakeClock, daemon_runtime

pytestmark = [pytest.mark.timeout(120)]

LIMIT = D(100)
BAD_READS: list[Any] = [
    None,
    D("NaN"),
    D("sNaN"),
    D("Infinity"),
    D(0),
    D(-5),
    D("1e40"),
    1000.0,
    1000,
    "1000",
]
MARKS = {"BTCUSDT": D(50000)}
LATCH = "risk_latch.json"


def _buy() -> RiskOrder:
    return RiskOrder("BTCUSDT", "buy", D("0.01"), D(50000))


def _sell() -> RiskOrder:
    return RiskOrder("BTCUSDT", "sell", D("0.01"), D(50000))


def _book() -> RiskBook:
    return RiskBook(positions={"BTCUSDT": D("0.02")}, marks=MARKS)


# -- the pure rules under a model -----------------------------------------------------------
class Model:
    """What the rules say, written the plain way."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.peak: D | None = None
        self.count = 0
        self.latched = False

    def good(self, equity: D) -> None:
        self.peak = equity if self.peak is None else max(self.peak, equity)
        if self.peak - equity >= LIMIT:
            self.count += 1
            self.latched = self.latched or self.count >= self.k
        else:
            self.count = 0


equities = st.integers(min_value=1, max_value=2000).map(D)


class PureReads(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rule = DrawdownRule(max_drawdown=LIMIT, breach_reads=3)
        self.state = Drawdown()
        self.model = Model(3)

    @rule(equity=equities)
    def good_read(self, equity: D) -> None:
        self.state = observe(self.state, equity, self.rule)
        self.model.good(equity)

    @rule(data=st.data())
    def breaching_read(self, data: st.DataObject) -> None:
        if self.model.peak is None or self.model.peak <= LIMIT:
            return
        equity = data.draw(st.integers(1, int(self.model.peak - LIMIT)).map(D))
        self.good_read(equity)

    @rule(bad=st.sampled_from(BAD_READS))
    def bad_read(self, bad: Any) -> None:
        before = self.state
        self.state = observe(self.state, bad, self.rule)
        assert self.state == before  # never counts, never latches, never clears

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert self.state.peak_equity == self.model.peak
        assert self.state.breach_reads == self.model.count
        assert self.state.latched == self.model.latched
        if self.state.equity is not None:
            assert self.state.drawdown == self.model.peak - self.state.equity  # type: ignore[operator]


TestPureReads = PureReads.TestCase
TestPureReads.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)


# -- the guard on real files, restarts among the steps ------------------------------------
class GuardReads(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="autoheal-dd-"))
        self.runtime = daemon_runtime(self.tmp / "shared_data")
        self.clock = FakeClock()
        self.wall = FakeClock(1_800_000_000.0)
        self.limits = parse_limits({"max_drawdown": 100, "loss_breach_reads": 3})
        self.guard = self._start()
        self.model = Model(3)
        self.paused = True  # no equity read yet

    def _start(self) -> RiskGuard:
        return RiskGuard(self.limits, self.runtime, time_fn=self.clock, wall_fn=self.wall)

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(equity=equities)
    def good_read(self, equity: D) -> None:
        seen = self.guard.observe_equity(equity)
        self.model.good(equity)
        self.paused = False
        assert seen.good and seen.breach_reads == self.model.count

    @rule(data=st.data())
    def breaching_read(self, data: st.DataObject) -> None:
        if self.model.peak is None or self.model.peak <= LIMIT:
            return
        self.good_read(data.draw(st.integers(1, int(self.model.peak - LIMIT)).map(D)))

    @rule(bad=st.sampled_from(BAD_READS))
    def bad_read(self, bad: Any) -> None:
        seen = self.guard.observe_equity(bad)
        self.paused = True
        assert not seen.good and seen.reason == "risk_pnl_unavailable"

    @rule()
    def restart(self) -> None:
        self.guard = self._start()
        self.paused = True  # a new process has read no equity yet

    @invariant()
    def durable_and_decided_as_the_model(self) -> None:
        doc = json.loads((self.runtime / "risk_pnl.json").read_text()) if self.model.peak else {}
        assert doc.get("breach_reads", 0) == self.model.count
        if self.model.peak is not None:
            assert D(doc["peak_equity"]) == self.model.peak
        assert ("drawdown_latched" in doc) == self.model.latched
        assert (self.runtime / LATCH).exists() == self.model.latched
        ok, reasons = self.guard.check(_buy(), _book())
        assert ("risk_drawdown" in reasons) == self.model.latched
        assert ("risk_pnl_unavailable" in reasons) == self.paused
        assert ok == (not self.model.latched and not self.paused)
        assert self.guard.check(_sell(), _book())[0]  # reducing: always passes


TestGuardReads = GuardReads.TestCase
TestGuardReads.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)


# -- examples ---------------------------------------------------------------------------------
def test_one_absurd_read_does_not_latch_three_do(tmp_path: Path) -> None:
    runtime = daemon_runtime(tmp_path / "rt")
    guard = RiskGuard(parse_limits({"max_drawdown": 100}), runtime)
    guard.observe_equity(D(1000))
    assert not guard.observe_equity(D("0.01")).latched  # a phantom: one read
    assert guard.observe_equity(D(1000)).breach_reads == 0  # the next good read forgives it
    for _ in range(2):
        assert not guard.observe_equity(D("0.01")).latched
    seen = guard.observe_equity(D("0.01"))
    assert seen.latched and seen.reason == "risk_drawdown" and seen.breach_reads == 3
    latch = json.loads((runtime / LATCH).read_text())
    assert latch["mode"] == "REDUCE_ONLY" and latch["reason"].startswith("risk_drawdown ")


def test_drawdown_from_the_peak_latches_while_the_day_is_still_up(tmp_path: Path) -> None:
    runtime = daemon_runtime(tmp_path / "rt")
    limits = parse_limits({"max_drawdown": 100, "max_daily_loss": 500, "loss_breach_reads": 2})
    guard = RiskGuard(limits, runtime)
    guard.observe_equity(D(1000))
    guard.observe_equity(D(1300))  # a profit of 300
    guard.observe_equity(D(1150))  # 150 from the peak; the day still up 150
    seen = guard.observe_equity(D(1150))
    assert seen.latched and seen.drawdown == D(150) and seen.peak_equity == D(1300)
    ok, reasons = guard.check(_buy(), _book())
    assert not ok and reasons == ("risk_drawdown",)
    doc = json.loads((runtime / "risk_pnl.json").read_text())
    assert (doc["peak_equity"], doc["equity"], doc["drawdown"]) == ("1300", "1150", "150")
    assert doc["breach_reads"] == 2 and doc["realized_pnl"] == "0"


def test_the_percent_of_the_peak_and_the_days_marked_loss_breach_too() -> None:
    pct = DrawdownRule(max_drawdown_pct=D(10))
    state = observe(observe(Drawdown(), D(1000), pct), D(900), pct)
    assert breaches(state, pct) and state.breach_reads == 1
    daily = DrawdownRule(max_daily_loss=D(50))
    state = observe(observe(observe(Drawdown(), D(900), daily), D(1000), daily), D(850), daily)
    assert [b.split("=")[0] for b in breaches(state, daily)] == ["marked_loss_today"]


def test_a_bad_read_pauses_entries_at_once_and_the_next_good_one_lifts_it(
    tmp_path: Path,
) -> None:
    runtime = daemon_runtime(tmp_path / "rt")
    guard = RiskGuard(parse_limits({"max_daily_loss": 500}), runtime)  # no drawdown limit
    assert guard.check(_buy(), _book())[0]
    seen = guard.observe_equity(D("NaN"))
    assert not seen.good and not seen.latched
    assert guard.check(_buy(), _book()) == (False, ("risk_pnl_unavailable",))
    assert guard.check(_sell(), _book())[0]
    assert (runtime / "alerts" / "risk_pnl_unavailable.json").exists()
    assert not (runtime / LATCH).exists()
    guard.observe_equity(D(1000))
    assert guard.check(_buy(), _book())[0]
    assert not (runtime / "alerts" / "risk_pnl_unavailable.json").exists()


def test_a_restart_neither_forgives_nor_invents_a_breach(tmp_path: Path) -> None:
    runtime = daemon_runtime(tmp_path / "rt")
    limits = parse_limits({"max_drawdown": 100})
    guard = RiskGuard(limits, runtime)
    for equity in (1000, 850, 850):
        guard.observe_equity(D(equity))
    again = RiskGuard(limits, runtime)  # the trader restarted after two breaching reads
    assert again.check(_buy(), _book()) == (False, ("risk_pnl_unavailable",))  # no read yet
    assert again.observe_equity(D(850)).latched  # the third: the count was kept
    calm = daemon_runtime(tmp_path / "calm")
    RiskGuard(limits, calm).observe_equity(D(1000))
    assert not RiskGuard(limits, calm).observe_equity(D(850)).latched  # one read, one count


def test_a_latch_outlives_midnight_and_no_read_clears_it(tmp_path: Path) -> None:
    runtime = daemon_runtime(tmp_path / "rt")
    wall = FakeClock(1_800_000_000.0)
    limits = parse_limits({"max_drawdown": 100, "loss_breach_reads": 1})
    guard = RiskGuard(limits, runtime, wall_fn=wall)
    guard.observe_equity(D(1000))
    assert guard.observe_equity(D(800)).latched
    wall.advance(86400)
    for equity in (D(5000), None, D(6000)):
        assert guard.observe_equity(equity).latched
    doc = json.loads((runtime / "risk_pnl.json").read_text())
    assert doc["peak_equity"] == "6000" and "drawdown_latched" in doc


@pytest.mark.parametrize(
    "doc_patch",
    [
        {"peak_equity": "1000"},  # the rest missing
        {"peak_equity": "1000", "equity": "900", "drawdown": "50", "breach_reads": 0},
        {"peak_equity": "1000", "equity": "1100", "drawdown": "-100", "breach_reads": 0},
        {"peak_equity": "NaN", "equity": "900", "drawdown": "100", "breach_reads": 0},
        {"peak_equity": "1000", "equity": "900", "drawdown": "100", "breach_reads": -1},
        {"peak_equity": "1000", "equity": "900", "drawdown": "100", "breach_reads": True},
        {"drawdown_latched": {"detail": "x"}},
    ],
)
def test_a_torn_or_inconsistent_drawdown_is_unreadable_never_a_fresh_start(
    tmp_path: Path, doc_patch: dict[str, Any]
) -> None:
    runtime = daemon_runtime(tmp_path / "rt")
    doc = {"schema": 1, "day": "2027-01-15", "realized_pnl": "0", "loss_latched": False}
    (runtime / "risk_pnl.json").write_text(json.dumps({**doc, **doc_patch}))
    guard = RiskGuard(parse_limits({"max_drawdown": 100}), runtime)
    guard.observe_equity(D(1000))
    ok, reasons = guard.check(_buy(), _book())
    assert not ok and "risk_pnl_unreadable" in reasons


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"max_drawdown": 0}, "risk.max_drawdown", "greater than zero"),
        ({"max_drawdown": "nan"}, "risk.max_drawdown", "finite"),
        ({"max_drawdown_pct": 100}, "risk.max_drawdown_pct", "below 100"),
        ({"max_drawdown_pct": -1}, "risk.max_drawdown_pct", "greater than zero"),
        ({"loss_breach_reads": 0}, "risk.loss_breach_reads", "1..1000"),
        ({"loss_breach_reads": 2.5}, "risk.loss_breach_reads", "whole number"),
        ({"loss_breach_reads": True}, "risk.loss_breach_reads", "whole number"),
        ({"loss_breach_reads": 1001}, "risk.loss_breach_reads", "1..1000"),
    ],
)
def test_each_new_key_is_refused_by_name(table: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(RiskConfigError) as err:
        parse_limits(table)
    assert err.value.key == key and words in err.value.problem


def test_the_default_is_three_reads() -> None:
    assert parse_limits({}).loss_breach_reads == 3
    assert parse_limits({"loss_breach_reads": 5}).loss_breach_reads == 5
