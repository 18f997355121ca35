"""What every ``autoheal`` command shares: exit codes, the one way to print, config loading.

Exit codes (DESIGN.md §4): 0 ok, 1 the thing failed or is unhealthy (or a command's
result is not in yet), 2 usage or configuration error, 3 refused by a safety gate.

A command that stops early says why in one line on stderr, ``autoheal: ...``, through
:func:`fail`, which also picks the exit code from the :class:`Problem`'s kind.

Whatever a command prints that came from outside (a reason, a journal row, a key, a
path, an error's text) goes through :func:`clean` (:mod:`autoheal.terminal`, re-exported
here: the journal's formatter and the daemon use it too): no command prints a control
character it did not write (issue 18 A10). :func:`say` and :func:`err` clean the whole
line.

Light on purpose: ``autoheal status`` imports this module, and the config package only
when :func:`load_config` runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from autoheal.terminal import clean, clean_json

if TYPE_CHECKING:
    from autoheal.config import Config

__all__ = [
    "DEFAULT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "Problem",
    "clean",
    "clean_json",
    "err",
    "fail",
    "load_config",
    "os_user",
    "say",
    "stop_file_refused",
    "usage_error",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3

#: ``--config`` when none is given, relative to the working directory.
DEFAULT_CONFIG = "config/autoheal.toml"

ProblemKind = Literal["usage", "config", "refused", "failed"]
#: kind -> (exit code, what the line says after ``autoheal: ``)
_KINDS: dict[str, tuple[int, str]] = {
    "usage": (EXIT_USAGE, "usage error: "),
    "config": (EXIT_USAGE, "config error: "),
    "refused": (EXIT_REFUSED, "refused: "),
    "failed": (EXIT_FAILED, ""),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a command stopped before (or instead of) doing its work.

    ``usage`` and ``config`` exit 2, ``refused`` (a safety gate) 3, ``failed`` 1.
    """

    kind: ProblemKind
    text: str

    @property
    def code(self) -> int:
        """The exit code: 2, 3 or 1."""
        return _KINDS[self.kind][0]


def say(line: str) -> None:
    """One line on stdout, cleaned whole."""
    print(clean(line))


def err(line: str) -> None:
    """One line on stderr, cleaned whole: its values came from outside (argv, files, errors)."""
    print(clean(line), file=sys.stderr)


def fail(problem: Problem) -> int:
    """Print ``problem`` as ``autoheal: <kind>: <text>`` on stderr; return its exit code."""
    err(f"autoheal: {_KINDS[problem.kind][1]}{problem.text}")
    return problem.code


def usage_error(text: str) -> int:
    """``autoheal: usage error: TEXT`` on stderr; returns 2."""
    return fail(Problem("usage", text))


def load_config(path: str) -> Config | None:
    """Load the config or print one clear line (file, key, problem); None on error."""
    from autoheal.config import ConfigError
    from autoheal.config import load_config as load

    try:
        return load(path)
    except ConfigError as exc:  # quotes the file's keys and values
        fail(Problem("config", str(exc)))
        return None


def stop_file_refused(cfg: Config) -> bool:
    """Print why the stop file cannot be written, if it cannot; True when refused."""
    from autoheal.config._paths import stop_file_problem

    problem = stop_file_problem(cfg)
    if problem is not None:
        fail(Problem("config", f"{cfg.path}: {problem}"))
    return problem is not None


def os_user() -> str:
    """The OS user running the command (a command's actor in the journal)."""
    import os
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid:{os.geteuid()}"
