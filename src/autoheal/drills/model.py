"""The drill data model: scenarios as data in, results as data out.

A :class:`Scenario` is read from a TOML file (see ``autoheal/drills/scenarios/``)::

    name = "breaker_trip"                # unique; also the file's stem
    title = "Circuit breaker trip"
    kind = "guard_breaker"               # a built-in step vocabulary (drills/steps/kinds.py)
    description = "..."
    runbook = "Scenario 7"               # where the criteria come from (report only)
    seed = 7
    time_scale = 0.01                    # runbook seconds x time_scale = drill seconds
    default = true                       # part of `autoheal drill run` with no names

    [params]                             # the kind's parameters (counts, thresholds)
    failures = 3

    [[expect]]                           # observations with deadlines, from the fault
    event = "breaker_open"
    within_s = 1.0                       # runbook seconds; scaled, plus slack_s
    detect = true                        # this event is the "time to detect"

    [[criteria]]                         # measured values against thresholds
    name = "orders_while_open"
    observed = "orders_while_open"       # key the step records
    op = "=="
    expected = 0

    [rollback]
    steps = ["clear_exchange_fault"]     # run after the drill, also when aborted

Results are plain frozen dataclasses that turn into JSON documents.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "OPS",
    "Criterion",
    "CriterionSpec",
    "DrillResult",
    "Expectation",
    "Report",
    "Scenario",
    "ScenarioError",
    "Status",
    "load_scenario_file",
    "parse_scenario",
]

OPS = ("==", "!=", "<", "<=", ">", ">=", "contains", "not_contains", "in")


class Status(enum.StrEnum):
    """A drill's outcome."""

    PASSED = "PASSED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"
    ERROR = "ERROR"


