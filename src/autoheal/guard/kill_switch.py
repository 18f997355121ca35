"""Where the kill switch is: explicit paths, else the environment the daemon sets.

Every guard object finds the runtime directory (``global_flags.json``, the breaker,
the ledger, ...) and ``STOP.TXT`` the same way, path by path:

1. the path the caller passed;
2. else ``AUTOHEAL_RUNTIME_DIR`` / ``AUTOHEAL_STOP_FILE``, which the daemon puts in
   the environment of every service it starts;
3. else, for the stop file only, ``<runtime_dir>/../STOP.TXT`` (the configuration's
   default).

Every path must be absolute. A relative one would be resolved against the directory
the trading process happened to be started from, not where the daemon keeps the
files: the kill switch would be read from the wrong place and say nothing.

The kill switch is *unknown* and nothing may trade (the gate and the live-execution
check answer ``kill_switch_unknown``) when it cannot be found: no runtime directory,
a relative path, or (read each time) a runtime directory or ``global_flags.json``
that does not exist (the daemon always writes one), or a flags file that is not a
regular file. The classes that need a place to keep state refuse to be built
(``ValueError``) without an absolute runtime directory.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from autoheal.store.flags import FLAGS_FILENAME, FlagsRead

__all__ = [
    "FROM_ENV",
    "KILL_SWITCH_UNKNOWN",
    "RUNTIME_DIR_ENV",
    "STOP_FILE_ENV",
    "FromEnv",
    "KillSwitchPaths",
    "KillSwitchUnknown",
    "absolute_runtime_dir",
    "flags_problem",
    "resolve_kill_switch",
    "runtime_dir_from_env",
]

RUNTIME_DIR_ENV = "AUTOHEAL_RUNTIME_DIR"
STOP_FILE_ENV = "AUTOHEAL_STOP_FILE"
KILL_SWITCH_UNKNOWN = "kill_switch_unknown"

PathArg = str | os.PathLike[str]


class FromEnv(enum.Enum):
    """The type of :data:`FROM_ENV`."""

    FROM_ENV = "from_env"


#: The default of ``CircuitBreaker(runtime_dir=...)``: the environment's, else in memory.
FROM_ENV = FromEnv.FROM_ENV


@dataclass(frozen=True, slots=True)
class KillSwitchPaths:
    """The two places the kill switch lives."""

    runtime_dir: Path
    stop_file: Path


@dataclass(frozen=True, slots=True)
class KillSwitchUnknown:
    """Why the kill switch cannot be found (for the log): nothing may trade."""

    detail: str


def _pick(
    explicit: PathArg | None, environ: Mapping[str, str], name: str
) -> tuple[Path | None, str]:
    """The path and where it came from (``runtime_dir=`` / the variable's name)."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit), "the path given"
    value = environ.get(name, "")
    return (Path(value), name) if value else (None, name)


def _relative(path: Path, source: str) -> str:
    return (
        f"{path} ({source}) is a relative path: it would be read from wherever this "
        "process was started, not where the daemon keeps the kill switch; pass an "
        "absolute path"
    )


def resolve_kill_switch(
    runtime_dir: PathArg | None = None,
    stop_file: PathArg | None = None,
    environ: Mapping[str, str] | None = None,
) -> KillSwitchPaths | KillSwitchUnknown:
    """The kill switch's paths, or why they cannot be known.

    Args:
        runtime_dir: an explicit runtime directory (beats the environment).
        stop_file: an explicit ``STOP.TXT`` path (beats the environment).
        environ: the environment to read; default ``os.environ``.

    Returns:
        :class:`KillSwitchPaths`, absolute; :class:`KillSwitchUnknown` when there is no
        runtime directory or a path is relative.
    """
    env = os.environ if environ is None else environ
    runtime, source = _pick(runtime_dir, env, RUNTIME_DIR_ENV)
    if runtime is None:
        return KillSwitchUnknown(f"no runtime_dir given and {RUNTIME_DIR_ENV} is not set")
    if not runtime.is_absolute():
        return KillSwitchUnknown(_relative(runtime, source))
    stop, source = _pick(stop_file, env, STOP_FILE_ENV)
    if stop is None:
        return KillSwitchPaths(runtime, runtime.parent / "STOP.TXT")
    if not stop.is_absolute():
        return KillSwitchUnknown(_relative(stop, source))
    return KillSwitchPaths(runtime, stop)


def flags_problem(read: FlagsRead, runtime_dir: Path) -> str:
    """Why a read of ``global_flags.json`` leaves the kill switch unknown; "" when found.

    The daemon writes the file at start and keeps it there, so a missing one means a
    wrong path (or no daemon yet), never NORMAL; one that is not a regular file was
    never opened.
    """
    if read.missing:
        if not os.path.isdir(runtime_dir):
            return f"the runtime directory {runtime_dir} does not exist"
        return f"{runtime_dir / FLAGS_FILENAME} does not exist (the daemon always writes it)"
    if read.not_regular:
        return f"{runtime_dir / FLAGS_FILENAME} is {read.detail}"
    return ""


def absolute_runtime_dir(path: PathArg, *, what: str, source: str = "runtime_dir") -> Path:
    """``path`` if it is absolute.

    Raises:
        ValueError: it is relative (``what`` names the class that needed it).
    """
    runtime = Path(path)
    if not runtime.is_absolute():
        raise ValueError(f"{what}: {_relative(runtime, source)}")
    return runtime


def runtime_dir_from_env(
    runtime_dir: PathArg | None, *, what: str, environ: Mapping[str, str] | None = None
) -> Path:
    """``runtime_dir``, else ``AUTOHEAL_RUNTIME_DIR``; absolute.

    Raises:
        ValueError: neither is set, or the path is relative (``what`` names the class
            that needed it).
    """
    env = os.environ if environ is None else environ
    runtime, source = _pick(runtime_dir, env, RUNTIME_DIR_ENV)
    if runtime is None:
        raise ValueError(f"{what}: no runtime_dir given and {RUNTIME_DIR_ENV} is not set")
    return absolute_runtime_dir(runtime, what=what, source=source)
