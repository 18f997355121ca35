"""Scoped halts on the status page (server-side rendering) and on ``/metrics``.

The page: a line per scoped halt with a clear button only for an operator, hostile
text kept as text, unreadable halts said loudly. ``/metrics``: one
``autoheal_scoped_halts`` series per scope and ``autoheal_scoped_halts_unreadable``,
judged by Prometheus's own ``promtool check metrics``.
"""

from __future__ import annotations

import subprocess

import pytest

from autoheal.web.metrics import Metrics
from autoheal.web.statuspage import render_page
from tests.sysdeps import require_binary

pytestmark = [pytest.mark.timeout(60)]

EVIL = '</script><b>x</b>@@initial@@ & "q"'
DOC = {
    "dor": True,
    "mode": "NORMAL",
    "scoped_halts": {
        "symbol=BTCUSDT": {"reason": "bad fills", "since": 1.0, "set_by": "alice"},
        "strategy=grid,side=buy": {"reason": EVIL, "since": 2.0, "set_by": "bob"},
    },
    "scoped_halts_error": None,
}


def _page(doc: dict[str, object], *, operator: bool) -> str:
    return render_page(doc, [], stale_after_s=5.0, operator=operator).decode()


def test_a_line_per_scoped_halt_and_a_clear_button_only_for_an_operator() -> None:
    read_only = _page(DOC, operator=False)
    assert '<li data-scope="symbol=BTCUSDT"><span class="scope">symbol=BTCUSDT</span>' in read_only
    assert "bad fills, set by alice" in read_only
    assert 'data-type="failsafe_clear_scope"' not in read_only
    operator = _page(DOC, operator=True)
    assert operator.count('data-type="failsafe_clear_scope"') == 2
    assert 'data-target="symbol=BTCUSDT"' in operator
    assert 'data-type="failsafe_enter_scope"' in operator


def test_hostile_text_stays_text_and_garbage_is_loud() -> None:
    html = _page(DOC, operator=True)
    assert "<b>x</b>" not in html
    assert "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;@@initial@@" in html
    bad = _page({"scoped_halts_error": "scoped_halts is a list"}, operator=False)
    assert "SCOPED HALTS UNREADABLE: scoped_halts is a list (every new order halted)" in bad
    assert '<li class="none">none</li>' in _page({}, operator=False)


def test_metrics_have_a_series_per_scope_and_pass_promtool() -> None:
    body = Metrics(lambda: DOC).render()
    assert b'autoheal_scoped_halts{scope="symbol=BTCUSDT"} 1.0' in body
    assert b'autoheal_scoped_halts{scope="strategy=grid,side=buy"} 1.0' in body
    assert b"autoheal_scoped_halts_unreadable 0.0" in body
    garbage = Metrics(lambda: {"scoped_halts_error": "x"}).render()
    assert b"autoheal_scoped_halts_unreadable 1.0" in garbage
    result = subprocess.run(
        [require_binary("promtool", "prometheus"), "check", "metrics"],
        input=body,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
