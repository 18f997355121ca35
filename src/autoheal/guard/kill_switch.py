"""Where the kill switch is: explicit paths, else the environment the daemon sets.

Every guard object finds the runtime directory (``global_flags.json``, the breaker,
the ledger, ...) and ``STOP.TXT`` the same way, path by path:

1. the path the caller passed;
2. else ``AUTOHEAL_RUNTIME_DIR`` / ``AUTOHEAL_STOP_FILE``, which the daemon puts in
   the environment of every service it starts;
3. else, for the stop file only, ``<runtime_dir>/../STOP.TXT`` (the configuration's
   default).

Without a runtime directory the failsafe flags cannot be read, so the kill switch is
*unknown* and nothing may trade: the gate and the live-execution check answer
``kill_switch_unknown``; the classes that need a place to keep state refuse to be built.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FROM_ENV",
    "KILL_SWITCH_UNKNOWN",
    "RUNTIME_DIR_ENV",
    "STOP_FILE_ENV",
    "FromEnv",
    "KillSwitchPaths",
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


def _pick(explicit: PathArg | None, environ: Mapping[str, str], name: str) -> Path | None:
    if explicit is not None and str(explicit) != "":
        return Path(explicit)
    value = environ.get(name, "")
    return Path(value) if value else None


def resolve_kill_switch(
    runtime_dir: PathArg | None = None,
    stop_file: PathArg | None = None,
    environ: Mapping[str, str] | None = None,
) -> KillSwitchPaths | None:
    """The kill switch's paths, or ``None`` when the runtime directory is not known.

    Args:
        runtime_dir: an explicit runtime directory (beats the environment).
        stop_file: an explicit ``STOP.TXT`` path (beats the environment).
        environ: the environment to read; default ``os.environ``.
    """
    env = os.environ if environ is None else environ
    runtime = _pick(runtime_dir, env, RUNTIME_DIR_ENV)
    if runtime is None:
        return None
    stop = _pick(stop_file, env, STOP_FILE_ENV)
    return KillSwitchPaths(runtime, stop if stop is not None else runtime.parent / "STOP.TXT")


def runtime_dir_from_env(
    runtime_dir: PathArg | None, *, what: str, environ: Mapping[str, str] | None = None
) -> Path:
    """``runtime_dir``, else ``AUTOHEAL_RUNTIME_DIR``.

    Raises:
        ValueError: neither is set (``what`` names the class that needed it).
    """
    env = os.environ if environ is None else environ
    runtime = _pick(runtime_dir, env, RUNTIME_DIR_ENV)
    if runtime is None:
        raise ValueError(f"{what}: no runtime_dir given and {RUNTIME_DIR_ENV} is not set")
    return runtime
