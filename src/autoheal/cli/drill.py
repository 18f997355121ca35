"""``autoheal drill list|run``: a :class:`DrillRequest`, checked, resolved, run, mapped to an exit.

Exit codes: 0 every drill passed (or the list was printed), 1 a drill did not pass,
2 a usage or configuration error (bad name, bad scenario file, bad config, a
``--time-scale`` or ``--wait`` without ``--target``), 3 refused by a safety gate (the
target config's ``environment`` is ``live``, or a drill against the target was refused
because its preconditions or the drill lock did not come within ``--wait``, and no
other drill failed).

With ``--target CONFIG`` the ``daemon`` drills run against that config's running
daemon (``autoheal run --chaos``) and its runtime directory; the others still run
on their own temporary directories (:mod:`autoheal.drills.stacks.target`).

``--config CONFIG`` never means a target: as for every other command it only says
which config, here for where the report goes (its runtime directory's ``drills/``)
and which files every drill must leave alone (the config, its ``STOP.TXT``, flags,
state bus, positions, breakers and ``[chaos] protected_files``); every drill still
runs on its own stack, and a note on stderr points at ``--target``.

The steps: :func:`run_request` takes the request; :func:`_prepare` checks it and reads
the configs into a :class:`_Setup` (or a :class:`~autoheal.cli.common.Problem`, printed
as ``autoheal drill: ...``); :func:`autoheal.drills.runner.run_drills` runs the drills;
:func:`exit_code` maps the report to the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autoheal.chaos.blast import ProtectedSet
from autoheal.cli.common import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Problem, clean
from autoheal.drills.catalog import load_catalog
from autoheal.drills.evaluate import scale_label
from autoheal.drills.model import Report, ScenarioError, Status
from autoheal.drills.plan import DrillTarget
from autoheal.drills.runner import run_drills
from autoheal.store import layout

if TYPE_CHECKING:
    from autoheal.config import Config

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "DrillRequest",
    "drill_command",
    "exit_code",
    "handle",
    "list_text",
    "run_request",
]

#: Operator files a drill must never touch, watched when they live in the runtime dir.
PROTECTED_RUNTIME_FILES = (layout.FLAGS, layout.STATE_BUS, layout.POSITIONS, layout.BREAKERS)


@dataclass(frozen=True, slots=True)
class DrillRequest:
    """``autoheal drill`` as asked; see :func:`drill_command` for each field."""

    action: str
    names: tuple[str, ...] = ()
    target: str | None = None
    config: str | None = None
    fmt: str = "text"
    report: str | None = None
    runtime_dir: Path | None = None
    scenario_dirs: tuple[Path, ...] = ()
    time_scale: float | None = None
    wait: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DrillRequest:
        return cls(
            args.action,
            tuple(args.names),
            target=args.target,
            config=args.config,
            fmt=args.format,
            report=args.report,
            scenario_dirs=tuple(Path(d) for d in args.scenarios),
            time_scale=args.time_scale,
            wait=args.wait,
        )


@dataclass(frozen=True, slots=True)
class _Setup:
    """What a run needs, read from the configs: where, what to protect, which target."""

    runtime_dir: Path
    protect: tuple[Path, ...]
    target: DrillTarget | None


def _err(message: str) -> None:
    """One line on stderr; it may quote a drill name, a path or a scenario file's error."""
    print(clean(f"autoheal drill: {message}"), file=sys.stderr)


def _fail(problem: Problem) -> int:
    _err(problem.text)
    return problem.code


def list_text(scenario_dirs: Sequence[Path] = ()) -> str:
    """One line per scenario: name, kind, time scale, default set or not, title."""
    lines = []
    for s in load_catalog(scenario_dirs).values():
        extra = "" if s.default else "  (not in the default set)"
        lines.append(
            f"{clean(s.name):<24} {clean(s.kind):<28} {scale_label(s.time_scale):>6}  "
            f"{clean(s.title)}{extra}"
        )
    return "\n".join(lines)


def drill_command(
    action: str,
    names: Sequence[str],
    *,
    target: str | None,
    fmt: str,
    report: str | None,
    runtime_dir: Path | None,
    scenario_dirs: Sequence[Path] = (),
    config: str | None = None,
    time_scale: float | None = None,
    wait: str | None = None,
) -> int:
    """List or run drills.

    Args:
        action: ``list`` or ``run``.
        names: drills to run; empty for the default set.
        target: a config file whose running ``--chaos`` daemon the ``daemon`` drills
            run against; refused (exit 3) when its environment is live.
        fmt: ``text`` or ``json``.
        report: an extra path for the JSON report.
        runtime_dir: where ``drills/<UTC>.json`` goes (default: the target's runtime
            directory, else ``shared_data``).
        scenario_dirs: operator scenario folders; a file there adds a drill or replaces
            a shipped one of the same name.
        config: ``--config``: which config, never a target. Its runtime directory gets
            the report and, with its stop file and protected files, is guarded by the
            blast-radius guard; the drills run on their own stacks. With ``target`` too,
            both must name the same file.
        time_scale: ``--time-scale``: judge the target's drills by the runbook's timings
            times this (``1``: real timings) instead of the target's own settings.
        wait: ``--wait``: how long a target drill waits for the drill lock and its
            preconditions before it is refused (a duration; default from the target).

    Returns:
        The exit code.
    """
    request = DrillRequest(
        action,
        tuple(names),
        target=target,
        config=config,
        fmt=fmt,
        report=report,
        runtime_dir=runtime_dir,
        scenario_dirs=tuple(scenario_dirs),
        time_scale=time_scale,
        wait=wait,
    )
    return run_request(request)


