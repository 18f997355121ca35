"""Run drills: each in its own runtime directory, under the blast-radius guard, then roll back.

For every scenario the runner captures the protected set, starts the guard's
:func:`~autoheal.chaos.blast.watch` beside the step, and cancels the step at
once when something protected changes (status ``ABORTED``). Rollbacks run
afterwards in every case, shielded from cancellation and bounded in time; then every
process the drill started or learned of (``ctx.processes``) that still runs is killed,
by identity, whatever the rollbacks managed (a drill leaves nothing behind; what had
to be killed is listed in ``details.reaped``). The scenario's expectations and
criteria (less those the step skipped) then decide ``PASSED`` or ``FAILED``; an
exception in the step is ``ERROR``.

With a target (``--target CONFIG``), the kinds in
:data:`~autoheal.drills.plan.TARGET_KINDS` run against it, guarded by the
target's own blast radius (:meth:`DrillTarget.protect`); every other drill keeps
its own runtime directory and the caller's protected set.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from autoheal.chaos.blast import ProtectedSet, Violation, watch
from autoheal.drills.catalog import load_catalog, select
from autoheal.drills.context import DrillContext, as_the_daemon_leaves_it
from autoheal.drills.evaluate import evaluate, scale_label
from autoheal.drills.model import DrillResult, Report, Scenario, Status
from autoheal.drills.plan import TARGET_KINDS, DrillTarget
from autoheal.drills.report import render, svg_path_for, write_json_report
from autoheal.drills.steps.kinds import KINDS
from autoheal.drills.trace import timeline_doc

__all__ = ["progress_line", "run_drills", "run_one", "time_basis"]

WATCH_INTERVAL_S = 0.2
ROLLBACK_TIMEOUT_S = 15.0


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _rollback(ctx: DrillContext) -> list[str]:
    done: list[str] = []
    with anyio.CancelScope(shield=True), anyio.move_on_after(ROLLBACK_TIMEOUT_S):
        for label, fn in reversed(ctx.rollbacks):
            try:
                result = await fn()
            except Exception as exc:
                done.append(f"{label}: failed ({type(exc).__name__}: {exc})")
                continue
            done.append(label if result is None else f"{label}: {result}")
    return done


async def _reap(ctx: DrillContext) -> list[str]:
    """Kill what the rollbacks left running of the drill's own processes (outside their
    deadline: a rollback cut short is exactly when this matters)."""
    reaped: list[str] = []
    with anyio.CancelScope(shield=True):
        reaped = await anyio.to_thread.run_sync(ctx.processes.reap)
    return reaped


async def run_one(
    scenario: Scenario,
    runtime_dir: Path,
    *,
    protect: ProtectedSet | None = None,
    watch_interval: float = WATCH_INTERVAL_S,
    target: DrillTarget | None = None,
) -> DrillResult:
    """Run one scenario in ``runtime_dir`` (created) and return its result.

    Args:
        scenario: what to run.
        runtime_dir: the drill's own runtime directory.
        protect: files and processes the drill must not touch (captured here); the
            scenario's ``protect.files`` (relative to ``runtime_dir``) are added.
        watch_interval: seconds between blast-radius checks (at most 1).
        target: play the drill against this running target instead of a stack of
            its own (``daemon`` kind only; see :mod:`autoheal.drills.stacks.target`).
    """
    # The guard code of a drill without a daemon needs the flags a daemon writes; before
    # the blast-radius capture: part of the setup, not of the drill.
    as_the_daemon_leaves_it(runtime_dir)
    guard = ProtectedSet(
        files=[*(protect.files if protect else ()),
               *(runtime_dir / f for f in scenario.protect_files)],
        processes=list(protect.processes) if protect else [])
    guard.capture()
    ctx = DrillContext(scenario, runtime_dir, target=target)
    started_at, t0 = _utc_now(), time.monotonic()
    violations: list[Violation] = []
    error: str | None = None
    timeout = float(scenario.params.get("timeout_s", 60.0))
    step = KINDS.get(scenario.kind)
    rolled_back: list[str] = []
    reaped: list[str] = []
    try:
        with ctx.logs:
            async with anyio.create_task_group() as tg:

                async def on_violation(found: list[Violation]) -> None:
                    violations.extend(found)
                    tg.cancel_scope.cancel()

                tg.start_soon(watch, guard, on_violation, watch_interval)
                try:
                    if step is None:
                        raise LookupError(f"unknown kind {scenario.kind!r}; known: "
                                          f"{', '.join(sorted(KINDS))}")
                    with anyio.fail_after(timeout):
                        await step(ctx)
                except TimeoutError:
                    error = f"timed out after {timeout:g}s"
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                tg.cancel_scope.cancel()
    finally:
        # Also when the caller cancels the whole run (Ctrl-C, a test's deadline): the
        # rollbacks and the reap keep the blast-radius promise on every path.
        rolled_back = await _rollback(ctx)
        reaped = await _reap(ctx)
    if reaped:
        ctx.details["reaped"] = reaped
    if not violations:
        violations.extend(await anyio.to_thread.run_sync(guard.check))  # the "after" check
    ctx.details.update(rollback=rolled_back, protected=guard.describe(),
                       time_scale=scale_label(scenario.time_scale),
                       time_basis=time_basis(scenario))
    if target is not None:
        ctx.details["ran_against"] = f"target {target.config}"
    if ctx.skipped:
        ctx.details["skipped_criteria"] = sorted(ctx.skipped)
        ctx.details["skipped_why"] = {k: ctx.skipped[k] for k in sorted(ctx.skipped)}
        scenario = replace(scenario, criteria=tuple(
            c for c in scenario.criteria if c.name not in ctx.skipped))
    events = {name: ctx.event_after_fault(name) for name in ctx.events}
    ctx.details["events_after_fault_s"] = {k: round(v, 4) for k, v in events.items()
                                           if v is not None}
    criteria, detect, recover = evaluate(scenario, ctx.observations, events)
    if violations:
        status = Status.ABORTED
        ctx.details["aborted_after_s"] = round(time.monotonic() - t0, 3)
    elif error is not None:
        status = Status.ERROR
        ctx.details["error"] = error
    else:
        status = Status.PASSED if criteria and all(c.held for c in criteria) else Status.FAILED
    return DrillResult(
        name=scenario.name, title=scenario.title, status=status,
        time_to_detect_s=None if detect is None else round(detect, 4),
        time_to_recover_s=None if recover is None else round(recover, 4),
        criteria=tuple(criteria), gates_fired=tuple(ctx.gates_fired),
        violations=tuple(str(v) for v in violations), seed=scenario.seed,
        started_at=started_at, duration_s=round(time.monotonic() - t0, 3),
        details=_jsonable(ctx.details), timeline=_timeline(ctx))


def time_basis(scenario: Scenario) -> str:
    """By whose clock a drill judged: ``from target policy``, ``runbook``, ``--time-scale
    X`` (against a target, :func:`~autoheal.drills.plan.target_plan`), or
    ``scaled 1/20`` (its own stack at its scenario's time scale)."""
    plan = scenario.params.get("target_timing")
    if isinstance(plan, dict) and plan.get("basis"):
        return str(plan["basis"])
    if scenario.time_scale == 1.0:
        return "runbook"
    return f"scaled {scale_label(scenario.time_scale)}"


def _timeline(ctx: DrillContext) -> dict[str, Any]:
    fault = ctx.details.get("fault")
    label = (f"{fault.get('fault', '')} {fault.get('target', '')}".strip()
             if isinstance(fault, dict) else ctx.scenario.kind)
    # A drill whose fault clears itself as a step (the breaker drills) ends its window there.
    ends_at = ctx.fault_ends_at if ctx.fault_ends_at is not None \
        else ctx.events.get("fault_cleared")
    return timeline_doc(ctx.trace, fault_at=ctx.fault_at, fault_ends_at=ends_at,
                        fault_label=label or "fault", events=ctx.events)


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        out[key] = value if isinstance(value, str | int | float | bool | list | dict | None) \
            else str(value)
    return out


def progress_line(index: int, total: int, result: DrillResult) -> str:
    """``[3/9] breaker_trip ... PASSED (detect 0.00s, recover 1.21s) tightest margin +25%
    (breaker_half_open 0.42s)``: the time criterion closest to its deadline, if any."""
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}s"

    line = (f"[{index}/{total}] {result.name} ... {result.status} "
            f"(detect {fmt(result.time_to_detect_s)}, recover {fmt(result.time_to_recover_s)})")
    tight = result.tightest
    if tight is not None and tight.margin_s is not None:
        line += (f" tightest margin {tight.margin_pct:+.0f}% "
                 f"({tight.name.removeprefix('event:')} {tight.margin_s:+.2f}s)")
    failed = [c.name for c in result.failed_criteria]
    if result.status is Status.FAILED and failed:
        line += f" violated: {', '.join(failed)}"
    if result.status is Status.ABORTED and result.violations:
        line += f" {result.violations[0]}"
    if result.status is Status.ERROR:
        line += f" {result.details.get('error', '')}"
    return line


