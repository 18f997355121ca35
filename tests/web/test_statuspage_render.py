"""The status page's server-side rendering (pure): correct without JavaScript, and
hostile text from a component's reason stays text."""

from __future__ import annotations

import orjson

from autoheal.web.statuspage import EVENT_ROWS, render_page

EVIL = '</script><script>alert(1)</script>@@initial@@ & "quoted"'
DOC = {
    "dor": False,
    "mode": "SIGNAL_READ_ONLY",
    "failsafe": True,
    "failsafe_reason": EVIL,
    "components": {
        "feeder": {"stage": "FAILSAFE", "ok": False, "reason": EVIL, "pid": 42, "restarts": 3,
                   "probes": {"heartbeat": {"value": 0.25}}},
    },
    "dependencies": {
        "exchange_rest": {"ok": True, "reason": "", "probes": {"http": {"value": 0.012}}}
    },
}


def page(**kw: object) -> str:
    return render_page(DOC, [], stale_after_s=5.0, operator=False, **kw).decode()  # type: ignore[arg-type]


def test_the_current_state_is_in_the_html() -> None:
    html = page()
    assert '<span class="value" id="dor">false</span>' in html
    assert '<td class="pid">42</td>' in html
    assert '<td class="heartbeat">250 ms</td>' in html
    assert "http=12 ms" in html
    assert 'data-stale-ms="5000"' in html
    assert html.count("<li data-row=") == EVENT_ROWS  # fixed rows: nothing moves later


def test_hostile_text_stays_text() -> None:
    html = page()
    assert "<script>alert(1)" not in html
    assert html.count("</script>") == 2  # the two script elements of the page itself
    tag = '<script id="initial" type="application/json">'
    initial = html.split(tag, 1)[1].split("</script>")[0]
    assert orjson.loads(initial)["health"]["failsafe_reason"] == EVIL


def test_buttons_only_for_an_operator() -> None:
    assert "button" not in page().split("<main>")[1].split("</main>")[0]
    html = render_page(DOC, [], stale_after_s=5.0, operator=True).decode()
    assert 'data-type="restart" data-target="feeder"' in html
    assert 'data-type="failsafe_enter"' in html


def test_the_next_restart_without_javascript_as_of_the_documents_ts() -> None:
    outlook = {
        "next": "scheduled", "reason": EVIL, "attempt": 3, "attempts": 2, "max_restarts": 3,
        "restart_at": 1000.0 + 12.46, "attempts_reset_at": None, "stable_reset_s": 600.0,
        "on_failure": "failsafe", "on_failure_delay_s": None,
    }  # fmt: skip
    doc = {**DOC, "ts": 1000.0, "components": {
        "feeder": {**DOC["components"]["feeder"], "stage": "BACKOFF", "outlook": outlook},  # type: ignore[dict-item]
        EVIL: {"stage": "OBSERVE", "ok": True, "outlook": {**outlook, "next": "healthy",
               "attempt": None, "attempts": 1, "attempts_reset_at": 1000.0 + 598.0}},
    }}  # fmt: skip
    html = render_page(doc, [], stale_after_s=5.0, operator=False).decode()
    row = html[html.index('<tr data-outlook="feeder">') :].split("</tr>")[0]
    assert '<td class="next scheduled">restart in 12.5 s (last attempt 3 of 3)</td>' in row
    assert '<td class="then">FAILSAFE</td>' in row
    assert '<td class="budget">2 of 3 used, resets 10m00s after healthy</td>' in row
    assert "<script>alert" not in html.split('<script id="initial"')[0]
    assert "1 of 3 used, resets in 9m58s" in html
