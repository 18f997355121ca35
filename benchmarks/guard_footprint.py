"""What installing the guard does to a trading bot's environment (issue 22).

A bot pins hard, so the guard must install into its environment without changing a
single resolved version. This makes that environment for real, a venv with
``freqtrade==VERSION`` installed as its own resolution wants (pip from the registry,
constrained by the lock's versions, ``requirements/test.txt``, where the lock pins a
package), builds the guard's wheel (and autoheal's, for comparison) from this
checkout, and asks pip what installing each would do: ``pip install --dry-run
--report``. It prints the packages each would add and the ones it would change
(another version of something installed). The goal for the guard: itself alone
added, nothing changed.

The venv is kept in ``benchmarks/.venv-freqtrade-VERSION`` (``-unlocked`` with
``--no-lock``: freqtrade's own newest resolution; gitignored) for the next run; delete
it to resolve afresh.

Usage: ``.venv/bin/python benchmarks/guard_footprint.py [--freqtrade 2026.9] [--no-lock] [--json]``
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements" / "test.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*==[^\s;\\]+)(\s*;\s*[^\\]+?)?\s*\\?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_constraints(lock: Path, out: Path) -> Path:
    """The lock's pins (and markers) without hashes: a pip constraints file."""
    pins = []
    for line in lock.read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins.append(m.group(1) + (m.group(2) or ""))
    out.write_text("\n".join(pins) + "\n")
    return out


def run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, **kw)


def bot_venv(version: str, *, use_lock: bool, work: Path) -> Path:
    """The bot's environment: freqtrade, resolved by pip; made once, then reused."""
    venv = REPO / "benchmarks" / f".venv-freqtrade-{version}{'' if use_lock else '-unlocked'}"
    python = venv / "bin" / "python"
    done = venv / ".installed"
    if done.exists():
        return python
    run([sys.executable, "-m", "venv", "--clear", str(venv)])
    argv = [str(python), "-m", "pip", "install", "-q", f"freqtrade=={version}"]
    if use_lock:
        argv += ["-c", str(lock_constraints(LOCK, work / "lock-constraints.txt"))]
    print(f"installing freqtrade=={version} into {venv} (once) ...", file=sys.stderr)
    run(argv)
    done.write_text(" ".join(argv[3:]) + "\n")
    return python


def installed(python: Path) -> dict[str, tuple[str, str]]:
    out = run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True)
    return {canonical(p["name"]): (p["name"], p["version"]) for p in json.loads(out.stdout)}


def build_wheels(work: Path) -> dict[str, Path]:
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    run([*pip_wheel, "-w", str(work), str(REPO / "guard"), str(REPO)], capture_output=True)
    return {w.name.split("-")[0]: w for w in work.glob("*.whl")}


def footprint(python: Path, wheels: list[Path], report: Path) -> dict[str, object]:
    """What ``pip install`` of ``wheels`` would add to the venv and change in it."""
    before = installed(python)
    run(
        [str(python), "-m", "pip", "install", "-q", "--dry-run", "--report", str(report)]
        + [str(w) for w in wheels],
        capture_output=True,
    )
    added, changed = [], []
    for item in json.loads(report.read_text())["install"]:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        had = before.get(canonical(name))
        if had is None:
            added.append(f"{name}=={version}")
        elif had[1] != version:
            changed.append(f"{name} {had[1]} -> {version}")
    return {"installed_before": len(before), "added": sorted(added), "changed": sorted(changed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--freqtrade", default="2026.9", help="the bot's version")
    parser.add_argument(
        "--no-lock", action="store_true", help="resolve freqtrade without the lock's pins"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        python = bot_venv(args.freqtrade, use_lock=not args.no_lock, work=work)
        wheels = build_wheels(work)
        result = {
            "bot": f"freqtrade=={args.freqtrade}",
            "autoheal-guard": footprint(python, [wheels["autoheal_guard"]], work / "g.json"),
            "autoheal": footprint(
                python, [wheels["autoheal"], wheels["autoheal_guard"]], work / "a.json"
            ),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    lock = "resolved without the lock" if args.no_lock else "constrained by the lock"
    print(f"{result['bot']} ({lock}): {result['autoheal-guard']['installed_before']} installed")
    for dist in ("autoheal-guard", "autoheal"):
        fp = result[dist]
        print(f"pip install {dist} would add {len(fp['added'])}, change {len(fp['changed'])}")
        for line in fp["added"]:
            print(f"  + {line}")
        for line in fp["changed"]:
            print(f"  ~ {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
