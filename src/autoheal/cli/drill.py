"""``autoheal drill list|run``: the entry the CLI calls, returning the exit code.

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
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from autoheal.chaos.blast import ProtectedSet
from autoheal.drills.catalog import load_catalog
from autoheal.drills.evaluate import scale_label
from autoheal.drills.model import ScenarioError, Status
from autoheal.drills.plan import DrillTarget
from autoheal.drills.runner import run_drills
from autoheal.store import layout as runtime_files
from autoheal.terminal import clean

__all__ = ["drill_command", "list_text"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
#: Operator files a drill must never touch, watched when they live in the runtime dir.
PROTECTED_RUNTIME_FILES = (runtime_files.FLAGS, runtime_files.STATE_BUS,
                           runtime_files.POSITIONS, runtime_files.BREAKERS)


def _err(message: str) -> None:
    """One line on stderr; it may quote a drill name, a path or a scenario file's error."""
    print(clean(f"autoheal drill: {message}"), file=sys.stderr)


def list_text(scenario_dirs: Sequence[Path] = ()) -> str:
    """One line per scenario: name, kind, time scale, default set or not, title."""
    lines = []
    for s in load_catalog(scenario_dirs).values():
        extra = "" if s.default else "  (not in the default set)"
        lines.append(f"{clean(s.name):<24} {clean(s.kind):<28} {scale_label(s.time_scale):>6}  "
                     f"{clean(s.title)}{extra}")
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
    try:
        if action == "list":
            print(list_text(scenario_dirs))
            return EXIT_OK
        if action != "run":
            _err(f"unknown action {action!r} (list or run)")
            return EXIT_USAGE
        protect_files: list[Path] = []
        drill_target: DrillTarget | None = None
        if (time_scale is not None or wait is not None) and target is None:
            _err("--time-scale and --wait apply to drills against a target: give --target")
            return EXIT_USAGE
        if time_scale is not None and not 0 < time_scale <= 1:
            _err(f"--time-scale {time_scale:g}: must be in (0, 1] (1: the runbook's timings)")
            return EXIT_USAGE
        wait_s: float | None = None
        if wait is not None:
            from autoheal.core.durations import parse_duration

            try:
                wait_s = parse_duration(wait)
            except ValueError as exc:
                _err(f"--wait {wait}: {exc}")
                return EXIT_USAGE
        if config is not None and target is None:
            from autoheal.config import ConfigError, load_config

            try:
                own = load_config(config)
            except ConfigError as exc:
                _err(f"config error: {exc}")
                return EXIT_USAGE
            _err(f"--config {config} is not a target: every drill runs on its own stack "
                 "(the report goes to its runtime directory, and its files are protected); "
                 f"to run the daemon drills against its running daemon: --target {config}")
            runtime_dir = runtime_dir or own.paths.runtime_dir
            protect_files += [own.path, own.paths.stop_file, *own.chaos.protected_files]
        elif config is not None and target is not None \
                and Path(config).resolve() != Path(target).resolve():
            _err(f"--config {config} and --target {target} name different files; "
                 "the target is the config (give --target alone)")
            return EXIT_USAGE
        if target is not None:
            from autoheal.config import ConfigError, load_config

            try:
                cfg = load_config(target)
            except ConfigError as exc:
                _err(f"config error: {exc}")
                return EXIT_USAGE
            if cfg.environment == "live":
                _err(f"refused: {target} has environment = \"live\"; drills never run "
                     "against live money")
                return EXIT_REFUSED
            runtime_dir = runtime_dir or cfg.paths.runtime_dir
            # Drills on their own directories must not touch any of the target's files.
            protect_files += [cfg.path, cfg.paths.stop_file, *cfg.chaos.protected_files]
            drill_target = DrillTarget.from_config(cfg, time_scale=time_scale, wait_s=wait_s)
        runtime_dir = Path(runtime_dir) if runtime_dir is not None else Path("shared_data")
        protect_files += [runtime_dir / f for f in PROTECTED_RUNTIME_FILES]
        # JSON on stdout stays parseable: the progress lines go to stderr then.
        stream = sys.stdout if fmt == "text" else sys.stderr
        result = run_drills(
            list(names) or None, fmt=fmt, report_path=Path(report) if report else None,
            progress=lambda line: print(clean(line), file=stream, flush=True), output=print,
            runtime_dir=runtime_dir, protect=ProtectedSet(files=protect_files),
            scenario_dirs=scenario_dirs, target=drill_target)
    except ScenarioError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if result.passed:
        return EXIT_OK
    not_passed = [r for r in result.results if r.status is not Status.PASSED]
    if not_passed and all(r.details.get("refused") for r in not_passed):
        return EXIT_REFUSED
    return EXIT_FAILED

