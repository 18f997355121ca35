"""Target mode: a ``daemon`` drill played against a running target's own runtime.

``autoheal drill run --target CONFIG`` (a ``testnet`` or ``paper`` config; ``live``
is refused before anything runs) does not bring up a demo stack for the
``daemon`` drills. It requires the target's daemon to be running with
``--chaos``, injects the scenario's fault through the target's durable command
queue, watches the target's ``health_v2.json`` with the scenario's watches and
deadlines, and always sends ``chaos heal`` through the same queue afterwards.

What cannot be done against a target is said, never faked:

* faults that rewrite the config (``fail_on_start``) are not applicable: the
  drill is ``ERROR`` and the target's config is never touched;
* a fault naming a service or dependency the target does not have is ``ERROR``;
* criteria that count orders at the drill's own fake exchange (``/admin/stats``)
  cannot be checked against a real exchange: they are skipped and listed in the
  result's ``skipped_criteria``.

By whose clock (:func:`target_plan`): by default every fault's length and every
deadline is computed from the target's own settings (:class:`TargetTiming`: probe
intervals, timeouts and ``max_age``, ``failures_before_restart``, the degraded
threshold, ``stop_timeout``, ``verify_min_uptime``); ``--time-scale X`` plays the
scenario's runbook timings times ``X`` instead (``1``: the runbook's real timings).
The report names the basis (``from target policy``, ``runbook``, ``--time-scale X``).
A scenario says which of its events is which phase in ``params.on_target``
(``detect``, ``restart``, ``stale``, ``fault``, ``recover``).

Before any fault (:meth:`TargetStack.start`) the drill takes the target's drill lock
(``<runtime_dir>/drills/.lock``, an ``flock``: two drills never overlap) and waits for
its preconditions (:func:`precondition_problem`: DOR true, no failsafe, every component
in OBSERVE with no restart or verification pending, the component a kill or stall hits
outside any restart episode); after ``wait_s`` it is refused (``DrillRefusedError``)
with the reason, and nothing was injected.

The pure checks (:func:`fault_problem`, :func:`daemon_problem`,
:func:`precondition_problem`, :func:`exchange_criteria`, :func:`phase_times`) take data
and return a reason, ``None`` or numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from autoheal.chaos.blast import ProtectedSet
from autoheal.drills.model import Expectation, Scenario
from autoheal.drills.stacks.demo import DrillUnavailableError, queue_chaos
from autoheal.store import layout as runtime_files
from autoheal.store.atomic import read_json
from autoheal.store.flags import stop_file_present
from autoheal.store.lock import PidLock, lock_holder

if TYPE_CHECKING:
    from autoheal.config import Config
    from autoheal.drills.context import DrillContext

__all__ = [
    "EXCHANGE_ONLY",
    "TARGET_KINDS",
    "DrillLock",
    "DrillRefusedError",
    "DrillTarget",
    "PhaseTimes",
    "ProbeTiming",
    "TargetStack",
    "TargetTiming",
    "daemon_problem",
    "default_wait_s",
    "exchange_criteria",
    "fault_problem",
    "phase_times",
    "precondition_problem",
    "target_plan",
]

#: Scenario kinds that run against a target; every other kind keeps its own temp dirs.
TARGET_KINDS = frozenset({"daemon"})
#: Why a criterion is skipped against a target.
EXCHANGE_ONLY = "counts orders at the drill's own exchange: not available against a target"
NOT_RUNNING = "target daemon not running with --chaos"
_SERVICE_FAULTS = frozenset({"kill", "stall"})
_DEPENDENCY_FAULTS = frozenset({"netcut", "latency"})
_CONFIG_FAULTS = frozenset({"fail_on_start"})


#: Runbook phases a scenario's events map onto against a target (``params.on_target``).
PHASES = ("detect", "restart", "stale", "fault", "recover")
#: Deadlines are the computed time times this, plus :attr:`TargetTiming.slack_s`.
MARGIN_FACTOR = 1.25
#: A restarted service's own start: interpreter, first heartbeat, first stream message.
STARTUP_S = 3.0
#: A client reconnecting after the network is back (its retry backoff and connect
#: timeout live in its own code, not in autoheal's config).
RECONNECT_S = 10.0
#: Seconds between precondition checks while a drill waits for them.
PRECONDITION_POLL_S = 0.25
BASIS_TARGET = "from target policy"


class DrillRefusedError(DrillUnavailableError):
    """The target did not meet a drill's preconditions (or another drill held the lock)
    within the wait bound; nothing was injected."""


@dataclass(frozen=True, slots=True)
class ProbeTiming:
    """One probe's timing settings (seconds)."""

    kind: str
    interval: float
    timeout: float
    max_age: float | None = None
    latency_p95: float | None = None
    window: int = 20