class ScenarioError(ValueError):
    """A scenario file is not a valid scenario; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class Expectation:
    """An observation the drill must see, at most ``within_s`` runbook seconds after the fault."""

    event: str
    within_s: float
    detect: bool = False
    recover: bool = False
    slack_s: float = 0.25


@dataclass(frozen=True, slots=True)
class CriterionSpec:
    """A threshold on a recorded observation."""

    name: str
    observed: str
    op: str
    expected: Any


@dataclass(frozen=True, slots=True)
class Scenario:
    """One drill, as data."""

    name: str
    title: str
    kind: str
    description: str = ""
    runbook: str = ""
    seed: int = 0
    time_scale: float = 1.0
    default: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)
    expect: tuple[Expectation, ...] = ()
    criteria: tuple[CriterionSpec, ...] = ()
    rollback: tuple[str, ...] = ()
    protect_files: tuple[str, ...] = ()
    source: str = ""

    def with_params(self, **changes: Any) -> Scenario:
        """A copy with some parameters replaced (mutation tests, ``--set``)."""
        from dataclasses import replace

        return replace(self, params={**self.params, **changes})


@dataclass(frozen=True, slots=True)
class Criterion:
    """One criterion as evaluated: what was expected, what was seen, whether it held.

    A time criterion (an ``[[expect]]`` deadline) also carries ``measured_s`` (seconds
    from the fault, ``None`` when never seen) and ``bound_s`` (the scaled deadline), so
    the report can show its margin; a count or value criterion leaves both ``None``.
    """

    name: str
    expected: str
    observed: str
    held: bool
    measured_s: float | None = None
    bound_s: float | None = None

    @property
    def margin_s(self) -> float | None:
        """``bound_s - measured_s``: how much earlier than its deadline it happened."""
        if self.measured_s is None or self.bound_s is None:
            return None
        return self.bound_s - self.measured_s

    @property
    def margin_pct(self) -> float | None:
        """The margin as a percentage of the bound (negative when the deadline was missed)."""
        margin = self.margin_s
        if margin is None or self.bound_s is None or self.bound_s <= 0:
            return None
        return 100.0 * margin / self.bound_s

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "expected": self.expected,
                               "observed": self.observed, "held": self.held}
        if self.bound_s is not None:
            doc["kind"] = "time"
            doc["bound_s"] = round(self.bound_s, 4)
            doc["measured_s"] = None if self.measured_s is None else round(self.measured_s, 4)
            margin, pct = self.margin_s, self.margin_pct
            doc["margin_s"] = None if margin is None else round(margin, 4)
            doc["margin_pct"] = None if pct is None else round(pct, 1)
        return doc


@dataclass(frozen=True, slots=True)
class DrillResult:
    """The outcome of one drill."""

    name: str
    title: str
    status: Status
    time_to_detect_s: float | None
    time_to_recover_s: float | None
    criteria: tuple[Criterion, ...] = ()
    gates_fired: tuple[str, ...] = ()
    violations: tuple[str, ...] = ()
    seed: int = 0
    started_at: str = ""
    duration_s: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)
    #: What happened when, in seconds from the fault, for the timeline picture
    #: (:mod:`autoheal.drills.trace`); empty when nothing was recorded.
    timeline: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed_criteria(self) -> list[Criterion]:
        return [c for c in self.criteria if not c.held]

    @property
    def tightest(self) -> Criterion | None:
        """The time criterion with the smallest margin in % of its bound (``None``: none)."""
        timed = [c for c in self.criteria if c.margin_pct is not None]
        return min(timed, key=lambda c: c.margin_pct or 0.0) if timed else None

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["status"] = str(self.status)
        doc["criteria"] = [c.to_doc() for c in self.criteria]
        doc["details"] = dict(self.details)
        if not self.timeline:
            del doc["timeline"]
        else:
            doc["timeline"] = dict(self.timeline)
        return doc


@dataclass(frozen=True, slots=True)
class Report:
    """A whole run: every drill's result plus when, where and at which time scale.

    ``target`` is the config given with ``--target`` and ``on_target`` the drills that
    ran against it; the others ran on their own runtime directories.
    """

    results: tuple[DrillResult, ...]
    started_at: str
    duration_s: float
    time_scale: str
    json_path: str | None = None
    target: str | None = None
    on_target: tuple[str, ...] = ()
    #: Every report file written (JSON reports and their timeline pictures), for the text.
    files: tuple[str, ...] = ()
    #: By whose clock the drills judged (``scaled 1/20``, ``from target policy``,
    #: ``runbook``, ``--time-scale X``), each basis used once, comma-separated.
    time_basis: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.status is Status.PASSED for r in self.results)

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in Status}
        for r in self.results:
            out[str(r.status)] += 1
        return out

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": 1,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "time_scale": self.time_scale,
            "time_basis": self.time_basis,
            "passed": self.passed,
            "counts": self.counts(),
            "drills": [r.to_doc() for r in self.results],
        }
        if self.target is not None:
            doc["target"] = {"config": self.target, "drills": list(self.on_target)}
        return doc


# --------------------------------------------------------------------------- parsing


def _need(doc: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    value = doc.get(key)
    if value is None or (isinstance(value, bool) and bool not in _as_tuple(typ)):
        raise ScenarioError(f"{where}: {key}: missing or wrong type")
    if not isinstance(value, typ):
        raise ScenarioError(f"{where}: {key}: must be {_names(typ)}, got {type(value).__name__}")
    return value


def _as_tuple(typ: type | tuple[type, ...]) -> tuple[type, ...]:
    return typ if isinstance(typ, tuple) else (typ,)


def _names(typ: type | tuple[type, ...]) -> str:
    return "/".join(t.__name__ for t in _as_tuple(typ))


def _table_list(doc: Mapping[str, Any], key: str, where: str) -> Iterable[Mapping[str, Any]]:
    items = doc.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ScenarioError(f"{where}: {key}: must be an array of tables ([[{key}]])")
    return items


def parse_scenario(doc: Mapping[str, Any], *, source: str = "<scenario>") -> Scenario:
    """Validate a decoded scenario document.

    Raises:
        ScenarioError: naming ``source`` and the key at fault.
    """
    name = _need(doc, "name", str, source)
    kind = _need(doc, "kind", str, source)
    scale = doc.get("time_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 1:
        raise ScenarioError(f"{source}: time_scale: must be a number in (0, 1]")
    params = doc.get("params", {})
    if not isinstance(params, dict):
        raise ScenarioError(f"{source}: params: must be a table")
    expect = []
    for i, e in enumerate(_table_list(doc, "expect", source)):
        where = f"{source}: expect[{i}]"
        within = _need(e, "within_s", (int, float), where)
        expect.append(Expectation(
            _need(e, "event", str, where), float(within), bool(e.get("detect", False)),
            bool(e.get("recover", False)), float(e.get("slack_s", 0.25))))
    criteria = []
    for i, c in enumerate(_table_list(doc, "criteria", source)):
        where = f"{source}: criteria[{i}]"
        op = c.get("op", "==")
        if op not in OPS:
            raise ScenarioError(f"{where}: op: must be one of {', '.join(OPS)}")
        if "expected" not in c:
            raise ScenarioError(f"{where}: expected: missing")
        cname = _need(c, "name", str, where)
        criteria.append(CriterionSpec(cname, str(c.get("observed", cname)), op, c["expected"]))
    rollback = doc.get("rollback", {}).get("steps", [])
    protect = doc.get("protect", {}).get("files", [])
    for key, value in (("rollback.steps", rollback), ("protect.files", protect)):
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise ScenarioError(f"{source}: {key}: must be a list of strings")
    return Scenario(
        name=name,
        title=str(doc.get("title", name)),
        kind=kind,
        description=str(doc.get("description", "")).strip(),
        runbook=str(doc.get("runbook", "")),
        seed=int(doc.get("seed", 0)),
        time_scale=float(scale),
        default=bool(doc.get("default", True)),
        params=dict(params),
        expect=tuple(expect),
        criteria=tuple(criteria),
        rollback=tuple(rollback),
        protect_files=tuple(protect),
        source=source,
    )


def load_scenario_file(path: Path) -> Scenario:
    """Read and validate one scenario file.

    Raises:
        ScenarioError: unreadable, not TOML, or not a valid scenario.
    """
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    return parse_scenario(doc, source=str(path))
