"""Fault plans for the fake exchange: which requests fail, and how.

Pure: a :class:`FaultPlan` is parsed from the admin document, and
:meth:`FaultState.take` decides, for one request, which fault (if any) applies,
consuming one unit of a counted plan. The shell (``exchange.py``) turns the
decision into bytes on the wire: a 502/503 page, a 429 with ``Retry-After``, a
request that is never answered (``timeout``), a connection closed at once
(``down``), or a request served and *then* the connection closed unanswered
(``accept_then_drop``: the order exists, the client cannot know).

A path selector is either a path prefix on segment boundaries (``/api`` matches
``/api/orders`` but not ``/apix``) or ``"METHOD /path"`` to pick one verb, e.g.
``"POST /api/orders"`` to fail order placement while reads still work.
Admin paths are never faulted; the shell does not even ask.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["FAULT_MODES", "FaultPlan", "FaultState", "parse_fault"]

#: Every mode the admin endpoint accepts; ``none`` clears the fault.
FAULT_MODES = ("none", "http_502", "http_503", "timeout", "rate_limit", "down", "accept_then_drop")
DEFAULT_PATHS = ("/api",)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """One active fault: a mode, the requests it hits, and optionally how many."""

    mode: str = "none"
    paths: tuple[str, ...] = DEFAULT_PATHS
    count: int | None = None
    retry_after: float = 1.0

    def matches(self, method: str, path: str) -> bool:
        """Whether a request ``method path`` is selected by this plan's paths."""
        for selector in self.paths:
            want_method, _, want_path = selector.rpartition(" ")
            if want_method and want_method.upper() != method.upper():
                continue
            prefix = want_path.rstrip("/") or "/"
            if path == prefix or path.startswith(prefix if prefix == "/" else prefix + "/"):
                return True
        return False

    def to_doc(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "paths": list(self.paths),
            "count": self.count,
            "retry_after": self.retry_after,
        }


def parse_fault(doc: Any) -> FaultPlan:
    """Validate the ``POST /admin/fault`` body.

    Args:
        doc: the decoded JSON body.

    Returns:
        The plan; mode ``none`` gives the empty plan.

    Raises:
        ValueError: with a message naming the bad field.
    """
    if not isinstance(doc, dict):
        raise ValueError("body must be a JSON object")
    mode = doc.get("mode", "none")
    if mode not in FAULT_MODES:
        raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
    paths = doc.get("paths", list(DEFAULT_PATHS))
    if (
        not isinstance(paths, list)
        or not paths
        or not all(isinstance(p, str) and "/" in p for p in paths)
    ):
        raise ValueError("paths must be a non-empty list of path prefixes")
    count = doc.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError("count must be a positive integer")
    retry_after = doc.get("retry_after", 1.0)
    if isinstance(retry_after, bool) or not isinstance(retry_after, int | float) or retry_after < 0:
        raise ValueError("retry_after must be a non-negative number of seconds")
    if mode == "none":
        return FaultPlan()
    return FaultPlan(mode, tuple(paths), count, float(retry_after))


@dataclass(slots=True)
class FaultState:
    """The exchange's current plan, with counters for the stats endpoint."""

    plan: FaultPlan = FaultPlan()
    generation: int = 0
    injected: int = 0

    def set(self, plan: FaultPlan) -> None:
        """Replace the plan; the generation bump releases requests held by ``timeout``."""
        self.plan = plan
        self.generation += 1

    def take(self, method: str, path: str) -> FaultPlan | None:
        """Decide whether this request is faulted; a counted plan loses one unit.

        Returns:
            The plan that applies (its ``count`` is what was left before this
            request), or ``None`` when the request should be served normally.
        """
        plan = self.plan
        if plan.mode == "none" or not plan.matches(method, path):
            return None
        if plan.count is not None:
            left = plan.count - 1
            # A counted plan that runs out clears itself, but keeps the generation:
            # requests it left hanging stay hung until an operator changes the fault.
            self.plan = replace(plan, count=left) if left > 0 else FaultPlan()
        self.injected += 1
        return plan

    def to_doc(self) -> dict[str, Any]:
        return {**self.plan.to_doc(), "generation": self.generation, "injected": self.injected}