@dataclass(frozen=True, slots=True)
class TargetTiming:
    """A target's settings that decide how fast it can see and heal a fault (pure data).

    ``probes`` holds every service's and dependency's probes by owner name,
    ``stop_timeout`` every service's grace period, ``depends_on`` each service's
    dependencies.
    """

    failures_before_restart: int = 2
    failures_before_degraded: int = 2
    restart_backoff: tuple[float, ...] = (15.0, 30.0, 60.0, 120.0, 300.0)
    verify_window: float = 90.0
    verify_min_uptime: float = 2.0
    stable_reset: float = 600.0
    heartbeat_interval: float = 1.0
    probes: Mapping[str, tuple[ProbeTiming, ...]] = field(default_factory=dict)
    stop_timeout: Mapping[str, float] = field(default_factory=dict)
    depends_on: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Config) -> TargetTiming:
        def probes(items: Any) -> tuple[ProbeTiming, ...]:
            return tuple(ProbeTiming(p.kind, p.interval, p.timeout, p.max_age, p.latency_p95,
                                     p.window) for p in items)

        pol = cfg.policy
        return cls(
            failures_before_restart=pol.failures_before_restart,
            # The daemon's degraded threshold is its restart threshold (daemon/wiring.py).
            failures_before_degraded=pol.failures_before_restart,
            restart_backoff=tuple(pol.restart_backoff), verify_window=pol.verify_window,
            verify_min_uptime=pol.verify_min_uptime, stable_reset=pol.stable_reset,
            heartbeat_interval=cfg.daemon.heartbeat_interval,
            probes={**{n: probes(s.probes) for n, s in cfg.services.items()},
                    **{n: probes(d.probes) for n, d in cfg.dependencies.items()}},
            stop_timeout={n: s.stop_timeout for n, s in cfg.services.items()},
            depends_on={n: tuple(s.depends_on) for n, s in cfg.services.items()})

    @property
    def slack_s(self) -> float:
        """Added to every deadline: the health document is written up to a heartbeat
        late, the chaos command waits for the daemon's loop to claim it, the drill polls."""
        return 1.0 + 2 * self.heartbeat_interval

    def probe(self, owner: str, kind: str) -> ProbeTiming | None:
        return next((p for p in self.probes.get(owner, ()) if p.kind == kind), None)


@dataclass(frozen=True, slots=True)
class PhaseTimes:
    """Seconds from the fault, computed from a target's settings (:func:`phase_times`).

    ``raw`` is the expected time of each phase; :meth:`deadline` adds the margin.
    ``fault_for`` is how long the fault lasts (0: it does not end by itself, a kill).
    """

    raw: Mapping[str, float]
    fault_for: float
    slack: float
    why: Mapping[str, str]

    def deadline(self, phase: str) -> float:
        if phase == "fault":
            return self.fault_for
        return self.raw[phase] * MARGIN_FACTOR + self.slack


