"""``/metrics``' restart outlook (issue 23), rendered from a health document and parsed
back with prometheus-client: seconds counted from the document's ``ts``, the budget, and
no sample where there is no moment (or no outlook: a document from before it)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoheal.core.outlook import Next
from autoheal.web.metrics import Metrics

pytestmark = [pytest.mark.timeout(30)]

TS = 1_795_000_000.0


def outlook(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "next": "scheduled", "reason": "process_exited", "attempt": 2, "attempts": 1,
        "max_restarts": 3, "attempts_left": 2, "restart_at": TS + 12.5, "verify_until": None,
        "attempts_reset_at": None, "stable_reset_s": 600.0, "on_failure": "restart",
        "on_failure_delay_s": 30.0,
    }  # fmt: skip
    doc.update(overrides)
    return doc


def scrape(doc: dict[str, Any]) -> dict[str, dict[tuple[str, ...], float]]:
    body = Metrics(lambda: doc).render().decode()
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.values()))] = s.value
    return out


def test_the_next_restart_and_the_budget_per_component() -> None:
    doc = {
        "ts": TS,
        "components": {
            "feeder": {"stage": "BACKOFF", "outlook": outlook()},
            "trader": {
                "stage": "OBSERVE",
                "outlook": outlook(
                    next="healthy",
                    attempt=None,
                    restart_at=None,
                    attempts=2,
                    attempts_reset_at=TS + 598.0,
                ),
            },
            "old": {"stage": "OBSERVE"},  # written before the outlook existed
        },
    }
    got = scrape(doc)
    assert got["autoheal_next_restart_seconds"] == {("feeder",): 12.5}
    assert got["autoheal_restart_budget_reset_seconds"] == {("trader",): 598.0}
    assert got["autoheal_restart_attempts"] == {("feeder",): 1.0, ("trader",): 2.0}
    assert got["autoheal_restart_attempts_max"] == {("feeder",): 3.0, ("trader",): 3.0}
    flags = got["autoheal_restart_outlook"]
    assert len(flags) == 2 * len(Next)
    assert {k for k, v in flags.items() if v == 1.0} == {
        ("feeder", "scheduled"),
        ("healthy", "trader"),
    }


def test_a_moment_already_past_counts_as_zero_never_negative() -> None:
    doc = {"ts": TS, "components": {"feeder": {"outlook": outlook(restart_at=TS - 1.0)}}}
    assert scrape(doc)["autoheal_next_restart_seconds"] == {("feeder",): 0.0}
