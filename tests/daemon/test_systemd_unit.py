"""The shipped unit gives the daemon the descriptors it sizes itself for (issue 18 A2)."""

from __future__ import annotations

from pathlib import Path

from autoheal.core.admission import MAX_CONNECTIONS, budget_for_fds

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "autoheal.service"


def unit_value(key: str) -> str:
    values = [
        line.split("=", 1)[1].strip()
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]
    assert len(values) == 1, f"{key}= set {len(values)} times in {UNIT.name}"
    return values[0]


def test_limit_nofile_covers_500_services_and_a_full_status_server_issue18() -> None:
    soft = int(unit_value("LimitNOFILE").split(":")[0])
    budget = budget_for_fds(soft, services=500)
    assert not budget.short, budget
    assert budget.limits.max_connections == MAX_CONNECTIONS
