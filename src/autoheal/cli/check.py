"""``autoheal check``: every configured probe once, now, and the DOR verdict from those facts.

No daemon is needed, and a running one is not disturbed: the check only reads (the
pidfiles, ``/proc``, the heartbeat files, ``STOP.TXT`` and ``global_flags.json``) and
sends each HTTP probe's one GET. Nothing is written, not even the journal.

The probes are the daemon's own (:func:`autoheal.daemon.wiring.make_probe`), each run
once under its configured ``timeout`` by the daemon's :class:`~autoheal.probes.ProbeRunner`,
all at once: the whole check is bounded by the longest probe timeout. The process
probe proves the pidfile's PID the way the daemon adopts a process
(:func:`autoheal.procs.leftovers.prove_ours`: alive, not a zombie, the service's
command line), so a PID reused by another program is ``process_missing``.

A busy host is not a failing process (issue 18 C): every import and client is set up
before the first timeout starts, and the process probe's ``/proc`` read is timed from
the moment its worker thread starts it (:mod:`autoheal.probes.worker`), so a check
beside ``stress-ng`` sees live processes as live; only a read that itself hangs is
``probe_timeout``.

The verdict is not re-implemented here: :func:`verdict` feeds the results as
observations into the core's :func:`~autoheal.core.step`, from a fresh state, and asks
:func:`autoheal.core.queries.dor`. A fact seen now is taken as persisting: each
dependency result is fed ``failures_before_restart`` times (what the daemon needs to
declare a dependency failing), so a dependency that fails now reads as DEGRADED; a
component fails DOR on one failed probe already. A ``STOP.TXT``, a flags file saying
``failsafe_active``, or an unreadable flags file (fail closed) is a failsafe.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autoheal.cli.common import EXIT_USAGE, clean, load_config
from autoheal.config import Config
from autoheal.core.policy import Policy

__all__ = [
    "CheckReport",
    "Fact",
    "KillSwitchFact",
    "check_command",
    "handle",
    "render_text",
    "run_check",
    "verdict",
]

SERVICE = "service"
#: The process probe's bound when the config names no process probe for a service.
_PROCESS_TIMEOUT_S = 5.0
DEPENDENCY = "dependency"
RUNTIME = "runtime"


@dataclass(frozen=True, slots=True)
class Fact:
    """One probe's answer: whose, which probe, ok, value against threshold, reason."""

    target: str
    kind: str  # service | dependency | runtime
    probe: str
    ok: bool
    value: float | None
    threshold: float | None
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class KillSwitchFact:
    """What the kill-switch files say: a failsafe (with its reason and who set it) or none."""

    active: bool
    reason: str = ""
    set_by: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    dor: bool
    failsafe: str | None
    degraded: tuple[str, ...]
    failing_components: tuple[str, ...]
    stages: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckReport:
    checked_at: float
    duration_s: float
    facts: tuple[Fact, ...]
    verdict: Verdict

    def to_doc(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "schema": 1,
            "checked_at": self.checked_at,
            "duration_s": round(self.duration_s, 4),
            "dor": v.dor,
            "failsafe": v.failsafe,
            "degraded": list(v.degraded),
            "failing_components": list(v.failing_components),
            # the stage the core puts each component in from these facts alone (e.g.
            # RESTART for a missing process): what the daemon would do, not what it did
            "stages_from_facts": dict(v.stages),
            "probes": [asdict(f) for f in self.facts],
        }


# --------------------------------------------------------------------------- pure verdict


def verdict(policy: Policy, facts: Sequence[Fact], kill_switch: KillSwitchFact) -> Verdict:
    """The DOR verdict the daemon's core reaches from these facts (pure; see the module doc)."""
    from autoheal.core import (
        OperatorEnteredFailsafe,
        ProbeFailed,
        ProbeSucceeded,
        initial_state,
        step,
    )
    from autoheal.core.errors import CommandRefusedError, IllegalCommandError
    from autoheal.core.queries import dor, healthy

    now = 0.0
    state = initial_state(policy)
    if kill_switch.active:
        try:
            obs = OperatorEnteredFailsafe(kill_switch.reason or "kill_switch", kill_switch.set_by)
            state = step(state, obs, now, policy).state
        except (CommandRefusedError, IllegalCommandError):  # pragma: no cover - fresh state
            pass

    def feed(fact: Fact) -> None:
        nonlocal state
        obs = (
            ProbeSucceeded(fact.target, fact.probe)
            if fact.ok
            else ProbeFailed(fact.target, fact.probe, fact.reason)
        )
        state = step(state, obs, now, policy).state

    deps = [f for f in facts if f.kind == DEPENDENCY and f.target in policy.dependencies]
    comps = [f for f in facts if f.kind == SERVICE and f.target in policy.components]
    # A dependency judged K of N needs K failed checks (``core.judgement``).
    need = [w.failures for probes in policy.dependency_windows.values() for w in probes.values()]
    for _ in range(max(1, policy.failures_before_degraded, *need)):
        for fact in deps:
            feed(fact)
    for fact in comps:
        feed(fact)
    failing = tuple(
        name
        for name, cs in state.components.items()
        if policy.components[name].required and not healthy(cs)
    )
    return Verdict(
        dor=dor(state, policy),
        failsafe=None if state.failsafe is None else state.failsafe.reason,
        degraded=tuple(sorted(n for n, d in state.dependencies.items() if d.failing)),
        failing_components=failing,
        stages={name: cs.stage.value for name, cs in state.components.items()},
    )


