"""The live-execution gating drills A to G: read-only, verified by hashing the runtime directory.

The scenario's parameters override a safe :class:`LiveEnv` in memory (the
reference's "EnvironmentConfig im Speicher modifizieren"); nothing is written
after the "before" hash is taken, and the "after" hash proves it. The confirm
token is generated per run and never recorded: the report says only
``SET (valid)``, ``SET (invalid)`` or ``NOT SET``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from autoheal.drills.context import DrillContext
from autoheal.guard.live_gating import LiveEnv, hash_confirm_token, is_live_execution_allowed
from autoheal.guard.risk import (
    LIMIT_OF_REASON,
    OpenOrder,
    RiskBook,
    RiskOrder,
    check_order,
    parse_limits,
    to_decimal,
)
from autoheal.store.flags import Flags, write_flags

__all__ = ["hash_tree", "live_gating"]


def hash_tree(root: Path) -> str:
    """sha256 over every file's relative path, size, mtime and content under ``root``."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            st = path.stat()
            digest.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
            digest.update(path.read_bytes())
        digest.update(f"dirs:{','.join(dirnames)}\n".encode())
    return digest.hexdigest()


def _risk(params: dict[str, Any]) -> tuple[bool, list[str], dict[str, Any]]:
    """Drill E: the simulated orders, one by one, through the real pre-trade risk check.

    ``risk_limits`` is a ``[risk]`` table; ``marks`` the reference prices; each allowed
    order joins the book as an open order, so later ones see the exposure it adds.
    Pure (``check_order``): nothing is written, as every gating drill promises.
    """
    table = params.get("risk_limits")
    if not table:
        return False, [], {}
    limits = parse_limits(table, "params.risk_limits")
    marks = {s: to_decimal(v, f"params.marks.{s}") for s, v in (params.get("marks") or {}).items()}
    book = RiskBook(marks=marks)
    reasons: list[str] = []
    orders: list[dict[str, Any]] = []
    for i, o in enumerate(params.get("simulated_orders") or []):
        key = f"params.simulated_orders[{i}]"
        price = o.get("price")
        order = RiskOrder(str(o.get("symbol", "")), str(o.get("side", "buy")),
                          to_decimal(o.get("qty"), f"{key}.qty"),
                          None if price is None else to_decimal(price, f"{key}.price"))
        verdict = check_order(limits, book, order, 0.0)
        orders.append({"symbol": order.symbol, "side": order.side, "qty": str(order.qty),
                       "allowed": verdict.allowed, "reasons": list(verdict.details)})
        if verdict.allowed:
            book = replace(book, open_orders=(*book.open_orders,
                                              OpenOrder(order.symbol, order.side, order.qty)))
        reasons += [r for r in verdict.reasons if r not in reasons]
    return bool(reasons), reasons, {"orders": orders}


#: What each gate name in ``params.ignore_gates`` forces open (the mutation hook).
_OPEN: dict[str, dict[str, Any]] = {
    "mode": {"mode": "live"},
    "enable_live_trading": {"enable_live_trading": True},
    "live_mode_armed": {"live_mode_armed": True},
    "live_dry_run_mode": {"live_dry_run_mode": False},
    "confirm_token": {"confirm_token": "valid"},
    "risk_limits": {"risk_limits": {}},
}


def _mutated(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as a defective gating would see them: each gate in ``ignore_gates``
    forced open (as if its check were missing or inverted)."""
    ignored = [str(g) for g in params.get("ignore_gates", []) or []]
    unknown = sorted(set(ignored) - _OPEN.keys())
    if unknown:
        raise ValueError(f"ignore_gates: unknown gate(s) {unknown}; known: {sorted(_OPEN)}")
    out = dict(params)
    for gate in ignored:
        out.update(_OPEN[gate])
    return out


async def live_gating(ctx: DrillContext) -> None:
    """One gating scenario: evaluate ``is_live_execution_allowed`` and the risk limits.

    ``params.ignore_gates`` is the mutation hook: the named gates (``mode``,
    ``enable_live_trading``, ``live_mode_armed``, ``live_dry_run_mode``,
    ``confirm_token``, ``risk_limits``) are forced open, as a gating whose check is
    missing or inverted would treat them; ``params.write_during = true`` writes a file
    while the gating is evaluated (a drill that is not read-only).
    """
    p = _mutated(ctx.params)
    if p.get("ignore_gates"):
        ctx.details["mutation_ignore_gates"] = list(p["ignore_gates"])
    rt = ctx.runtime_dir
    write_flags(rt, Flags(mode="NORMAL", reason="drill setup", set_by="drill"))
    token = secrets.token_hex(16)
    token_mode = str(p.get("confirm_token", "missing"))
    given = {"valid": token, "invalid": token + "-wrong"}.get(token_mode)
    env = LiveEnv(
        mode=str(p.get("mode", "live")),
        enable_live_trading=bool(p.get("enable_live_trading", False)),
        live_mode_armed=bool(p.get("live_mode_armed", False)),
        live_dry_run_mode=bool(p.get("live_dry_run_mode", True)),
        confirm_token=given,
        confirm_token_sha256=hash_confirm_token(token),
        stop_file=rt / "STOP.TXT",
        runtime_dir=rt,
    )
    before = hash_tree(rt)
    ctx.mark_fault()
    allowed, reason = is_live_execution_allowed(env)
    if p.get("write_during"):
        write_flags(rt, Flags(mode="NORMAL", reason="written during the drill", set_by="drill"))
    risk_blocked, risk_reasons, risk_details = _risk(p)
    ctx.event("gating_decided")
    after = hash_tree(rt)
    mode = env.mode.lower()
    effective = mode if mode != "live" else ("live" if allowed else "live_dry_run")
    ctx.observe("is_live_execution_allowed", allowed)
    ctx.observe("reason", reason)
    ctx.observe("effective_mode", effective)
    ctx.observe("risk_blocked", risk_blocked)
    ctx.observe("risk_reasons", ",".join(risk_reasons))
    ctx.observe("risk_limits_named",
                ",".join(LIMIT_OF_REASON.get(r, r) for r in risk_reasons))
    ctx.observe("would_send_order", allowed and not risk_blocked)
    ctx.observe("disk_unchanged", before == after)
    if not allowed:
        ctx.gate(reason)
    for token in risk_reasons:
        ctx.gate(token)
    token_shown = {"valid": "SET (valid)", "invalid": "SET (invalid)"}.get(token_mode, "NOT SET")
    ctx.details.update({
        "mode": env.mode, "effective_mode": effective,
        "enable_live_trading": env.enable_live_trading, "live_mode_armed": env.live_mode_armed,
        "live_dry_run_mode": env.live_dry_run_mode, "confirm_token": token_shown,
        "reason": reason, "runtime_dir_sha256_before": before[:16],
        "runtime_dir_sha256_after": after[:16],
    })
    if risk_details:
        ctx.details["risk"] = risk_details