def handle(args: argparse.Namespace) -> int:
    """``autoheal drill ...`` from the parsed command line."""
    return run_request(DrillRequest.from_args(args))


def run_request(request: DrillRequest) -> int:
    """List, or check, resolve and run the drills; the exit code (see the module doc)."""
    try:
        if request.action == "list":
            print(list_text(request.scenario_dirs))
            return EXIT_OK
        if request.action != "run":
            return _fail(Problem("usage", f"unknown action {request.action!r} (list or run)"))
        setup = _prepare(request)
        if isinstance(setup, Problem):
            return _fail(setup)
        # JSON on stdout stays parseable: the progress lines go to stderr then.
        stream = sys.stdout if request.fmt == "text" else sys.stderr
        result = run_drills(
            list(request.names) or None,
            fmt=request.fmt,
            report_path=Path(request.report) if request.report else None,
            progress=lambda line: print(clean(line), file=stream, flush=True),
            output=print,
            runtime_dir=setup.runtime_dir,
            protect=ProtectedSet(files=list(setup.protect)),
            scenario_dirs=request.scenario_dirs,
            target=setup.target,
        )
    except ScenarioError as exc:
        return _fail(Problem("usage", str(exc)))
    return exit_code(result)


def exit_code(result: Report) -> int:
    """0 all passed; 3 when every drill that did not pass was refused; else 1."""
    if result.passed:
        return EXIT_OK
    not_passed = [r for r in result.results if r.status is not Status.PASSED]
    if not_passed and all(r.details.get("refused") for r in not_passed):
        return EXIT_REFUSED
    return EXIT_FAILED


def _wait_s(request: DrillRequest) -> float | Problem | None:
    """``--wait`` in seconds, after the checks of ``--time-scale`` and ``--wait`` alone."""
    if (request.time_scale is not None or request.wait is not None) and request.target is None:
        text = "--time-scale and --wait apply to drills against a target: give --target"
        return Problem("usage", text)
    scale = request.time_scale
    if scale is not None and not 0 < scale <= 1:
        text = f"--time-scale {scale:g}: must be in (0, 1] (1: the runbook's timings)"
        return Problem("usage", text)
    if request.wait is None:
        return None
    from autoheal.core.durations import parse_duration

    try:
        return parse_duration(request.wait)
    except ValueError as exc:
        return Problem("usage", f"--wait {request.wait}: {exc}")


def _load(path: str) -> Config | Problem:
    from autoheal.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        return Problem("config", f"config error: {exc}")


def _same_file(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _own_files(cfg: Config) -> list[Path]:
    """The files of ``cfg`` that no drill may touch."""
    return [cfg.path, cfg.paths.stop_file, *cfg.chaos.protected_files]


def _prepare(request: DrillRequest) -> _Setup | Problem:
    """Check the request and read its configs, in the order the problems are reported."""
    wait_s = _wait_s(request)
    if isinstance(wait_s, Problem):
        return wait_s
    config, target = request.config, request.target
    runtime_dir = request.runtime_dir
    protect: list[Path] = []
    drill_target: DrillTarget | None = None
    if config is not None and target is None:
        own = _load(config)
        if isinstance(own, Problem):
            return own
        _err(
            f"--config {config} is not a target: every drill runs on its own stack "
            "(the report goes to its runtime directory, and its files are protected); "
            f"to run the daemon drills against its running daemon: --target {config}"
        )
        runtime_dir = runtime_dir or own.paths.runtime_dir
        protect += _own_files(own)
    elif config is not None and target is not None and not _same_file(config, target):
        text = (
            f"--config {config} and --target {target} name different files; "
            "the target is the config (give --target alone)"
        )
        return Problem("usage", text)
    if target is not None:
        cfg = _load(target)
        if isinstance(cfg, Problem):
            return cfg
        if cfg.environment == "live":
            text = (
                f'refused: {target} has environment = "live"; drills never run against live money'
            )
            return Problem("refused", text)
        runtime_dir = runtime_dir or cfg.paths.runtime_dir
        # Drills on their own directories must not touch any of the target's files.
        protect += _own_files(cfg)
        drill_target = DrillTarget.from_config(cfg, time_scale=request.time_scale, wait_s=wait_s)
    where = Path(runtime_dir) if runtime_dir is not None else Path("shared_data")
    protect += [where / f for f in PROTECTED_RUNTIME_FILES]
    return _Setup(where, tuple(protect), drill_target)
