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
    InEffect,
    Ledger,
    Outcome,
    Step,
    forgotten,
    held,
    ledger_from_doc,
    ledger_to_doc,
    plan,
    settle,
    tidy,
)

pytestmark = [pytest.mark.timeout(120)]

#: The recipe's table (config/examples/freqtrade.toml).
FREQTRADE = BotTable(
    calls={
        "stopentry": BotCall(
            "stopentry",
            "/stopentry",
            "/start",
            InEffect("/show_config", "/state", ("paused", "stopped")),
        ),
        "stop": BotCall(
            "stop", "/stop", "/stopentry", InEffect("/show_config", "/state", ("stopped",))
        ),
    },
    modes={
        "DEGRADED": ("stopentry",),
        "REDUCE_ONLY": ("stopentry",),
        "FAILSAFE": ("stopentry", "stop"),
    },
)


class FreqtradeModel:
    """What freqtrade 2026.9 does with each request (its RPC): one state, ``running``,
    ``paused`` (``/stopentry``, alias ``/pause``: no entries, exits handled, also from
    ``stopped``) or ``stopped`` (``/stop``: no loop); ``/start`` runs it."""

    def __init__(self) -> None:
        self.state = "running"
        #: Who stopped the entries, while they are stopped: "hand" or "autoheal".
        self.paused_by: str | None = None

    def receive(self, path: str, sender: str = "autoheal") -> None:
        before = self.state
        self.state = {"/stopentry": "paused", "/stop": "stopped", "/start": "running"}[path]
        if before == "running" and self.state != "running":
            self.paused_by = sender
        if self.state == "running":
            self.paused_by = None

    def may_enter(self) -> bool:
        return self.state == "running"

    def shows(self, step: Step) -> bool:
        """``GET /show_config`` answers that the call is in effect."""
        check = FREQTRADE.calls[step.call].in_effect
        assert check is not None
        return self.state in check.one_of


class BotApiMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.bot = FreqtradeModel()
        self.mode = "NORMAL"
        self.ledger = Ledger()
        self.by_hand = False  # the operator paused entries by hand since autoheal's last
        #: A stopentry or its undo came back UNKNOWN since the pause was last known
        #: clean: autoheal cannot tell its pause from an operator's (documented).
        self.doubt = False

    @rule(mode=st.sampled_from(MODES))
    def mode_changes(self, mode: str) -> None:
        self.mode = mode

    @rule()
    def the_bot_restarts(self) -> None:
        """Its service was restarted (autoheal tells the sender: ``forgotten``)."""
        self.bot = FreqtradeModel()
        self.by_hand = self.doubt = False
        self.ledger = forgotten(self.ledger)

    @rule(path=st.sampled_from(["/stopentry", "/stop"]))
    def operator_pauses_or_stops_the_bot_by_hand(self, path: str) -> None:
        self.bot.receive(path, "hand")
        self.by_hand = True

    @rule(
        outcomes=st.lists(
            st.tuples(
                st.sampled_from([Outcome.OK, Outcome.NOT_SENT, Outcome.UNKNOWN]), st.booleans()
            ),
            min_size=1,
            max_size=6,
        )
    )
    def the_sender_runs(self, outcomes: list[tuple[Outcome, bool]]) -> None:
        """Send the plan's requests as the shell does (every call; undos until one does
        not come back OK); an UNKNOWN one reached the bot or not (the boolean)."""
        for drawn, reached in outcomes:
            self.ledger = tidy(FREQTRADE, self.mode, self.ledger)
            steps = plan(FREQTRADE, self.mode, self.ledger)
            if not steps:
                return
            before = self.ledger
            for step in steps:
                self.check_step(step, before)
                outcome = drawn
                if not step.undo and outcome is not Outcome.NOT_SENT and self.bot.shows(step):
                    outcome = Outcome.IN_EFFECT  # the sender's GET saw it: nothing sent
                if outcome is Outcome.UNKNOWN and step.call == "stopentry":
                    self.doubt = True
                if outcome is Outcome.OK or (outcome is Outcome.UNKNOWN and reached):
                    self.bot.receive(step.path)
                    if step.path == "/start":
                        self.by_hand = False  # it lifted whatever the operator did too
                        self.doubt = self.doubt and outcome is not Outcome.OK
                self.ledger = settle(self.ledger, step, outcome)
                if outcome not in (Outcome.OK, Outcome.IN_EFFECT) and step.undo:
                    break

    def check_step(self, step: Step, ledger: Ledger) -> None:
        if step.undo and step.call == "stopentry" and not self.doubt:
            # An operator's pause made before autoheal's never gets lifted by autoheal.
            assert self.bot.paused_by != "hand"
        if step.undo:
            # Only what autoheal did is undone, and never what the mode (or a looser
            # one) holds, and never while a call the mode wants is unanswered.
            assert step.call in ledger.done
            assert step.call not in held(FREQTRADE, self.mode)
            wanted = FREQTRADE.modes.get(self.mode, ())
            assert all(
                c in ledger.foreign or (c in ledger.done and c not in ledger.unconfirmed)
                for c in wanted
            )

    @invariant()
    def converged_means_the_mode_holds_at_the_bot(self) -> None:
        if plan(FREQTRADE, self.mode, tidy(FREQTRADE, self.mode, self.ledger)):
            return
        if self.mode == "FAILSAFE" and not self.by_hand:  # the operator may resume exits
            assert self.bot.state == "stopped"
        if self.mode in ("DEGRADED", "REDUCE_ONLY"):
            assert not self.bot.may_enter()
        if self.mode == "NORMAL" and not self.by_hand:
            # Back to normal: entries resume, unless the operator paused them by hand.
            assert self.bot.state == "running"

    @invariant()
    def the_ledger_survives_its_file(self) -> None:
        assert ledger_from_doc(ledger_to_doc(self.ledger)) == (self.ledger, "")