def phase_times(params: Mapping[str, Any], t: TargetTiming) -> PhaseTimes | str:
    """When each phase of this fault is due on a target with settings ``t`` (pure).

    Returns a :class:`PhaseTimes`, or the reason the target cannot show this fault
    at all (e.g. a latency at or over the REST probe's timeout is a timeout, never
    ``latency_p95_high``).

    The arithmetic, per fault (``q``: a heartbeat for the daemon to claim the chaos
    command, ``h``: a heartbeat for the health document to show a change):

    * ``kill S``: detect = q + process probe interval + h; the first restart of an
      episode is immediate, so restart = detect; recover = restart + 1 s (stop) +
      ``verify_min_uptime`` + S's slowest probe interval + :data:`STARTUP_S` + h.
    * ``stall S``: S's heartbeat goes stale after ``max_age``: detect = q + max_age +
      interval + h; restart = detect + (``failures_before_restart`` - 1) x interval;
      recover = restart + S's ``stop_timeout`` (a stopped process dies by KILL) + the
      start as for a kill. The stall lasts past the restart's deadline.
    * ``netcut D``: D's HTTP probe times out: detect = q + interval +
      ``failures_before_degraded`` x max(timeout, interval) + h; the dependents' streams
      go stale after their ``ws_freshness`` max_age: stale = q + max_age + interval + h.
      The cut lasts past both deadlines; recover = the cut + a timed-out ping in flight
      + an interval + :data:`RECONNECT_S` + the dependents' slowest probe interval + h.
    * ``latency D``: the p95 over ``window`` pings goes over ``latency_p95`` once
      ``k = window - ceil(0.95 x window) + 1`` answers are slow, then takes
      ``failures_before_degraded`` failed checks: detect = q + interval + (k +
      failures - 1) x max(latency, interval) + h. The latency lasts past that deadline;
      recover = its end + one slow answer in flight + ``window`` fast pings + h.
    """
    fault, name = str(params.get("fault", "kill")), str(params.get("target", "feeder"))
    hb = t.heartbeat_interval
    q = h = hb
    raw: dict[str, float] = {}
    why: dict[str, str] = {}
    slack = t.slack_s
    fault_for = 0.0

    def with_margin(seconds: float) -> float:
        return seconds * MARGIN_FACTOR + slack

    def start_up(service: str) -> float:
        slowest = max((p.interval for p in t.probes.get(service, ())), default=1.0)
        return t.verify_min_uptime + slowest + STARTUP_S + h

    if fault == "kill":
        proc = t.probe(name, "process")
        iv = proc.interval if proc else 1.0
        raw["detect"] = raw["restart"] = q + iv + h
        raw["recover"] = raw["restart"] + 1.0 + start_up(name)
        why["detect"] = f"process probe every {iv:g}s"
        why["recover"] = (f"immediate first restart, verify_min_uptime "
                          f"{t.verify_min_uptime:g}s, start-up {STARTUP_S:g}s")
    elif fault == "stall":
        beat = t.probe(name, "heartbeat")
        if beat is None or beat.max_age is None:
            return f"{name} has no heartbeat probe: a stalled {name} could never be seen"
        raw["detect"] = q + beat.max_age + beat.interval + h
        raw["restart"] = raw["detect"] + (t.failures_before_restart - 1) * beat.interval
        raw["recover"] = raw["restart"] + t.stop_timeout.get(name, 10.0) + start_up(name)
        fault_for = with_margin(raw["restart"])
        why["detect"] = f"heartbeat max_age {beat.max_age:g}s, checked every {beat.interval:g}s"
        why["restart"] = f"failures_before_restart {t.failures_before_restart}"
        why["recover"] = (f"stop_timeout {t.stop_timeout.get(name, 10.0):g}s, "
                          f"verify_min_uptime {t.verify_min_uptime:g}s")
    elif fault in ("netcut", "latency"):
        http = t.probe(name, "http")
        if http is None:
            return f"dependency {name} has no http probe: its {fault} could never be seen"
        dependents = [s for s, deps in t.depends_on.items() if name in deps]
        dep_iv = max((p.interval for s in dependents for p in t.probes.get(s, ())), default=1.0)
        n = t.failures_before_degraded
        if fault == "netcut":
            raw["detect"] = q + http.interval + n * max(http.timeout, http.interval) + h
            stale = [p for s in dependents for p in t.probes.get(s, ())
                     if p.kind == "ws_freshness" and p.max_age is not None]
            raw["stale"] = max((q + (p.max_age or 0.0) + p.interval + h for p in stale),
                               default=raw["detect"])
            fault_for = max(with_margin(raw["detect"]), with_margin(raw["stale"])) + slack
            raw["recover"] = fault_for + http.timeout + http.interval + RECONNECT_S + dep_iv + h
            why["detect"] = (f"{n} x timeout {http.timeout:g}s (probe every "
                             f"{http.interval:g}s)")
            why["stale"] = ("stream max_age " + ", ".join(f"{p.max_age:g}s" for p in stale)
                            if stale else "no dependent stream probe")
            why["recover"] = f"reconnect allowance {RECONNECT_S:g}s"
        else:
            latency = float(params.get("latency_ms", 2000)) / 1000.0
            if http.latency_p95 is None:
                return f"dependency {name}'s http probe has no latency_p95 threshold"
            if latency <= http.latency_p95:
                return (f"a latency of {latency:g}s is not over {name}'s latency_p95 "
                        f"({http.latency_p95:g}s): nothing to detect")
            if latency >= http.timeout:
                return (f"{name}'s http probe times out after {http.timeout:g}s, at or under "
                        f"the drill's latency of {latency:g}s: it would see CONN_TIMEOUT, "
                        "never latency_p95_high")
            k = http.window - math.ceil(0.95 * http.window) + 1
            per = max(latency, http.interval)
            raw["detect"] = q + http.interval + (k + n - 1) * per + h
            fault_for = with_margin(raw["detect"]) + slack
            raw["recover"] = fault_for + latency + http.window * http.interval + dep_iv + h
            why["detect"] = (f"{k} slow answer(s) put the p95 over {http.window} pings above "
                             f"{http.latency_p95:g}s, then {n} failed checks of {per:g}s")
            why["recover"] = f"{http.window} fast pings every {http.interval:g}s"
    else:
        return f"fault {fault!r} has no timing against a target"
    return PhaseTimes(raw, fault_for, slack, why)


