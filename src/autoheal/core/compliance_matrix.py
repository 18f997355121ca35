"""The compliance matrix as data: each control of MiFID II RTS 6 and the FIA guide, and its drills.

One row per control an algorithmic-trading firm is held to (Delegated Regulation
2017/589, "RTS 6"; the FIA's 2015 "Best practices for automated trading risk
controls and system safeguards"): what autoheal does for it (the mechanism, the
config keys, the reason tokens an operator will see) and the drills that prove it.
A row is only as good as its drills: ``autoheal compliance`` judges each row by the
last results of *every* drill it names (:mod:`autoheal.core.compliance`), and
docs/compliance.md says the same in plain words, and what is not covered.

Data only (no judgement here), so a new control or drill is one edit in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONTROLS", "Control", "drill_names"]


@dataclass(frozen=True, slots=True)
class Control:
    """One row of the matrix.

    Attributes:
        key: a short stable id (``rts6_12``), for JSON and tests.
        article: where the rule is written (``RTS 6 Art. 12``).
        title: the rule in a few words.
        mechanism: how autoheal meets it, in one sentence.
        config: the config keys that set it (may be empty: always on).
        tokens: the reason tokens it gives (logs, files, ``status``).
        drills: the drills that prove it; every one must pass within the window.
    """

    key: str
    article: str
    title: str
    mechanism: str
    config: tuple[str, ...]
    tokens: tuple[str, ...]
    drills: tuple[str, ...]


CONTROLS: tuple[Control, ...] = (
    Control(
        "rts6_12",
        "RTS 6 Art. 12",
        "kill functionality: cancel any or all unexecuted orders, at any or all venues",
        "STOP.TXT / failsafe halt every new order and the dead man's switch cancels all "
        "resting orders at once; a scoped kill (strategy, symbol, venue) cancels that "
        "scope's own orders and re-reads until none remain",
        ("paths.stop_file", "global_flags.json scoped_halts"),
        ("operator", "scoped_halt", "max_restarts_exceeded"),
        (
            "stop_file_cancels_resting_orders",
            "host_dies_with_resting_orders",
            "scoped_kill_symbol",
        ),
    ),
    Control(
        "rts6_15_1_a",
        "RTS 6 Art. 15(1)(a)",
        "price collars, per order and over a period",
        "the guard refuses an order priced more than the collar from the reference, and "
        "one whose price moved more than the window's collar from the window's reference",
        ("risk.price_collar_pct", "risk.collar_window_pct", "risk.collar_window_s"),
        ("risk_price_collar", "risk_collar_window"),
        ("execution_limits",),
    ),
    Control(
        "rts6_15_1_b",
        "RTS 6 Art. 15(1)(b)",
        "maximum order value",
        "the guard refuses an order whose notional passes the limit (Decimal arithmetic)",
        ("risk.max_order_notional", "risk.max_live_notional_total"),
        ("risk_max_order_notional", "risk_notional_total"),
        ("live_gating_e",),
    ),
    Control(
        "rts6_15_1_c",
        "RTS 6 Art. 15(1)(c)",
        "maximum order volume",
        "the guard refuses an order whose quantity passes the limit, and a duplicate "
        "signal inside the idempotency window",
        ("risk.max_order_qty",),
        ("risk_max_order_qty", "duplicate"),
        ("live_gating_e", "duplicate_signals"),
    ),
    Control(
        "rts6_15_1_d",
        "RTS 6 Art. 15(1)(d)",
        "maximum messages (submit, modify, cancel)",
        "per-strategy message limits (submit, modify, cancel per second) and an order "
        "throttle in the guard; past them a submit or modify is refused, not queued; a "
        "cancel is counted but never refused (refusing it would keep risk open)",
        (
            "risk.max_orders_per_second",
            "risk.max_submits_per_s",
            "risk.max_modifies_per_s",
            "risk.max_cancels_per_s",
        ),
        ("risk_throttle", "risk_message_rate"),
        ("execution_limits",),
    ),
    Control(
        "rts6_15_2",
        "RTS 6 Art. 15(2)",
        "market and credit risk limits: position, daily loss, drawdown",
        "position and exposure limits per order; the day's realized loss and the drawdown "
        "from the peak are kept durably and latch REDUCE_ONLY after K consecutive "
        "breaching reads; an unreadable P&L pauses entries without latching",
        (
            "risk.max_position",
            "risk.max_daily_loss",
            "risk.max_drawdown",
            "risk.max_drawdown_pct",
            "risk.loss_breach_reads",
        ),
        ("risk_max_position", "risk_daily_loss", "risk_drawdown", "risk_pnl_unavailable"),
        ("daily_loss_survives_restart", "phantom_loss_read", "drawdown_from_peak"),
    ),
    Control(
        "rts6_15_3",
        "RTS 6 Art. 15(3)",
        "repeated automated executions disable the system until a designated person acts",
        "N executions of one strategy/symbol/side within a window latch that scope off "
        "(risk_scope_latches.json) until an operator re-enables it by name (journaled)",
        ("risk.max_repeated_executions", "risk.repeated_execution_window_s"),
        ("risk_repeated_execution",),
        ("repeated_execution_throttle",),
    ),
    Control(
        "rts6_16",
        "RTS 6 Art. 16",
        "real-time monitoring and alerts",
        "probes every second; failures become alerts, notifications, the status page, "
        "/metrics and the journal; a breaker opens on repeated venue errors",
        ("services.*.probes", "webhooks", "daemon.status_listen"),
        ("heartbeat_stale", "CONN_TIMEOUT", "breaker_open"),
        ("breaker_trip", "hung_trader"),
    ),
    Control(
        "rts6_17",
        "RTS 6 Art. 17 (17(3))",
        "post-trade controls; reconcile own records with the venue's in real time",
        "an unknown order outcome is asked of the venue, never resent; the guard's ledger "
        "is reconciled with the venue's open orders, and an order it does not know is "
        "reported (alert), never adopted",
        ("ledger runtime/order_sigs.json", "reconciliation.json"),
        ("order_unknown_at_venue", "order_missing_at_venue", "ledger_unreadable"),
        ("unknown_outcome_never_resent", "reconcile_unknown_order"),
    ),
    Control(
        "fia_1_11",
        "FIA 2015 guide 1.11",
        "kill switch operable by the trader and by risk; may allow risk-reducing orders",
        "the CLI, the status page (token) and the fleet switch all reach the same "
        "journaled kill switch; REDUCE_ONLY (and DEGRADED, an open breaker) lets "
        "position-reducing sells through while buys are refused",
        ("daemon.status_token_env", "fleet"),
        ("operator", "fleet", "REDUCE_ONLY"),
        ("scoped_kill_symbol", "exchange_outage"),
    ),
)


def drill_names(controls: tuple[Control, ...] = CONTROLS) -> tuple[str, ...]:
    """Every drill the matrix names, once each, in the order of first mention."""
    seen: dict[str, None] = {}
    for control in controls:
        for name in control.drills:
            seen.setdefault(name)
    return tuple(seen)
