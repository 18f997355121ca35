"""``autoheal.cli``'s shape: one handler table that matches the parser, and nobody but
``__main__`` imports the CLI (DESIGN.md §1: the daemon never imports ``cli``)."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import autoheal
from autoheal.cli import FAST, HANDLERS, build_parser, handler_for, main
from tests.test_layers import _imported_modules

SRC = Path(autoheal.__file__).parent


def _parser_commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_the_handler_table_names_every_command_of_the_parser_and_no_other() -> None:
    assert list(HANDLERS) == _parser_commands()  # the same commands, in --help's order
    assert set(FAST) <= set(HANDLERS)


def test_every_handler_is_a_function_of_its_family_module() -> None:
    for command, entry in HANDLERS.items():
        handler = handler_for(command)
        assert callable(handler), command
        module, function = entry.split(":")
        assert handler.__module__ == f"autoheal.cli.{module}"
        assert handler.__name__ == function


def test_an_unknown_command_has_no_handler() -> None:
    assert handler_for("no-such-command") is None


def test_nothing_outside_the_cli_imports_it() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if relative.parts[0] == "cli" or relative == Path("__main__.py"):
            continue
        if relative.parts[0] == "sim":
            continue  # the simulator plays the operator, who types CLI commands

        package = ".".join(("autoheal", *relative.with_suffix("").parts[:-1]))
        tree = ast.parse(path.read_text(), filename=str(path))
        for module in _imported_modules(tree, package):
            if module == "autoheal.cli" or module.startswith("autoheal.cli."):
                offenders.append(f"{relative}: {module}")
    assert offenders == []


def test_status_imports_only_its_own_family(tmp_path: Path) -> None:
    """``autoheal status`` loads the status module and no other family's."""
    code = (
        "import contextlib, io, sys\n"
        "from autoheal.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['status', '--runtime-dir', {str(tmp_path)!r}])\n"
        "print(sorted(m for m in sys.modules if m.startswith('autoheal.cli')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    loaded = done.stdout.strip().splitlines()[-1]
    assert loaded == "['autoheal.cli', 'autoheal.cli.common', 'autoheal.cli.parser', " + (
        "'autoheal.cli.status']"
    )


def test_main_returns_the_handlers_exit_code(tmp_path: Path) -> None:
    # No health document, no daemon heartbeat: status says so and exits 1.
    assert main(["status", "--runtime-dir", str(tmp_path)]) == 1