def _record_history(
    runtime_dir: Path, results: Sequence[DrillResult], progress: Callable[[str], object]
) -> None:
    """Each drill's last result into ``drills/history.json`` (``autoheal compliance``).

    A failed write costs the proof, not the run: the drills stay unproven (never
    run, or stale) for ``autoheal compliance``, which is where it shows.
    """
    from autoheal.drills.history import record_results

    try:
        record_results(runtime_dir, results)
    except (OSError, TimeoutError) as exc:
        progress(f"drill history not recorded: {exc}")


def run_drills(
    names: Sequence[str] | None,
    *,
    work_dir: Path | None = None,
    fmt: str = "text",
    report_path: Path | None = None,
    progress: Callable[[str], object] = print,
    runtime_dir: Path | None = None,
    scenario_dirs: Iterable[Path] = (),
    protect: ProtectedSet | None = None,
    output: Callable[[str], object] | None = None,
    target: DrillTarget | None = None,
) -> Report:
    """Run the named drills (or the default set), print progress and the report.

    Args:
        names: drill names, or ``None``/empty for every scenario marked ``default``.
        work_dir: parent of the drills' own runtime directories; a temporary one
            (removed afterwards if every drill passed) when ``None``.
        fmt: ``text`` or ``json`` for the final report handed to ``progress``.
        report_path: also write the JSON report here (and its timeline picture beside
            it, ``.svg``).
        progress: receives one line per drill as it finishes, then the report.
        runtime_dir: the JSON report goes to ``<runtime_dir>/drills/<UTC>.json``
            (``<work_dir>/drills/`` when only ``work_dir`` is given).
        scenario_dirs: extra directories of scenario files.
        protect: files and processes no drill may touch.
        output: receives the final report (default: ``progress``).
        target: a running target for the ``daemon`` drills (``--target CONFIG``),
            whose blast radius then replaces ``protect`` for those drills.

    Raises:
        ScenarioError: an invalid scenario file or an unknown drill name.
    """
    scenarios = select(load_catalog(scenario_dirs), names)
    base = work_dir if work_dir is not None else Path(tempfile.mkdtemp(prefix="autoheal-drills-"))
    started_at, t0 = _utc_now(), time.monotonic()
    results: list[DrillResult] = []
    on_target = [s.name for s in scenarios if target is not None and s.kind in TARGET_KINDS]

    async def run_all() -> None:
        for i, scenario in enumerate(scenarios, 1):
            work = base / f"{i:02d}-{scenario.name}"
            if target is not None and scenario.name in on_target:
                # Judged by the target's clock: its own settings, or --time-scale.
                planned, _ = target.plan(scenario)
                result = await run_one(planned, work, protect=target.protect(), target=target)
            else:
                result = await run_one(scenario, work, protect=protect)
            results.append(result)
            progress(progress_line(i, len(scenarios), result))

    anyio.run(run_all)
    scales = sorted({scale_label(s.time_scale) for s in scenarios if s.time_scale != 1.0})
    bases = sorted({str(r.details.get("time_basis")) for r in results
                    if r.details.get("time_basis")})
    report = Report(tuple(results), started_at, time.monotonic() - t0,
                    ", ".join(scales) if scales else "1/1",
                    target=None if target is None else str(target.config),
                    on_target=tuple(on_target), time_basis=", ".join(bases))
    json_dir = runtime_dir if runtime_dir is not None else work_dir
    paths = []
    if json_dir is not None:
        paths.append(write_json_report(report, json_dir / "drills"))
        _record_history(json_dir, results, progress)
    if report_path is not None:
        paths.append(write_json_report(report, Path(report_path)))
    if paths:
        files = [str(f) for path in paths for f in (path, svg_path_for(path))]
        report = replace(report, json_path=str(paths[0]), files=tuple(files))
    (output or progress)(render(report, fmt))
    if work_dir is None and report.passed:
        shutil.rmtree(base, ignore_errors=True)
    return report
