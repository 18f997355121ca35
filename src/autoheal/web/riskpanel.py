"""The status page's money side as HTML: headroom, halts, latches, breakers, deadman, recon.

Rendered on the server from the ``risk`` document (:func:`autoheal.core.risk_view.risk_view`),
for the first page and for every push on ``/events`` (the page swaps the panel's
inner HTML, so the page and ``/status`` cannot disagree and no rendering is written
twice). The panel sits in a box of fixed size that scrolls inside: a new halt or a
hundred breakers never move the rest of the page (layout shift 0). Every value from
a file is escaped; absent parts show "—", unreadable ones say so.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["ABSENT", "render_risk"]

ABSENT = "—"


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _rows(part: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = part.get("rows")
    return [_m(r) for r in rows] if isinstance(rows, list) else []


def _when(ts: Any) -> str:
    if isinstance(ts, int | float) and not isinstance(ts, bool) and 0 <= ts < 1e11:
        return time.strftime("%H:%M:%SZ", time.gmtime(ts))
    return ABSENT


def _span(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return ABSENT
    s = float(seconds)
    if abs(s) < 60:
        return f"{s:.1f} s"
    if abs(s) < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _state_note(part: Mapping[str, Any]) -> str | None:
    """A one-cell note for a part that is not ``ok`` (missing: "—"; unreadable: why)."""
    state = part.get("state")
    if state in ("ok", "differences", None):
        return None
    if state == "unreadable":
        detail = part.get("detail")
        return "unreadable" + (f" ({detail})" if detail else "")
    return ABSENT


def _bar(view: Mapping[str, Any]) -> str:
    """A headroom cell: a bar filled to the percentage used, and the numbers."""
    state = str(view.get("state") or "unknown")
    pct = view.get("used_pct")
    width = 0.0 if not isinstance(pct, int | float) else max(0.0, min(100.0, float(pct)))
    used, limit = view.get("used"), view.get("limit")
    if state in ("missing", "absent", "unknown"):
        words = ABSENT
    elif state == "unreadable":
        words = "unreadable" + (f" ({view.get('detail')})" if view.get("detail") else "")
    elif state == "no_limit":
        words = f"{used} (no limit)"
    else:
        words = f"{used} of {limit} ({pct}%)"
    return (
        f'<td class="bar {_esc(state)}"><span class="fill" style="width:{width:.0f}%"></span>'
        f'<span class="words">{_esc(words)}</span></td>'
    )


def _headroom(risk: Mapping[str, Any]) -> str:
    rows = []
    loss = _m(risk.get("daily_loss"))
    day = _esc(f"UTC day {loss.get('day')}" if loss.get("day") else "")
    note = " LATCHED" if loss.get("latched") else ""
    rows.append(
        f'<tr data-risk="daily_loss"><td class="what" title="{day}">day\'s loss{note}</td>'
        f"{_bar(loss)}</tr>"
    )
    dd = _m(risk.get("drawdown"))
    reads = dd.get("breach_reads")
    extra = f", {reads} breach read(s)" if isinstance(reads, int) and reads else ""
    peak = _esc(f"peak {dd.get('peak_equity')}, equity {dd.get('equity')}{extra}")
    rows.append(
        f'<tr data-risk="drawdown"><td class="what" title="{peak}">drawdown from peak</td>'
        f"{_bar(dd)}</tr>"
    )
    positions = _m(risk.get("positions"))
    for p in _rows(positions):
        rows.append(
            f'<tr data-risk="position"><td class="what">position '
            f"{_esc(p.get('symbol'))}</td>{_bar(p)}</tr>"
        )
    rates = _m(risk.get("message_rates"))
    for r in _rows(rates):
        if r.get("state") == "unknown":
            continue
        rows.append(
            f'<tr data-risk="rate"><td class="what">{_esc(r.get("kind"))}/s '
            f"{_esc(r.get('strategy'))}</td>{_bar(r)}</tr>"
        )
    if not _rows(rates):
        rows.append(
            f'<tr data-risk="rate"><td class="what">message rate</td>'
            f'<td class="bar">{ABSENT}</td></tr>'
        )
    return "".join(rows)


def _cols(widths: list[int]) -> str:
    """A fixed column layout (px): long scopes and reasons are cut, never reflowed."""
    return "<colgroup>" + "".join(f'<col style="width:{w}px">' for w in widths) + "</colgroup>"


def _table(table_id: str, cls: str, widths: list[int], body: str) -> str:
    return f'<table id="{table_id}" class="{cls}">{_cols(widths)}<tbody>{body}</tbody></table>'


def _list(part: Mapping[str, Any], cells: list[str], empty: str) -> str:
    note = _state_note(part)
    if note is not None:
        return f'<tr><td colspan="{len(cells)}" class="note">{_esc(note)}</td></tr>'
    rows = _rows(part)
    if not rows:
        return f'<tr><td colspan="{len(cells)}" class="note">{_esc(empty)}</td></tr>'
    out = []
    for r in rows:
        tds = []
        for cell in cells:
            value = r.get(cell)
            if cell == "since":
                value = _when(value)
            elif cell in ("left_s", "open_for_s", "window_s"):
                value = _span(value)
            shown = _esc(ABSENT if value in (None, "") else value)
            tds.append(f'<td class="{_esc(cell)}" title="{shown}">{shown}</td>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    more = part.get("more")
    if isinstance(more, int) and more:
        out.append(f'<tr><td colspan="{len(cells)}" class="note">and {more} more</td></tr>')
    return "".join(out)


def _recon(part: Mapping[str, Any]) -> str:
    note = _state_note(part)
    if note is not None:
        return _esc(note)
    if part.get("state") == "ok":
        words = "in step"
    elif part.get("state") == "unknown":
        why = part.get("problem") or "no reason given"
        words = f"UNKNOWN: the last pass could not be done ({why})"
    else:
        words = (
            f"DIFFERENCES: {part.get('unknown_at_venue')} unknown at the venue, "
            f"{part.get('missing_at_venue')} missing at the venue"
        )
    return _esc(f"{part.get('venue') or ABSENT}: {words}, {_span(part.get('age_s'))} ago")


def render_risk(risk: Mapping[str, Any] | None) -> str:
    """The panel's inner HTML for a ``risk`` document (``None``: the panel is unavailable)."""
    if risk is None:
        return '<p class="note">risk panel unavailable (see the daemon log)</p>'
    halts = _m(risk.get("scoped_halts"))
    latches = _m(risk.get("latches"))
    halt_cls = "halts" + (" active" if _rows(halts) else "")
    latch_cls = "halts" + (" active" if _rows(latches) else "")
    limits = "" if risk.get("limits_configured") else " (no [risk] limits configured)"
    recon = _m(risk.get("reconciliation"))
    recon_cls = "recon " + _esc(recon.get("state") or "")
    breakers = _list(
        _m(risk.get("breakers")), ["key", "state", "open_for_s", "last_reason"], "none"
    )
    deadman = _list(_m(risk.get("deadman")), ["venue", "service", "phase", "left_s"], ABSENT)
    return (
        '<div class="col">'
        f"<h3>risk headroom{_esc(limits)}</h3>"
        + _table("headroom", "", [180, 346], _headroom(risk))
        + f'<h3>reconciliation</h3><p class="{recon_cls}" id="recon">{_recon(recon)}</p>'
        "</div>"
        '<div class="col">'
        "<h3>scoped halts</h3>"
        + _table(
            "scoped-halts",
            halt_cls,
            [190, 170, 70, 96],
            _list(halts, ["scope", "reason", "set_by", "since"], "none"),
        )
        + "<h3>repeated-execution latches (executions, window)</h3>"
        + _table(
            "latches",
            latch_cls,
            [280, 70, 80, 96],
            _list(latches, ["scope", "executions", "window_s", "since"], "none"),
        )
        + "<h3>breakers</h3>"
        + _table("breakers", "", [130, 90, 90, 216], breakers)
        + "<h3>dead man's switch (the venue cancels all in)</h3>"
        + _table("deadman", "", [130, 130, 90, 176], deadman)
        + "</div>"
    )