def target_plan(scenario: Scenario, t: TargetTiming, *, time_scale: float | None = None,
                wait_s: float = 120.0) -> tuple[Scenario, dict[str, Any]]:
    """The scenario as it plays against a target, and how its timings were chosen (pure).

    With ``time_scale`` the scenario's runbook timings are scaled by it (``1``: the
    runbook's real timings). Otherwise every ``[[expect]]`` deadline and the fault's
    length come from :func:`phase_times`, through the scenario's ``params.on_target``
    (event -> phase); the returned scenario then has ``time_scale = 1`` and its
    deadlines in seconds. A reason the drill cannot run goes into the returned
    document's ``problem`` (the drill is then ``ERROR`` before any fault).
    """
    params = dict(scenario.params)
    plan: dict[str, Any] = {}
    if time_scale is not None:
        plan["basis"] = "runbook" if time_scale == 1 else f"--time-scale {time_scale:g}"
        observe = float(params.get("observe_for_s", 120.0)) * time_scale
        params["timeout_s"] = wait_s + observe + 60.0
        params["target_timing"] = plan
        return replace(scenario, time_scale=time_scale, params=params), plan
    plan["basis"] = BASIS_TARGET
    times = phase_times(params, t)
    on_target = params.get("on_target")
    if isinstance(times, str):
        plan["problem"] = times
    elif not isinstance(on_target, Mapping):
        plan["problem"] = ("the scenario has no params.on_target (event -> phase), so its "
                           "deadlines cannot be taken from the target; give --time-scale")
    else:
        expect = []
        deadlines: dict[str, float] = {}
        for e in scenario.expect:
            phase = on_target.get(e.event)
            if phase not in PHASES or (phase != "fault" and phase not in times.raw) \
                    or (phase == "fault" and times.fault_for <= 0):
                plan["problem"] = (f"params.on_target: event {e.event!r} has no phase this "
                                   f"fault can time (phases: {', '.join(sorted(times.raw))})")
                break
            within = times.fault_for if phase == "fault" else times.raw[phase] * MARGIN_FACTOR
            slack = 0.0 if phase == "fault" else times.slack
            expect.append(Expectation(e.event, round(within, 3), e.detect, e.recover,
                                      round(slack, 3)))
            deadlines[e.event] = round(within + slack, 3)
        else:
            recover = max(deadlines.values(), default=10.0)
            params["fault_for_s"] = round(times.fault_for, 3)
            params["observe_for_s"] = round(recover + 5.0, 3)
            plan.update(fault_for_s=round(times.fault_for, 3), deadlines_s=deadlines,
                        expected_s={k: round(v, 3) for k, v in times.raw.items()},
                        why=dict(times.why))
            scenario = replace(scenario, expect=tuple(expect))
    observe = float(params.get("observe_for_s", 120.0))
    params["timeout_s"] = wait_s + observe + 60.0
    params["target_timing"] = plan
    return replace(scenario, time_scale=1.0, params=params), plan


