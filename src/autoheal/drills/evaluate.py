"""Compare what a drill recorded with what its scenario expects. Pure: data in, data out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoheal.drills.model import Criterion, CriterionSpec, Expectation, Scenario

__all__ = ["MISSING", "check_criterion", "check_expectation", "evaluate", "holds", "scale_label"]


class _Missing:
    def __repr__(self) -> str:
        return "not observed"


MISSING: Any = _Missing()


def scale_label(scale: float) -> str:
    """``0.01`` -> ``"1/100"``; ``1`` -> ``"1/1"``."""
    if scale <= 0:
        return "?"
    return f"1/{round(1 / scale):g}" if abs(1 / scale - round(1 / scale)) < 1e-6 else f"{scale:g}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:g}"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def holds(op: str, observed: Any, expected: Any) -> bool:
    if observed is MISSING:
        return False
    try:
        match op:
            case "==":
                return bool(observed == expected)
            case "!=":
                return bool(observed != expected)
            case "<":
                return bool(observed < expected)
            case "<=":
                return bool(observed <= expected)
            case ">":
                return bool(observed > expected)
            case ">=":
                return bool(observed >= expected)
            case "contains":
                return _contains(observed, expected)
            case "not_contains":
                return not _contains(observed, expected)
            case "in":
                return bool(observed in expected)
    except TypeError:
        return False
    return False


def _contains(observed: Any, expected: Any) -> bool:
    wanted = expected if isinstance(expected, list) else [expected]
    if isinstance(observed, str):
        return all(str(w) in observed for w in wanted)
    if isinstance(observed, list | tuple | set | frozenset | dict):
        if all(isinstance(o, str) for o in observed) and all(isinstance(w, str) for w in wanted):
            # For captured log lines: each wanted text must appear inside some line.
            return all(any(w in o for o in observed) for w in wanted)
        return all(w in observed for w in wanted)
    return False


def check_criterion(spec: CriterionSpec, observations: Mapping[str, Any]) -> Criterion:
    """Evaluate one threshold against the recorded observations."""
    observed = observations.get(spec.observed, MISSING)
    held = holds(spec.op, observed, spec.expected)
    shown = "not observed" if observed is MISSING else _fmt(observed)
    if spec.op in ("contains", "not_contains") and isinstance(observed, list | tuple):
        shown = f"{len(observed)} items" + ("" if held else f" (missing {spec.expected!r})")
    expected = f"{spec.op} {_fmt(spec.expected)}"
    if spec.op in ("contains", "not_contains") and isinstance(spec.expected, list):
        expected = f"{spec.op} {len(spec.expected)} required lines"
    return Criterion(spec.name, expected, shown, held)


def check_expectation(exp: Expectation, after_fault_s: float | None, scale: float) -> Criterion:
    """An expected observation: seen, and no later than its scaled deadline.

    The result carries the measured time and the deadline, so its margin can be shown.
    """
    deadline = exp.within_s * scale + exp.slack_s
    expected = f"within {deadline:.2f}s ({exp.within_s:g}s at {scale_label(scale)})"
    if after_fault_s is None:
        return Criterion(f"event:{exp.event}", expected, "never observed", False,
                         bound_s=deadline)
    return Criterion(
        f"event:{exp.event}", expected, f"after {after_fault_s:.2f}s", after_fault_s <= deadline,
        measured_s=after_fault_s, bound_s=deadline,
    )


def evaluate(
    scenario: Scenario,
    observations: Mapping[str, Any],
    events_after_fault: Mapping[str, float | None],
) -> tuple[list[Criterion], float | None, float | None]:
    """Every expectation and criterion of ``scenario``, plus the detect and recover times.

    Args:
        scenario: the scenario.
        observations: what the step measured.
        events_after_fault: seconds from the fault to each event that happened.

    Returns:
        ``(criteria, time_to_detect_s, time_to_recover_s)``.
    """
    results: list[Criterion] = []
    detect = recover = None
    for exp in scenario.expect:
        at = events_after_fault.get(exp.event)
        results.append(check_expectation(exp, at, scenario.time_scale))
        if exp.detect and at is not None:
            detect = at
        if exp.recover and at is not None:
            recover = at
    results.extend(check_criterion(spec, observations) for spec in scenario.criteria)
    return results, detect, recover
