"""Shared builders for core tests: a two-component runtime with one external dependency."""

from __future__ import annotations

import pytest

from autoheal.core.policy import ComponentSpec, HealPolicy, Policy

HEAL = HealPolicy(
    failures_before_restart=2,
    restart_backoff=(15.0, 30.0, 60.0),
    verify_window=90.0,
    max_restarts=3,
    stable_reset=600.0,
)


def make_policy(heal: HealPolicy = HEAL) -> Policy:
    return Policy(
        components={
            "feeder": ComponentSpec("feeder", ("process", "heartbeat"), ("exchange",), True, heal),
            "trader": ComponentSpec("trader", ("process", "heartbeat"), ("exchange",), True, heal),
        },
        dependencies={"exchange": ("http",)},
        failures_before_degraded=2,
    )


@pytest.fixture
def policy() -> Policy:
    return make_policy()
