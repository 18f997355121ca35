"""The bot-API calls' decisions (autoheal.core.bot_api), under a stateful property test
against a model of freqtrade's API: modes change, requests fail in every way, the
operator pauses entries by hand, and the safety rules hold after every step."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from autoheal.core.bot_api import (
    MODES,
    BotCall,
    BotTable,
    Ledger,
    Outcome,
    Step,
    forgotten,
    held,
    ledger_from_doc,
    ledger_to_doc,
    plan,
    settle,
)

pytestmark = [pytest.mark.timeout(120)]

#: The recipe's table (config/examples/freqtrade.toml).
FREQTRADE = BotTable(
    calls={
        "stopentry": BotCall("stopentry", "/stopentry", "/reload_config"),
        "stop": BotCall("stop", "/stop", "/start"),
    },
    modes={"DEGRADED": ("stopentry",), "REDUCE_ONLY": ("stopentry",), "FAILSAFE": ("stop",)},
)


class FreqtradeModel:
    """What freqtrade does with each request (its RPC): ``stopentry`` sets
    max_open_trades to 0 until ``reload_config``, which also starts a stopped bot
    (the recipe's ``initial_state = "running"``); ``stop`` and ``start`` switch the loop."""

    def __init__(self) -> None:
        self.entries_paused = False
        self.running = True

    def receive(self, path: str) -> None:
        if path == "/stopentry":
            self.entries_paused = True
        elif path == "/reload_config":
            self.entries_paused, self.running = False, True
        elif path == "/stop":
            self.running = False
        elif path == "/start":
            self.running = True

    def may_enter(self) -> bool:
        return self.running and not self.entries_paused


class BotApiMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.bot = FreqtradeModel()
        self.mode = "NORMAL"
        self.ledger = Ledger()
        self.by_hand = False  # the operator paused entries by hand since autoheal's last
        self.sent_by_autoheal: set[str] = set()

    @rule(mode=st.sampled_from(MODES))
    def mode_changes(self, mode: str) -> None:
        self.mode = mode

    @rule()
    def the_bot_restarts(self) -> None:
        """Its service was restarted (autoheal tells the sender: ``forgotten``)."""
        self.bot = FreqtradeModel()
        self.by_hand = False
        self.ledger = forgotten(self.ledger)

    @rule()
    def operator_pauses_entries_by_hand(self) -> None:
        self.bot.receive("/stopentry")
        self.by_hand = True

    @rule(
        outcomes=st.lists(
            st.tuples(st.sampled_from(list(Outcome)), st.booleans()), min_size=1, max_size=6
        )
    )
    def the_sender_runs(self, outcomes: list[tuple[Outcome, bool]]) -> None:
        """Send the plan's requests until one does not come back OK (as the shell does);
        an UNKNOWN one reached the bot or not (the boolean)."""
        for outcome, reached in outcomes:
            steps = plan(FREQTRADE, self.mode, self.ledger)
            if not steps:
                return
            before = self.ledger
            for step in steps:
                self.check_step(step, before)
                if outcome is Outcome.OK or (outcome is Outcome.UNKNOWN and reached):
                    self.bot.receive(step.path)
                    if step.path == "/stopentry":
                        self.sent_by_autoheal.add("stopentry")
                    if step.path == "/reload_config":
                        self.by_hand = False  # it lifted the operator's pause as well
                self.ledger = settle(self.ledger, step, outcome)
                if outcome is not Outcome.OK:
                    break

    def check_step(self, step: Step, ledger: Ledger) -> None:
        if step.undo:
            # Only what autoheal did is undone, and never what the mode (or a looser
            # one) holds, and never while a call the mode wants is unanswered.
            assert step.call in ledger.done
            assert step.call not in held(FREQTRADE, self.mode)
            wanted = FREQTRADE.modes.get(self.mode, ())
            assert all(c in ledger.done and c not in ledger.unconfirmed for c in wanted)

    @invariant()
    def converged_means_the_mode_holds_at_the_bot(self) -> None:
        if plan(FREQTRADE, self.mode, self.ledger):
            return
        if self.mode == "FAILSAFE":
            assert not self.bot.running
        if self.mode in ("DEGRADED", "REDUCE_ONLY"):
            assert not self.bot.may_enter()
        if self.mode == "NORMAL":
            # Back to normal: entries resume unless the operator paused them by hand.
            assert self.bot.running
            assert self.bot.entries_paused == self.by_hand

    @invariant()
    def the_ledger_survives_its_file(self) -> None:
        assert ledger_from_doc(ledger_to_doc(self.ledger)) == (self.ledger, "")


TestBotApiMachine = BotApiMachine.TestCase
TestBotApiMachine.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)


def test_a_stricter_mode_never_undoes_what_a_looser_one_holds() -> None:
    # FAILSAFE lists only "stop"; DEGRADED's "stopentry" stays in force there.
    ledger = Ledger(("stopentry",))
    assert plan(FREQTRADE, "FAILSAFE", ledger) == (Step("stop", False, "/stop"),)
    ledger = settle(ledger, Step("stop", False, "/stop"), Outcome.OK)
    assert plan(FREQTRADE, "FAILSAFE", ledger) == ()
    # Down to DEGRADED: the stop is undone, the entries stay paused.
    assert plan(FREQTRADE, "DEGRADED", ledger) == (Step("stop", True, "/start"),)
    # Back to NORMAL: both undone, newest first.
    assert plan(FREQTRADE, "NORMAL", ledger) == (
        Step("stop", True, "/start"),
        Step("stopentry", True, "/reload_config"),
    )


def test_a_call_that_did_not_reach_the_bot_is_owed_no_undo() -> None:
    step = Step("stopentry", False, "/stopentry")
    assert settle(Ledger(), step, Outcome.NOT_SENT) == Ledger()
    assert plan(FREQTRADE, "NORMAL", settle(Ledger(), step, Outcome.NOT_SENT)) == ()
    unknown = settle(Ledger(), step, Outcome.UNKNOWN)
    assert unknown == Ledger(("stopentry",), frozenset({"stopentry"}))
    assert plan(FREQTRADE, "DEGRADED", unknown) == (step,)  # sent again
    assert plan(FREQTRADE, "NORMAL", unknown) == (Step("stopentry", True, "/reload_config"),)


def test_a_call_without_an_undo_or_gone_from_the_table_is_left_to_the_operator() -> None:
    table = BotTable(calls={"stop": BotCall("stop", "/stop")}, modes={"FAILSAFE": ("stop",)})
    assert plan(table, "NORMAL", Ledger(("stop", "gone"))) == ()


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ([], "not a JSON object"),
        ({"done": "stop"}, "'done' is not a list of call names"),
        ({"done": [1]}, "'done' is not a list of call names"),
        ({"done": ["stop"], "unconfirmed": None}, "'unconfirmed' is not a list of call names"),
    ],
)
def test_an_unreadable_ledger_is_empty_and_says_why(doc: object, problem: str) -> None:
    assert ledger_from_doc(doc) == (Ledger(), problem)
