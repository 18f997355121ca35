"""Two distributions from one tree: autoheal, and autoheal-guard with no dependencies (issue 22).

Both wheels are built as a release builds them (``pip wheel --no-deps
--no-build-isolation``; hatchling is in the lock). Together they hold every file of
``src/autoheal``, each file in exactly one; the guard's metadata requires nothing; and
every module of the guard's wheel imports, and a TradingGate obeys real files, in an
interpreter that can import nothing outside the standard library and that wheel.
"""

from __future__ import annotations

import email.parser
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

import autoheal

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-w", str(out), str(REPO / "guard"), str(REPO)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    found = {w.name.split("-")[0]: w for w in out.glob("*.whl")}
    assert set(found) == {"autoheal", "autoheal_guard"}, found
    return found


def _files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return {n for n in z.namelist() if ".dist-info/" not in n}


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(z.read(name).decode())


def _tree() -> set[str]:
    """Every file of src/autoheal, as the single wheel shipped them (no bytecode caches)."""
    return {
        p.relative_to(SRC).as_posix()
        for p in (SRC / "autoheal").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_the_two_wheels_split_the_tree_exactly(wheels):
    main, guard = _files(wheels["autoheal"]), _files(wheels["autoheal_guard"])
    assert not main & guard, "a file in both wheels"
    # Plus the example configs, shipped as package data (the freqtrade recipe's drills).
    examples = {f"autoheal/examples/{p.name}" for p in (REPO / "config" / "examples").iterdir()}
    assert main | guard == _tree() | examples
    assert "autoheal/__init__.py" in guard
    assert {"autoheal/guard/gate.py", "autoheal/store/flags.py"} <= guard
    assert "autoheal/cli/__init__.py" in main
    # Every module of autoheal/guard/ comes along, whatever is added there later.
    assert {f for f in _tree() if f.startswith("autoheal/guard/")} <= guard


def test_the_guard_requires_nothing_and_autoheal_requires_this_very_guard(wheels):
    guard, main = _metadata(wheels["autoheal_guard"]), _metadata(wheels["autoheal"])
    assert guard.get_all("Requires-Dist") is None
    assert guard["Version"] == main["Version"] == autoheal.__version__
    assert f"autoheal-guard=={autoheal.__version__}" in main.get_all("Requires-Dist")


def test_the_split_is_one_list_in_pyproject():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = config["tool"]["hatch"]["build"]["targets"]["wheel"]["exclude"]
    assert all(p.startswith("src/autoheal/") and (REPO / p).exists() for p in listed)
    guard = tomllib.loads((REPO / "guard" / "pyproject.toml").read_text())
    assert guard["project"]["dependencies"] == []
    assert "optional-dependencies" not in guard["project"]
    assert config["tool"]["uv"]["sources"]["autoheal-guard"] == {"path": "guard"}


# Runs in `python -I -S`: no site-packages, no PYTHONPATH, no current directory; a finder
# first in sys.meta_path refuses every top-level module that is neither the standard
# library's nor autoheal (orjson, watchfiles, anyio, httpx, psutil, msgspec, ...).
STDLIB_ONLY = textwrap.dedent(
    """
    import importlib, importlib.abc, os, sys, pathlib

    site, work = sys.argv[1], pathlib.Path(sys.argv[2])
    refused = []

    class StdlibOnly(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top != "autoheal" and top not in sys.stdlib_module_names:
                refused.append(name)
                raise ModuleNotFoundError(f"refused: {name}", name=name)
            return None

    sys.meta_path.insert(0, StdlibOnly())
    sys.path.insert(0, site)

    for module in sys.argv[3:]:
        importlib.import_module(module)
    import autoheal
    assert autoheal.__file__.startswith(site), autoheal.__file__
    from autoheal.store import _json
    assert _json.BACKEND == "json", _json.BACKEND

    from autoheal.guard import TradingGate
    from autoheal.store.flags import Flags, write_flags, write_stop_file
    runtime, stop = work / "shared_data", work / "STOP.TXT"
    runtime.mkdir()
    write_flags(runtime, Flags(mode="NORMAL"))
    gate = TradingGate(runtime, stop)
    assert gate.allowed("buy", symbol="BTCUSDT") == (True, "ok"), gate.status()
    write_stop_file(stop, "operator", set_by="operator")
    gate.invalidate()
    assert gate.allowed("buy", symbol="BTCUSDT") == (False, "stop_file_present")
    assert gate.allowed("sell", symbol="BTCUSDT") == (False, "stop_file_present")
    os.unlink(stop)
    write_flags(runtime, Flags(mode="REDUCE_ONLY", reason="drill", set_by="operator"))
    gate.invalidate()
    assert gate.allowed("buy", symbol="BTCUSDT") == (False, "reduce_only")
    written = (runtime / "global_flags.json").read_bytes()  # orjson's bytes, without orjson
    assert written == (
        b'{"failsafe_active":false,"mode":"REDUCE_ONLY","reason":"drill",'
        b'"set_by":"operator","since":null}\\n'
    ), written
    try:
        gate.start()
    except ImportError as exc:
        assert "watchfiles" in str(exc), exc
    else:
        raise AssertionError("start() without watchfiles")
    print("refused:", " ".join(sorted(set(refused))))
    print("ok")
    """
)


def test_every_guard_module_imports_and_the_gate_works_with_the_stdlib_alone(wheels, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheels["autoheal_guard"]) as z:
        z.extractall(site)
    modules = sorted(
        f.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for f in _files(wheels["autoheal_guard"])
        if f.endswith(".py")
    )
    assert "autoheal.guard.gate" in modules
    (tmp_path / "work").mkdir()
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            STDLIB_ONLY,
            str(site),
            str(tmp_path / "work"),
            *modules,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "ok"
    # watchfiles was asked for (by start()) and refused: the finder was in the way.
    assert "watchfiles" in out.stdout.splitlines()[-2].split()
