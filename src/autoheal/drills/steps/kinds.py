"""The built-in step vocabulary: a scenario's ``kind`` names one of these.

An operator adds a drill by writing a scenario file whose ``kind`` is one of
:data:`KINDS` and whose ``[params]``, ``[[expect]]`` and ``[[criteria]]`` say
what to do and what must hold; adding a new *kind* is the only thing that needs
Python.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from autoheal.drills.context import DrillContext
from autoheal.drills.steps.ccxt_venue import ccxt_host_dies, ccxt_kill, ccxt_unknown_outcome
from autoheal.drills.steps.daemon import daemon
from autoheal.drills.steps.deadman import deadman_host_dies, deadman_stop_file
from autoheal.drills.steps.freqtrade import freqtrade_drill
from autoheal.drills.steps.gating import live_gating
from autoheal.drills.steps.guard import (
    breaker_trip,
    duplicate_signals,
    sell_without_position,
    state_bus_corrupt,
)
from autoheal.drills.steps.judging import daemon_template
from autoheal.drills.steps.limits import execution_limits
from autoheal.drills.steps.loss import daily_loss_restart, equity_reads
from autoheal.drills.steps.orders import unknown_outcome_never_resent
from autoheal.drills.steps.outage import exchange_outage
from autoheal.drills.steps.reconcile import reconcile_unknown_order
from autoheal.drills.steps.scoped import scoped_kill
from autoheal.drills.steps.throttle import repeated_execution

__all__ = ["KINDS", "Step"]

Step = Callable[[DrillContext], Awaitable[None]]

KINDS: dict[str, Step] = {
    "guard_duplicates": duplicate_signals,
    "guard_sell_without_position": sell_without_position,
    "guard_breaker": breaker_trip,
    "guard_state_bus_corrupt": state_bus_corrupt,
    "exchange_outage": exchange_outage,
    "live_gating": live_gating,
    "daemon": daemon,
    "deadman_host_dies": deadman_host_dies,
    "deadman_stop_file": deadman_stop_file,
    "order_unknown_outcome": unknown_outcome_never_resent,
    "ccxt_host_dies": ccxt_host_dies,
    "ccxt_kill": ccxt_kill,
    "ccxt_unknown_outcome": ccxt_unknown_outcome,
    "freqtrade": freqtrade_drill,
    "daemon_template": daemon_template,
    "risk_equity_reads": equity_reads,
    "risk_daily_loss_restart": daily_loss_restart,
    "scoped_kill": scoped_kill,
    "risk_execution_limits": execution_limits,
    "reconcile_unknown_order": reconcile_unknown_order,
    "risk_repeated_execution": repeated_execution,
}