def default_wait_s(t: TargetTiming) -> float:
    """How long a drill waits for its preconditions by default: long enough for a restart
    episode to end (a verify window, then ``stable_reset`` of health), at least 2 min."""
    return max(120.0, t.verify_window + t.stable_reset + 30.0)


@dataclass(frozen=True, slots=True)
class DrillTarget:
    """What a drill needs to know about a target config (``--target CONFIG``).

    ``time_scale`` (``--time-scale``) replaces the timings taken from the target's own
    settings (``timing``); ``wait_s`` (``--wait``) bounds the wait for the drill lock
    and the preconditions (``None``: :func:`default_wait_s`).
    """

    config: Path
    environment: str
    runtime_dir: Path
    stop_file: Path
    services: tuple[str, ...]
    dependencies: tuple[str, ...]
    proxies: tuple[str, ...]
    protected_files: tuple[Path, ...]
    max_age_s: float
    timing: TargetTiming = field(default_factory=TargetTiming)
    time_scale: float | None = None
    wait_s: float | None = None

    @classmethod
    def from_config(cls, cfg: Config, *, time_scale: float | None = None,
                    wait_s: float | None = None) -> DrillTarget:
        """From a loaded config; health older than 5 heartbeats (at least 5 s) is stale."""
        return cls(
            config=cfg.path, environment=cfg.environment, runtime_dir=cfg.paths.runtime_dir,
            stop_file=cfg.paths.stop_file, services=tuple(cfg.services),
            dependencies=tuple(cfg.dependencies), proxies=tuple(cfg.chaos.proxies),
            protected_files=tuple(cfg.chaos.protected_files),
            max_age_s=max(5.0, 5 * cfg.daemon.heartbeat_interval),
            timing=TargetTiming.from_config(cfg), time_scale=time_scale, wait_s=wait_s)

    @property
    def wait(self) -> float:
        return self.wait_s if self.wait_s is not None else default_wait_s(self.timing)

    def plan(self, scenario: Scenario) -> tuple[Scenario, dict[str, Any]]:
        """:func:`target_plan` with this target's settings, scale and wait."""
        return target_plan(scenario, self.timing, time_scale=self.time_scale,
                           wait_s=self.wait)

    def protect(self) -> ProtectedSet:
        """The blast radius of a daemon drill on this target: its config and its own
        ``chaos.protected_files``, not the runtime files the drill is meant to move
        (``global_flags.json`` goes DEGRADED, ``health_v2.json`` changes with the state)."""
        return ProtectedSet(files=[self.config, *self.protected_files])


