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
