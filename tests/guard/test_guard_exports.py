"""The public surface and the import boundary of autoheal.guard."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import autoheal.guard as guard

GUARD_DIR = pathlib.Path(guard.__file__).parent
ALLOWED_TOP = {"autoheal", "watchfiles"}  # watchfiles: imported lazily, by start()/awatch()


def test_guard_all_is_exactly_the_public_surface():
    assert sorted(guard.__all__) == guard.__all__
    assert set(guard.__all__) == {
        "Backoff",
        "BreakerOpenError",
        "BreakerPolicy",
        "BusRead",
        "CallFailedError",
        "CircuitBreaker",
        "Classification",
        "CountdownPort",
        "DeadmanPolicy",
        "DeadmanSwitch",
        "GateStatus",
        "GuardError",
        "Heartbeat",
        "InventoryGate",
        "LedgerUnreadableError",
        "LiveEnv",
        "NonRetryableError",
        "OpenOrder",
        "OrderLedger",
        "OrderOutcomeUnknownError",
        "PlaceResult",
        "RetriesExhaustedError",
        "RiskBook",
        "RiskConfigError",
        "RiskGuard",
        "RiskLimits",
        "RiskOrder",
        "StateBus",
        "StateBusValidationError",
        "StateSchema",
        "TradingGate",
        "acall_with_retry",
        "call_with_retry",
        "check_inventory",
        "check_order",
        "classify",
        "hash_confirm_token",
        "is_live_execution_allowed",
        "order_signature",
        "parse_limits",
    }
    for name in guard.__all__:
        assert getattr(guard, name) is not None


def test_guard_imports_only_stdlib_watchfiles_and_store():
    stdlib = set(sys.stdlib_module_names)
    for path in GUARD_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module == "autoheal":
                # ``from autoheal import runtime_files``: the file names, nothing else.
                names = [f"autoheal.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top in ALLOWED_TOP, f"{path.name} imports {name}"
                if top == "autoheal":
                    allowed = {"guard", "store", "runtime_files"}  # never the core (autoheal-guard)
                    assert name.split(".")[1] in allowed, f"{path.name}: {name}"


@pytest.mark.slow
def test_guard_import_has_no_side_effects(tmp_path):
    code = (
        "import threading, os, sys; before = set(os.listdir('.')); import autoheal.guard; "
        "assert threading.active_count() == 1; assert set(os.listdir('.')) == before; "
        "assert 'autoheal.daemon' not in sys.modules; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.strip() == "ok"


def test_every_export_is_the_object_not_a_module_even_after_its_module_was_imported():
    """The exports are lazy: a submodule imported first must not shadow a same-named export."""
    import importlib
    import types

    import autoheal.guard as guard

    importlib.import_module("autoheal.guard.classify")  # the module named like its function
    for name in guard.__all__:
        assert not isinstance(getattr(guard, name), types.ModuleType), name
    from autoheal.guard import classify

    assert callable(classify)


def test_the_guards_latch_is_signed_as_the_core_reads_it():
    """The guard names the latch's signer itself (it takes no part of the core): the same."""
    from autoheal.core.switch import RISK, TIGHTEN_ONLY
    from autoheal.store.flags import RISK_SET_BY

    assert RISK_SET_BY == RISK
    assert RISK_SET_BY in TIGHTEN_ONLY