def fault_problem(params: Mapping[str, Any], target: DrillTarget) -> str | None:
    """Why this scenario's fault cannot be injected into ``target``, or ``None`` (pure)."""
    fault, name = str(params.get("fault", "kill")), str(params.get("target", "feeder"))
    if fault in _CONFIG_FAULTS:
        return (f"fault {fault!r} is not applicable against a target: it rewrites the "
                "config, and a drill never touches the target's config")
    if fault in _SERVICE_FAULTS and name not in target.services:
        return (f"the target config has no service {name!r} "
                f"(services: {', '.join(target.services) or 'none'})")
    if fault in _DEPENDENCY_FAULTS:
        if name not in target.dependencies:
            return (f"the target config has no dependency {name!r} "
                    f"(dependencies: {', '.join(target.dependencies) or 'none'})")
        if name not in target.proxies:
            return (f"the target config has no fault proxy for {name!r} "
                    "([chaos] proxies), so it cannot be slowed or cut")
    if fault not in _SERVICE_FAULTS | _DEPENDENCY_FAULTS:
        return f"fault {fault!r} is not supported against a target"
    return None


def daemon_problem(health: Any, holder: str | None, *, now_wall: float,
                   max_age_s: float, beat: Any) -> str | None:
    """Why the target's daemon cannot take a drill, or ``None`` (pure).

    Args:
        health: the decoded ``health_v2.json`` (anything: it may be unreadable).
        holder: the PID holding the runtime directory's lock, ``None`` when free.
        now_wall: unix seconds now.
        max_age_s: how old the daemon's heartbeat may be.
        beat: the decoded ``auto_heal.heartbeat.json``: the daemon writes it every beat,
            and ``health_v2.json`` only when what it says changes.
    """
    if holder is None:
        return f"{NOT_RUNNING}: no daemon holds the lock on its runtime directory"
    if not isinstance(health, Mapping) or not isinstance(health.get("daemon"), Mapping):
        return f"{NOT_RUNNING}: its health_v2.json is missing or unreadable"
    info = health["daemon"]
    if info.get("chaos") is not True:
        return f"{NOT_RUNNING}: the daemon (pid {holder}) runs without --chaos"
    if info.get("stopped"):
        return f"{NOT_RUNNING}: the daemon (pid {holder}) is stopping"
    if holder.isdigit() and str(info.get("pid")) != holder:
        return (f"{NOT_RUNNING}: health_v2.json was written by pid {info.get('pid')}, "
                f"the lock is held by pid {holder}")
    if not isinstance(beat, Mapping) or beat.get("pid") != info.get("pid"):
        return (f"{NOT_RUNNING}: its heartbeat ({runtime_files.DAEMON_HEARTBEAT}) is missing "
                "or written by another daemon than its health_v2.json")
    ts = beat.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return f"{NOT_RUNNING}: its heartbeat has no timestamp"
    if now_wall - ts > max_age_s:
        return (f"{NOT_RUNNING}: its heartbeat is {now_wall - ts:.1f}s old "
                f"(fresh means within {max_age_s:g}s)")
    return None


