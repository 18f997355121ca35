"""The next restart against a real daemon in BACKOFF (issue 23): ``health_v2.json``,
``autoheal status`` (text and ``--json``) and ``/metrics`` say when it comes, which
attempt of how many, why, and what is left of the budget; and they agree."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoheal.drills.stacks.simple import read_doc, wait_for
from tests.e2e.backoff import BACKOFF_S, backoff_runtime, make_feeder_fail
from tests.sysdeps import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def samples(body: bytes, name: str) -> dict[str, float]:
    """``name``'s samples by their ``component`` label."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels["component"]] = sample.value
    return out


def test_status_json_and_metrics_show_the_next_restart_during_a_backoff(tmp_path: Path) -> None:
    with backoff_runtime(tmp_path, status_listen=True) as rt:
        rt.start_daemon()
        endpoint = wait_for(
            lambda: read_doc(rt.runtime_dir / "status_endpoint.json"), 10, "the status endpoint"
        )
        scheduled_at = time.time()
        outlook = make_feeder_fail(rt)

        # The health document: wall-clock moments, the budget, what a failure then does.
        health = rt.health() or {}
        feeder = health["components"]["feeder"]
        assert feeder["stage"] == "BACKOFF"
        assert outlook["reason"] == "process_exited"
        assert (outlook["attempt"], outlook["attempts"]) == (2, 1)
        assert (outlook["max_restarts"], outlook["attempts_left"]) == (3, 2)
        assert feeder["outlook"]["restart_at"] == feeder["next_restart_at"]
        # Rebuilt each beat: the monotonic-to-wall shift moves by microseconds.
        assert feeder["next_restart_at"] == pytest.approx(outlook["restart_at"], abs=0.01)
        assert scheduled_at < outlook["restart_at"] <= time.time() + BACKOFF_S
        assert (outlook["on_failure"], outlook["on_failure_delay_s"]) == ("restart", 2 * BACKOFF_S)
        assert outlook["attempts_reset_at"] is None and outlook["stable_reset_s"] == 600.0
        trader = health["components"]["trader"]["outlook"]
        assert (trader["next"], trader["attempts"], trader["on_failure_delay_s"]) == (
            "healthy",
            0,
            0.0,
        )

        # autoheal status, text: the restart's countdown, attempt, reason and budget.
        text = rt.cli("status")
        assert text.returncode == 1, text.stderr  # DOR is false during the backoff
        lines = text.stdout.splitlines()
        assert lines[lines.index("") + 1].split() == ["NAME", "STAGE", "NEXT", "RESTART"]
        line = next(ln for ln in lines if ln.startswith("feeder  BACKOFF  restart in"))
        found = re.search(r"restart in (\d+\.\d)s \(attempt 2 of 3, reason process_exited\)", line)
        assert found, text.stdout
        assert 0 < float(found.group(1)) <= BACKOFF_S
        assert "if it fails: restart after 1m20s" in line
        assert line.endswith("; budget resets 10m00s after it is healthy")
        assert not any(ln.startswith("trader  OBSERVE  healthy") for ln in lines)

        # --json: the same document, counted down against the command's clock.
        before = time.time()
        shown = rt.cli("status", "--json")
        after = time.time()
        view = orjson.loads(shown.stdout)["components"]["feeder"]["outlook"]
        assert view["restart_at"] == pytest.approx(outlook["restart_at"], abs=0.01)
        assert (
            outlook["restart_at"] - after <= view["restart_in_s"] <= outlook["restart_at"] - before
        )
        assert view["attempts_reset_in_s"] is None

        # /metrics: the daemon builds the document at the scrape.
        url = f"http://127.0.0.1:{endpoint['port']}/metrics"
        before = time.time()
        body = httpx.get(url, timeout=10).content
        after = time.time()
        assert samples(body, "autoheal_restart_attempts") == {"feeder": 1.0, "trader": 0.0}
        assert samples(body, "autoheal_restart_attempts_max") == {"feeder": 3.0, "trader": 3.0}
        next_in = samples(body, "autoheal_next_restart_seconds")
        assert set(next_in) == {"feeder"}  # none scheduled for the trader: no sample
        slack = 0.01
        at = outlook["restart_at"]
        assert at - after - slack <= next_in["feeder"] <= at - before + slack
        outlooks = [
            (s.labels["component"], s.labels["next"])
            for f in text_string_to_metric_families(body.decode())
            for s in f.samples
            if s.name == "autoheal_restart_outlook" and s.value == 1.0
        ]
        assert sorted(outlooks) == [("feeder", "scheduled"), ("trader", "healthy")]

    promtool = require_binary("promtool", "prometheus")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