# --------------------------------------------------------------------------- the shell


def read_kill_switch(runtime_dir: Path, stop_file: Path) -> tuple[KillSwitchFact, Fact]:
    """Read ``STOP.TXT`` and ``global_flags.json`` (read only) as a fact and a probe line."""
    from autoheal.store.flags import read_flags, read_stop_line, stop_file_present

    flags = read_flags(runtime_dir)
    if stop_file_present(stop_file):
        ks = KillSwitchFact(True, "stop_file_present", _stop_set_by(read_stop_line(stop_file)))
        detail = f"{stop_file} exists"
    elif flags.flags is None:
        ks = KillSwitchFact(True, flags.reason or "flags_invalid", "")
        detail = f"global_flags.json unreadable ({flags.detail}): fail closed"
    elif flags.flags.failsafe_active:
        ks = KillSwitchFact(True, flags.flags.reason or "failsafe_active", flags.flags.set_by)
        detail = f"global_flags.json failsafe_active (set_by {flags.flags.set_by or '-'})"
    else:
        ks = KillSwitchFact(False)
        detail = f"mode {flags.flags.mode}"
    reason = "" if not ks.active else ks.reason
    return ks, Fact(RUNTIME, RUNTIME, "kill_switch", not ks.active, None, None, reason, detail)


def _stop_set_by(first_line: str) -> str:
    for word in first_line.split():
        if word.startswith("set_by="):
            return word[len("set_by=") :]
    return ""


async def _process_fact(cfg: Config, name: str) -> Fact:
    """The process probe: the pidfile's PID proven to be the service, read from ``/proc``.

    The read runs in a worker thread, bounded by the probe's timeout counted from the
    moment the worker starts it (:func:`~autoheal.probes.worker.call_in_worker`): a
    host too busy to run the worker promptly is not a hung ``/proc``.
    """
    from autoheal.daemon.wiring import PROCESS_PROBE, service_spec
    from autoheal.probes.worker import START_WITHIN_S, call_in_worker
    from autoheal.procs.leftovers import prove_ours

    svc = cfg.services[name]
    spec = service_spec(cfg, svc)
    timeout = next((p.timeout for p in svc.probes if p.kind == "process"), _PROCESS_TIMEOUT_S)
    answer = await call_in_worker(lambda: prove_ours(spec, None), timeout)
    if answer.outcome == "hung":  # /proc did not answer (a hung filesystem, a D-state read)
        detail = f"no answer from /proc within {timeout} s"
        return Fact(name, SERVICE, PROCESS_PROBE, False, None, None, "probe_timeout", detail)
    if answer.outcome == "not_started" or answer.value is None:
        detail = f"no worker thread could start within {START_WITHIN_S} s: the host is overloaded"
        return Fact(name, SERVICE, PROCESS_PROBE, False, None, None, "probe_timeout", detail)
    adopted = answer.value
    if adopted.identity is None:
        reason = adopted.reason or "process_missing"
        return Fact(name, SERVICE, PROCESS_PROBE, False, None, None, reason, adopted.detail)
    pid = adopted.identity.pid
    return Fact(name, SERVICE, PROCESS_PROBE, True, float(pid), None, "", f"pid {pid}")


def _pidfile_pid(cfg: Config, name: str) -> Any:
    """A resource probe's PID lookup without a daemon: the pidfile, proven as adoption does."""
    from autoheal.daemon.wiring import service_spec
    from autoheal.procs.leftovers import prove_ours

    spec = service_spec(cfg, cfg.services[name])

    def pid_of() -> int | None:
        identity = prove_ours(spec, None).identity
        return None if identity is None else identity.pid

    return pid_of