def precondition_problem(health: Any, *, fault: str, name: str,
                         stop_file_there: bool = False) -> str | None:
    """Why the target is not ready for this drill's fault now, or ``None`` (pure).

    Ready means: DOR true, no failsafe (nor a ``STOP.TXT``), no dependency failing,
    every component in OBSERVE with no restart or verification pending and not held
    by an operator, and, for a ``kill`` or ``stall``, the component it hits outside any
    restart episode (``attempts`` 0): otherwise the restart the drill expects would be
    a later attempt of the same episode, delayed by the backoff and counted toward
    FAILSAFE. (A fault on a dependency restarts nothing, so a finished but still
    counted episode elsewhere does not matter to it.)
    """
    if not isinstance(health, Mapping):
        return "its health_v2.json is unreadable"
    found: list[str] = []
    if health.get("failsafe"):
        found.append(f"failsafe active ({health.get('failsafe_reason') or 'no reason'})")
    if stop_file_there:
        found.append("STOP.TXT present")
    deps = health.get("dependencies")
    for dep, d in (deps.items() if isinstance(deps, Mapping) else ()):
        if isinstance(d, Mapping) and d.get("ok") is False:
            found.append(f"dependency {dep} failing ({d.get('reason') or '?'})")
    comps = health.get("components")
    comps = comps if isinstance(comps, Mapping) else {}
    for comp, c in comps.items():
        if not isinstance(c, Mapping):
            continue
        if c.get("stage") != "OBSERVE":
            found.append(f"{comp} is in {c.get('stage')} ({c.get('reason') or 'no reason'})")
        elif c.get("held"):
            found.append(f"{comp} is held (stopped by an operator)")
        elif c.get("next_restart_at") is not None or c.get("verify_until") is not None:
            found.append(f"{comp} has a restart or a verification pending")
        elif c.get("ok") is False:
            found.append(f"{comp} is failing ({c.get('reason') or '?'})")
    if fault in _SERVICE_FAULTS:
        c = comps.get(name)
        attempts = c.get("attempts") if isinstance(c, Mapping) else None
        if isinstance(attempts, int) and attempts > 0 and c is not None \
                and c.get("stage") == "OBSERVE":
            found.append(f"{name} is inside a restart episode (attempts {attempts} of "
                         f"{c.get('max_restarts', '?')}; it ends after stable_reset of "
                         f"continuous health): a {fault} now would be a delayed restart "
                         "counted toward FAILSAFE")
    if health.get("dor") is not True and not found:
        found.append("DOR is false")
    return "; ".join(found) or None


class DrillLock(PidLock):
    """``<runtime_dir>/drills/.lock``: an exclusive ``flock`` held while a drill runs
    against the target, so two drill runs never overlap. The kernel drops it with the
    process; the file holds the holder's PID for the message only."""

    def __init__(self, runtime_dir: Path) -> None:
        super().__init__(Path(runtime_dir) / "drills" / ".lock")

    def try_acquire(self) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return super().try_acquire()


def exchange_criteria(scenario: Scenario) -> list[str]:
    """The criteria that read the drill's own fake exchange (pure)."""
    return [c.name for c in scenario.criteria
            if c.observed == "orders_before_fault" or c.observed.startswith("new_orders_after_")]


