"""Shrinking a failing seed: its acts cut down to the few that still fail, as a test.

A failing run's acts (its script, :mod:`autoheal.sim.script`) are cut down by delta
debugging (Zeller's ``ddmin``: drop halves, then quarters, ... of the list, keeping a
cut when the replay still fails), then each remaining act is simplified (the gaps
rounded, then shortened; no passes before a kill; no command with a kill). The
predicate is "the same invariant fails", on a replay with the same seed (it orders
trio's scheduling) and the same planted bug. Each replay is a whole run, so the
search is bounded: at most ``max_replays`` replays and ``max_wall_s`` seconds; what it
has then is printed (a shrink cut short says so).

:func:`regression_test` prints the result as a pytest function to paste into
``tests/sim/``: it replays the acts and asserts the invariant holds, so it fails as
long as the bug is there.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autoheal.sim.run import SETTLE_S
from autoheal.sim.script import Script, run_script

__all__ = ["Shrunk", "act_literal", "regression_test", "shrink"]


@dataclass
class Shrunk:
    """What a shrink found."""

    seed: int
    plant: str | None
    invariant: str
    original: Script
    script: Script
    replays: int = 0
    wall_s: float = 0.0
    cut_short: bool = False
    """The budget ran out before the search was done (the script may shrink further)."""
    reproduced: bool = True
    """The whole original script failed the same way when replayed."""
    strict: bool = False
    """Known bugs failed the replays too (``--strict``): the printed test says so."""


class _OutOfBudget(Exception):
    pass


class _Search:
    def __init__(
        self,
        fails: Callable[[Script], bool],
        max_replays: int,
        max_wall_s: float,
    ) -> None:
        self._fails = fails
        self._max_replays, self._deadline = max_replays, time.monotonic() + max_wall_s
        self._seen: dict[str, bool] = {}
        self.replays = 0

    def fails(self, script: Script) -> bool:
        key = json.dumps(script, sort_keys=True)
        if key not in self._seen:
            if self.replays >= self._max_replays or time.monotonic() >= self._deadline:
                raise _OutOfBudget
            self.replays += 1
            self._seen[key] = self._fails(script)
        return self._seen[key]

    def ddmin(self, script: Script) -> Script:
        """The smallest list ``ddmin`` reaches that still fails (1-minimal if not cut)."""
        n = 2
        while len(script) >= 2:
            size = math.ceil(len(script) / n)
            chunks = [script[i : i + size] for i in range(0, len(script), size)]
            for i, chunk in enumerate(chunks):
                if self.fails(chunk):
                    script, n = chunk, 2
                    break
                complement = [a for j, c in enumerate(chunks) if j != i for a in c]
                if len(chunks) > 2 and self.fails(complement):
                    script, n = complement, max(n - 1, 2)
                    break
            else:
                if n >= len(script):
                    break
                n = min(len(script), 2 * n)
        return script

    def simplify(self, script: Script) -> Script:
        """Each act made plainer where the failure stays: gaps, passes, extras."""
        rounded = [_with(a, gap=round(float(a.get("gap", 0.0)), 1)) for a in script]
        if rounded != script and self.fails(rounded):
            script = rounded
        i = 0
        while i + 1 < len(script):  # two waits in a row: one wait as long as both
            a, b = script[i], script[i + 1]
            if a.get("act") == b.get("act") == "wait":
                gap = round(float(a.get("gap", 0.0)) + SETTLE_S + float(b.get("gap", 0.0)), 3)
                merged = [*script[:i], {"gap": gap, "act": "wait"}, *script[i + 2 :]]
                if self.fails(merged):
                    script = merged
                    continue
            i += 1
        for i in range(len(script)):
            for simpler in _simpler(script[i]):
                candidate = [*script[:i], simpler, *script[i + 1 :]]
                if self.fails(candidate):
                    script = candidate
                    break
        return script


def _with(act: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**act, **changes}


def _simpler(act: dict[str, Any]) -> list[dict[str, Any]]:
    """Plainer versions of one act, the plainest first."""
    gap = float(act.get("gap", 0.0))
    out: list[dict[str, Any]] = []
    if act.get("act") != "wait":  # the act may matter only by the time it took
        out.append({"gap": gap, "act": "wait"})
    for shorter in (0.5, 1.0, round(gap / 2, 1)):
        if 0 < shorter < gap:
            out.append(_with(act, gap=shorter))
    if act.get("act") == "daemon_kill":
        if act.get("passes"):
            out.append(_with(act, passes=0))
        if "command" in act:
            out.append({k: v for k, v in act.items() if k != "command"})
    return out


def shrink(
    script: Script,
    *,
    seed: int,
    invariant: str,
    plant: str | None = None,
    strict: bool = False,
    max_replays: int = 300,
    max_wall_s: float = 300.0,
) -> Shrunk:
    """Cut ``script`` down to acts that still fail ``invariant`` (bounded; see module)."""
    started = time.monotonic()

    def fails(candidate: Script) -> bool:
        out = run_script(candidate, seed=seed, plant=plant, strict=strict)
        return any(f["invariant"] == invariant for f in out.failures)

    search = _Search(fails, max_replays, max_wall_s)
    found = Shrunk(seed, plant, invariant, list(script), list(script), strict=strict)
    try:
        if not search.fails(found.script):
            found.reproduced = False
        else:
            while True:  # until neither a cut nor a simplification helps
                before = found.script
                found.script = search.simplify(search.ddmin(found.script))
                if found.script == before:
                    break
    except _OutOfBudget:
        found.cut_short = True
    found.replays = search.replays
    found.wall_s = time.monotonic() - started
    return found


def _literal(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return json.dumps(value)  # double quotes; its escapes are Python's too
    return repr(value)  # bool, None, int, float: Python's own spelling


def act_literal(act: dict[str, Any]) -> str:
    """One act as a Python literal, ``gap`` and ``act`` first."""
    first: dict[str, Any] = {k: act[k] for k in ("gap", "act") if k in act}
    return _literal({**first, **act})


def _act_lines(act: dict[str, Any], indent: str) -> str:
    """One act as lines of a list, wrapped as ``ruff format`` wraps a long dict."""
    one = f"{indent}{act_literal(act)},"
    if len(one) <= 100:
        return one
    first: dict[str, Any] = {k: act[k] for k in ("gap", "act") if k in act}
    ordered: dict[str, Any] = {**first, **act}
    inner = "".join(f"{indent}    {json.dumps(k)}: {_literal(v)},\n" for k, v in ordered.items())
    return f"{indent}{{\n{inner}{indent}}},"


def regression_test(found: Shrunk, *, command: str) -> str:
    """The shrunk acts as a pytest function (with its imports) to paste into tests/sim/."""
    name = f"test_seed_{found.seed}_{found.plant or 'sim'}_{found.invariant}"
    plant = "" if found.plant is None else f", plant={found.plant!r}".replace("'", '"')
    plant += ", strict=True" if found.strict else ""
    acts = "\n".join(_act_lines(a, " " * 8) for a in found.script)
    return f'''from autoheal.sim.script import run_script


def {name}() -> None:
    """{found.invariant} failed; {len(found.original)} acts cut to {len(found.script)} by

    {command}
    """
    script = [
{acts}
    ]
    outcome = run_script(script, seed={found.seed}{plant})
    failed = [f for f in outcome.failures if f["invariant"] == "{found.invariant}"]
    assert failed == []
'''
