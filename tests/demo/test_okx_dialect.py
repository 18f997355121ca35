"""The OKX dialect in process, on a clock the test turns: cancel-all-after's edges.

No process and no waiting: the same ``answer(request)`` the exchange routes to, with
requests signed as ccxt signs them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson

from autoheal.demo.httpserver import HttpRequest
from autoheal.demo.market import Ledger, PriceWalk
from autoheal.demo.okx import OkxCredentials, OkxDialect, sign
from autoheal.demo.resting import RestingBook

CREDS = OkxCredentials("key", "secret", "pass")
START_MS = 1_700_000_000_000


class Venue:
    def __init__(self) -> None:
        self.now_ms = START_MS
        self.resting = RestingBook()
        self.dialect = OkxDialect(
            PriceWalk(random.Random(1)), Ledger(), self.resting, CREDS, lambda: self.now_ms
        )

    def post(self, path: str, doc: Any) -> dict[str, Any]:
        body = orjson.dumps(doc)
        stamp = datetime.fromtimestamp(self.now_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        stamp = stamp[:-3] + "Z"
        headers = {
            "ok-access-key": CREDS.api_key,
            "ok-access-passphrase": CREDS.passphrase,
            "ok-access-timestamp": stamp,
            "ok-access-sign": sign(CREDS.secret, stamp + "POST" + path + body.decode()),
        }
        response = self.dialect.answer(HttpRequest("POST", path, {}, headers, body))
        answer: dict[str, Any] = orjson.loads(response.body)
        return answer

    def place(self, tag: str = "") -> str:
        order = {
            "instId": "BTC-USDT-SWAP",
            "tdMode": "cross",
            "side": "buy",
            "ordType": "limit",
            "sz": "1",
            "px": "1000",
        }
        answer = self.post("/api/v5/trade/order", order | ({"tag": tag} if tag else {}))
        assert answer["code"] == "0", answer
        return str(answer["data"][0]["ordId"])

    def arm(self, seconds: Any, tag: str = "") -> dict[str, Any]:
        doc = {"timeOut": seconds} | ({"tag": tag} if tag else {})
        return self.post("/api/v5/trade/cancel-all-after", doc)


def test_the_account_countdown_fires_at_its_deadline_not_before() -> None:
    venue = Venue()
    venue.place()
    armed = venue.arm("10")
    assert armed["data"][0]["triggerTime"] == str(START_MS + 10_000)
    venue.now_ms += 9_999
    assert venue.dialect.expire(venue.now_ms) == 0
    venue.now_ms += 1
    assert venue.dialect.expire(venue.now_ms) == 1
    assert venue.resting.open == {}
    assert venue.dialect.countdowns_doc(venue.now_ms) == {"armed": {}, "fired": 1}


def test_re_arming_pushes_the_deadline_back() -> None:
    venue = Venue()
    venue.place()
    venue.arm(10)
    venue.now_ms += 8_000
    venue.arm(10)  # the heartbeat
    venue.now_ms += 8_000
    assert venue.dialect.expire(venue.now_ms) == 0
    venue.now_ms += 2_000
    assert venue.dialect.expire(venue.now_ms) == 1


def test_a_tag_countdown_cancels_only_that_tags_orders() -> None:
    venue = Venue()
    venue.place(tag="bot1")
    kept = venue.place()
    venue.arm(10, tag="bot1")
    venue.now_ms += 10_000
    assert venue.dialect.expire(venue.now_ms) == 1
    assert [venue.dialect._id(i) for i in venue.resting.open] == [kept]


def test_out_of_range_timeouts_are_refused_in_the_venues_words() -> None:
    venue = Venue()
    for bad in ("9", 121, "10.5", "-1", "ten", True):
        assert venue.arm(bad) == {"code": "51000", "msg": "Parameter timeOut error", "data": []}
    assert venue.arm("120")["code"] == "0"
    assert venue.post("/api/v5/trade/cancel-all-after", {})["code"] == "50014"
