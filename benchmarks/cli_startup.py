"""CLI start-up benchmark (run by hand, not by the tests).

Runs ``autoheal status`` and ``autoheal check-config`` against a config (default the
demo ``config/autoheal.toml``) as real subprocesses, ``--runs`` times each after
``--warmups`` unmeasured runs, and prints the median and p90 wall time of each, from
just before the process is spawned to its exit. No daemon is needed: without one,
``status`` reports the daemon as not running or stale and exits 1 (the exit code of
every command is shown; a command whose exit code changes between runs is flagged).

Beside them, in the same run and round-robin with them (so that a noisy moment costs
every command alike):

* ``python -c pass``: the interpreter's own start-up, the floor under any Python CLI;
* ``supervisorctl status`` against a socket that does not exist (exit 4), a peer's
  cheapest real command, only when ``benchmarks/.venv-peers`` is already installed
  (``restart_latency.py`` installs it); this script installs nothing;
* with ``--baseline SRC``, both autoheal commands again with ``PYTHONPATH=SRC`` (the
  ``src`` folder of another checkout, e.g. ``git worktree add /tmp/base <commit>``), so
  a before/after comparison shares one run's noise.

Bytecode: ``--bytecode cached`` (the default) gives every child a private, empty
``PYTHONPYCACHEPREFIX`` that the warm-ups fill, so each measured run imports from
cached bytecode as an installed package does, and nothing is written into the tree.
``--bytecode inherit`` runs the children in this environment as it is; with
``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__`` beside the sources, autoheal's own
modules are compiled from source on every run (slower, and what a development checkout
with that variable set sees).

Usage: ``.venv/bin/python benchmarks/cli_startup.py [--runs 10] [--warmups 2]
[--config config/autoheal.toml] [--bytecode cached|inherit] [--baseline SRC] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from autoheal.core.stats import percentile  # one percentile: nearest rank

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PEER_BIN = BENCH_DIR / ".venv-peers" / "bin"
DEFAULT_CONFIG = REPO / "config" / "autoheal.toml"


def autoheal_argv(*args: str) -> list[str]:
    """``autoheal ARGS`` through the console script beside this interpreter (``-m`` if none)."""
    script = Path(sys.executable).parent / "autoheal"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "autoheal", *args]


@dataclass(frozen=True)
class Command:
    """One measured command: its argv and what its environment adds to the run's."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def commands(config: Path, workdir: Path, baseline: Path | None) -> dict[str, Command]:
    """Label -> every command measured in this run, in the order they are run."""
    status = autoheal_argv("status", "--config", str(config))
    check = autoheal_argv("check-config", "--config", str(config))
    cmds = {"autoheal status": Command(status), "autoheal check-config": Command(check)}
    if baseline is not None:
        # PYTHONPATH comes before the editable install's .pth entry: autoheal from there.
        cmds["baseline: autoheal status"] = Command(status, {"PYTHONPATH": str(baseline)})
        cmds["baseline: autoheal check-config"] = Command(check, {"PYTHONPATH": str(baseline)})
    cmds["python -c pass (floor)"] = Command([sys.executable, "-c", "pass"])
    supervisorctl = PEER_BIN / "supervisorctl"
    if supervisorctl.exists():
        conf = workdir / "supervisorctl.conf"
        conf.write_text(f"[supervisorctl]\nserverurl = unix://{workdir / 'nosuch.sock'}\n")
        argv = [str(supervisorctl), "-c", str(conf), "status"]
        cmds["supervisorctl status (no server)"] = Command(argv)
    return cmds


def child_env(bytecode: str, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    if bytecode == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall milliseconds from spawn to exit, and the exit code."""
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return (time.perf_counter() - started) * 1000, done.returncode


def measure(
    cmds: dict[str, Command], env: dict[str, str], runs: int, warmups: int
) -> dict[str, dict[str, object]]:
    """Round-robin: every command once per round, ``warmups`` unmeasured rounds first."""
    envs = {label: {**env, **cmd.env} for label, cmd in cmds.items()}
    samples: dict[str, list[float]] = {label: [] for label in cmds}
    codes: dict[str, set[int]] = {label: set() for label in cmds}
    for i in range(warmups + runs):
        for label, cmd in cmds.items():
            ms, code = run_once(cmd.argv, envs[label])
            codes[label].add(code)
            if i >= warmups:
                samples[label].append(ms)
    out: dict[str, dict[str, object]] = {}
    for label, cmd in cmds.items():
        got = samples[label]
        out[label] = {
            "argv": cmd.argv,
            "env": cmd.env,
            "exit_codes": sorted(codes[label]),
            "median_ms": round(statistics.median(got), 1),
            "p90_ms": round(percentile(got, 90), 1),
            "min_ms": round(min(got), 1),
            "max_ms": round(max(got), 1),
            "samples_ms": [round(s, 1) for s in got],
        }
    return out


def table(results: dict[str, dict[str, object]]) -> str:
    lines = [f"{'command':<36} {'exit':>6} {'median':>9} {'p90':>9} {'min':>9} {'max':>9}"]
    for label, r in results.items():
        codes = r["exit_codes"]
        assert isinstance(codes, list)
        code = str(codes[0]) if len(codes) == 1 else "/".join(map(str, codes)) + "!"
        lines.append(
            f"{label:<36} {code:>6} {r['median_ms']:>6.1f} ms {r['p90_ms']:>6.1f} ms "
            f"{r['min_ms']:>6.1f} ms {r['max_ms']:>6.1f} ms"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs per command")
    parser.add_argument("--warmups", type=int, default=2, help="unmeasured runs first")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--bytecode", choices=["cached", "inherit"], default="cached")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="SRC",
        help="also run the autoheal commands from this src folder (another checkout)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = parser.parse_args()
    if args.runs < 1 or args.warmups < 0:
        parser.error("--runs must be at least 1 and --warmups at least 0")
    config = args.config.resolve()
    baseline = None if args.baseline is None else args.baseline.resolve()
    if baseline is not None and not (baseline / "autoheal" / "__init__.py").exists():
        parser.error(f"--baseline {baseline}: no autoheal package there")
    with tempfile.TemporaryDirectory(prefix="autoheal-cli-startup-") as tmp:
        workdir = Path(tmp)
        results = measure(
            commands(config, workdir, baseline),
            child_env(args.bytecode, workdir),
            args.runs,
            args.warmups,
        )
    if args.json:
        doc = {
            "config": str(config),
            "runs": args.runs,
            "warmups": args.warmups,
            "bytecode": args.bytecode,
            "baseline": None if baseline is None else str(baseline),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "commands": results,
        }
        print(json.dumps(doc, indent=2))
    else:
        print(
            f"CLI start-up: {args.runs} runs after {args.warmups} warm-ups, config {config}, "
            f"bytecode {args.bytecode}, Python {platform.python_version()}"
        )
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