TestBotApiMachine = BotApiMachine.TestCase
TestBotApiMachine.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)


def test_a_stricter_mode_never_undoes_what_a_looser_one_holds() -> None:
    # A table whose FAILSAFE lists only "stop": DEGRADED's "stopentry" stays in force.
    table = BotTable(FREQTRADE.calls, {**FREQTRADE.modes, "FAILSAFE": ("stop",)})
    ledger = Ledger(("stopentry",))
    assert plan(table, "FAILSAFE", ledger) == (Step("stop", False, "/stop"),)
    ledger = settle(ledger, Step("stop", False, "/stop"), Outcome.OK)
    assert plan(table, "FAILSAFE", ledger) == ()
    # Down to DEGRADED: the stop is undone (freqtrade: stopped -> paused), the entries
    # stay paused.
    assert plan(table, "DEGRADED", ledger) == (Step("stop", True, "/stopentry"),)
    # Back to NORMAL: both undone, newest first (stopped -> paused -> running).
    assert plan(table, "NORMAL", ledger) == (
        Step("stop", True, "/stopentry"),
        Step("stopentry", True, "/start"),
    )


def test_a_call_that_did_not_reach_the_bot_is_owed_no_undo() -> None:
    step = Step("stopentry", False, "/stopentry")
    assert settle(Ledger(), step, Outcome.NOT_SENT) == Ledger()
    assert plan(FREQTRADE, "NORMAL", settle(Ledger(), step, Outcome.NOT_SENT)) == ()
    unknown = settle(Ledger(), step, Outcome.UNKNOWN)
    assert unknown == Ledger(("stopentry",), frozenset({"stopentry"}))
    assert plan(FREQTRADE, "DEGRADED", unknown) == (step,)  # sent again
    assert plan(FREQTRADE, "NORMAL", unknown) == (Step("stopentry", True, "/start"),)


def test_a_call_without_an_undo_or_gone_from_the_table_is_left_to_the_operator() -> None:
    table = BotTable(calls={"stop": BotCall("stop", "/stop")}, modes={"FAILSAFE": ("stop",)})
    assert plan(table, "NORMAL", Ledger(("stop", "gone"))) == ()


def test_a_call_found_in_effect_is_someone_elses_until_the_mode_lets_go() -> None:
    step = Step("stopentry", False, "/stopentry")
    ledger = settle(Ledger(), step, Outcome.IN_EFFECT)
    assert ledger == Ledger(foreign=frozenset({"stopentry"}))
    assert plan(FREQTRADE, "DEGRADED", ledger) == ()  # neither sent nor undone
    assert plan(FREQTRADE, "NORMAL", ledger) == ()
    assert tidy(FREQTRADE, "FAILSAFE", ledger) == ledger  # FAILSAFE holds it too
    assert tidy(FREQTRADE, "NORMAL", ledger) == Ledger()  # asked again next time
    # Autoheal's own call, its answer lost, then seen in effect: its own, confirmed.
    mine = settle(Ledger(), step, Outcome.UNKNOWN)
    assert settle(mine, step, Outcome.IN_EFFECT) == Ledger(("stopentry",))


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