async def _probe_fact(target: str, kind: str, pc: Any, probe: Any) -> Fact:
    from autoheal.probes import ProbeRunner

    runner = ProbeRunner(probe, lambda _r: None, interval=pc.interval, timeout=pc.timeout)
    r = await runner.check_once()
    return Fact(target, kind, pc.name, r.ok, r.value, r.threshold, r.reason, r.detail)


async def _gather(cfg: Config) -> list[Fact]:
    """Every probe at once, each under its own timeout.

    Everything slow that is not the check itself -- the imports (httpx, psutil), the
    HTTP clients -- happens here first, before any timeout starts: on a busy host an
    import on the event loop took over a second and ran out the process probes'
    clocks while they waited for it (issue 18 C).
    """
    import anyio

    # What the probes import (httpx, psutil) is loaded now, before any clock starts.
    import autoheal.probes.worker
    import autoheal.procs.leftovers  # noqa: F401
    from autoheal.daemon.wiring import exec_env_remove, make_probe, probe_targets

    jobs: list[Any] = [(_process_fact, (cfg, name)) for name in cfg.services]
    probes: list[Any] = []
    try:
        for pt in probe_targets(cfg):
            kind = SERVICE if pt.target in cfg.services else DEPENDENCY
            probes.append(
                make_probe(
                    pt.config,
                    pid_of=_pidfile_pid(cfg, pt.target) if kind == SERVICE else None,
                    env_remove=exec_env_remove(cfg),
                )
            )
            jobs.append((_probe_fact, (pt.target, kind, pt.config, probes[-1])))
        results: list[Fact | None] = [None] * len(jobs)

        async def one(i: int, fn: Any, args: tuple[Any, ...]) -> None:
            results[i] = await fn(*args)

        async with anyio.create_task_group() as tg:
            for i, (fn, args) in enumerate(jobs):
                tg.start_soon(one, i, fn, args)
    finally:
        for probe in probes:
            aclose = getattr(probe, "aclose", None)
            if aclose is not None:
                await aclose()
    return [r for r in results if r is not None]


def run_check(cfg: Config) -> CheckReport:
    """Run every probe once (concurrently, each under its own timeout) and judge them."""
    import anyio

    from autoheal.daemon.wiring import build_policy

    checked_at = time.time()
    started = time.monotonic()
    facts = anyio.run(_gather, cfg)
    ks, ks_line = read_kill_switch(cfg.paths.runtime_dir, cfg.paths.stop_file)
    facts.append(ks_line)
    judged = verdict(build_policy(cfg), facts, ks)
    return CheckReport(checked_at, time.monotonic() - started, tuple(facts), judged)


def _num(value: float | None, probe: str) -> str:
    if value is None:
        return "-"
    if probe == "process":
        return f"pid {int(value)}"
    return f"{value:.3f}"


def render_text(report: CheckReport) -> str:
    rows = [["COMPONENT", "PROBE", "OK", "VALUE", "THRESHOLD", "REASON"]]
    for f in report.facts:
        rows.append(
            [
                clean(f.target),
                clean(f.probe),
                "ok" if f.ok else "FAIL",
                _num(f.value, f.probe),
                _num(f.threshold, f.probe),
                clean(f.reason),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    v = report.verdict
    head = f"DOR {'true' if v.dor else 'false'}"
    why = []
    if v.failsafe:
        why.append(f"failsafe: {clean(v.failsafe)}")
    if v.degraded:
        why.append(f"degraded: {', '.join(map(clean, v.degraded))}")
    if v.failing_components:
        why.append(f"failing: {', '.join(map(clean, v.failing_components))}")
    if why:
        head += " (" + "; ".join(why) + ")"
    lines.append("")
    lines.append(f"{head}  [checked in {report.duration_s:.3f} s]")
    return "\n".join(lines)


def check_command(cfg: Config, *, as_json: bool) -> int:
    """Print the check and return 0 when DOR would be true, else 1."""
    from autoheal.cli.check_rules import judging_doc, judging_lines

    report = run_check(cfg)
    if as_json:
        print(json.dumps({**report.to_doc(), "judging": judging_doc(cfg)}, sort_keys=True))
    else:
        print("\n".join([render_text(report), *judging_lines(cfg)]))
    sys.stdout.flush()
    return 0 if report.verdict.dor else 1


def handle(args: argparse.Namespace) -> int:
    """``autoheal check [--json]``."""
    cfg = load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    return check_command(cfg, as_json=args.json)