class TargetStack:
    """The target's running daemon, seen as a drill stack: health, liveness, chaos queue.

    Nothing is started or stopped here; the only writes are chaos commands in the
    target's journal (the fault, then ``chaos heal``).
    """

    has_exchange = False

    def __init__(self, ctx: DrillContext, target: DrillTarget) -> None:
        self.ctx = ctx
        self.target = target
        self.shared = target.runtime_dir
        self.stop_file = target.stop_file
        self.holder: str | None = None
        self.notes_offset = 0
        self.chaos_calls: list[dict[str, Any]] = []

    def health(self) -> dict[str, Any]:
        doc = read_json(self.shared / runtime_files.HEALTH).doc
        return doc if isinstance(doc, dict) else {}

    def alive(self) -> bool:
        """The daemon that took the drill still holds the lock (not a restarted one)."""
        return self.holder is not None and lock_holder(self.shared) == self.holder

    def gone_message(self) -> str:
        return f"the target daemon (pid {self.holder}) stopped; see {self.shared}"

    async def chaos(self, fault: str, target: str = "", *, timeout_s: float = 20.0,
                    **payload: Any) -> dict[str, Any]:
        return await queue_chaos(self.shared, fault, target, timeout_s=timeout_s,
                                 calls=self.chaos_calls, **payload)

    def _notification_lines(self) -> int:
        notes = self.shared / runtime_files.NOTIFICATIONS
        return len(notes.read_bytes().splitlines()) if notes.exists() else 0

    async def start(self) -> None:
        """Check the fault and the daemon, take the drill lock, wait for the
        preconditions, then arm the ``chaos heal`` rollback.

        Raises:
            DrillUnavailableError: the fault does not apply to this target, or its
                daemon is not running with ``--chaos``.
            DrillRefusedError: the lock or the preconditions did not come within
                ``target.wait`` seconds (``details.refused`` says why).
        """
        ctx, t = self.ctx, self.target
        ctx.details["target"] = {"config": str(t.config), "environment": t.environment,
                                 "runtime_dir": str(t.runtime_dir)}
        plan = ctx.params.get("target_timing")
        if isinstance(plan, Mapping):
            ctx.details["time_basis"] = plan.get("basis")
            ctx.details["target_timing"] = dict(plan)
        for name in exchange_criteria(ctx.scenario):
            ctx.skip_criterion(name, EXCHANGE_ONLY)
        problem = fault_problem(ctx.params, t)
        if problem is None and isinstance(plan, Mapping) and plan.get("problem"):
            problem = str(plan["problem"])
        holder = lock_holder(t.runtime_dir)
        if problem is None:
            beat = read_json(self.shared / runtime_files.DAEMON_HEARTBEAT).doc
            problem = daemon_problem(self.health(), holder, now_wall=time.time(),
                                     max_age_s=t.max_age_s, beat=beat)
        if problem is not None:
            raise DrillUnavailableError(problem)
        self.holder = holder
        await self._wait_ready(holder)
        ctx.details["daemon_pid"] = holder
        # Only lines the drill caused count: the target's log has its own history.
        self.notes_offset = self._notification_lines()

        async def heal() -> Any:
            # Always through the target's queue; a daemon that is gone has nothing to heal.
            if lock_holder(t.runtime_dir) is None:
                return "target daemon not running"
            return (await self.chaos("heal", timeout_s=5.0)).get("healed")

        ctx.add_rollback("chaos_heal", heal)

    def _refuse(self, reason: str) -> DrillRefusedError:
        self.ctx.details["refused"] = reason
        return DrillRefusedError(f"refused: {reason}")

    async def _wait_ready(self, holder: str | None) -> None:
        """Take the drill lock, then wait until :func:`precondition_problem` is ``None``;
        both within ``target.wait`` seconds."""
        ctx, t = self.ctx, self.target
        wait = t.wait
        fault, name = str(ctx.params.get("fault", "kill")), str(ctx.params.get("target", ""))
        t0 = time.monotonic()
        end = t0 + wait
        lock = DrillLock(t.runtime_dir)
        while (other := lock.try_acquire()) is not None:
            if time.monotonic() >= end:
                raise self._refuse(f"another drill (pid {other}) is running against the target "
                                   f"({lock.path}); waited {wait:g}s")
            await anyio.sleep(PRECONDITION_POLL_S)

        async def unlock() -> None:
            lock.release()

        # Registered first, so it runs last: after ``chaos heal``.
        ctx.add_rollback("drill_lock", unlock)
        seen: list[str] = []
        while True:
            if lock_holder(t.runtime_dir) != holder:
                raise DrillUnavailableError(self.gone_message())
            pre = precondition_problem(self.health(), fault=fault, name=name,
                                       stop_file_there=stop_file_present(t.stop_file))
            if pre is None:
                break
            if not seen or seen[-1] != pre:
                seen.append(pre)
            if time.monotonic() >= end:
                raise self._refuse(f"preconditions not met after {wait:g}s: {pre}")
            await anyio.sleep(PRECONDITION_POLL_S)
        ctx.details["preconditions"] = {"waited_s": round(time.monotonic() - t0, 2),
                                        "waited_for": seen[:5]}
