"""Checks of the configured paths: the stop file must be a file of its own, and writable.

``STOP.TXT`` is written on every failsafe and *deleted* when one is cleared. A
``paths.stop_file`` that is the journal, the flags file, a pidfile, a heartbeat,
the config itself or any other file the daemon, the guard or a service writes would
be overwritten by a failsafe and deleted by a clear; one already there would start
the daemon halted. So it is refused, naming ``paths.stop_file``:

* :func:`stop_file_clash` compares paths as written (pure: run by every command
  that loads the config, so a clear can never act on such a config);
* :func:`stop_file_problem` looks at the machine, for ``check-config`` and ``run``:
  the same comparison after symlinks are resolved, a folder where the file should
  be, and a folder that is missing or not writable. A stop file that cannot be
  written is a kill switch that cannot be pulled: refused before the daemon starts
  rather than found out during the first failsafe (the daemon still copes with it
  failing later: it alerts and retries).

The runtime files' names come from :mod:`autoheal.store.layout`, their one home.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePath

from autoheal.config._model import Config
from autoheal.store import layout as runtime_files

__all__ = ["owned_paths", "stop_file_clash", "stop_file_problem"]

KEY = "paths.stop_file"


def owned_paths(config: Config) -> dict[PurePath, str]:
    """Every file the daemon, the guard, a service or the operator's config names, with
    what it is: the runtime files, each service's pidfile, lock files, probe files and
    log, the daemon's log file, the chaos proxies' control files, the config itself."""
    rt = config.paths.runtime_dir
    found = runtime_files.owned_files(rt, config.services)
    found[config.path] = "the config file itself"
    if config.daemon.log_file is not None:
        found[config.daemon.log_file] = "daemon.log_file"
    for name, svc in config.services.items():
        found[svc.pidfile] = f"services.{name}.pidfile"
        for i, lock in enumerate(svc.lock_files):
            found[lock] = f"services.{name}.lock_files[{i}] (removed at every restart)"
    probes = [(n, p) for n, s in config.services.items() for p in s.probes]
    probes += [(n, p) for n, d in config.dependencies.items() for p in d.probes]
    for name, probe in probes:
        if probe.path is not None:
            found[probe.path] = f"the file of {name}'s {probe.name} probe"
    for dep, control in config.chaos.proxies.items():
        found[control] = f"chaos.proxies.{dep}"
    return found


def stop_file_clash(
    config: Config, canonical: Callable[[PurePath], PurePath] = lambda p: p
) -> str | None:
    """Why ``paths.stop_file`` is, or lies inside, something else the runtime owns.

    Args:
        config: the resolved config (paths absolute and normalised).
        canonical: how to compare paths; the default compares them as written,
            :func:`stop_file_problem` passes ``os.path.realpath``.

    Returns:
        ``"<path> is <what>: ..."`` (the problem at ``paths.stop_file``), or None when
        it stands alone.
    """
    stop = canonical(config.paths.stop_file)
    runtime_dir = canonical(config.paths.runtime_dir)
    shown = config.paths.stop_file
    if stop == runtime_dir or runtime_dir.is_relative_to(stop):
        return f"{shown} is (or contains) paths.runtime_dir: it must be a file of its own"
    for folder, what in runtime_files.owned_folders(config.paths.runtime_dir).items():
        if canonical(folder) == stop or stop.is_relative_to(canonical(folder)):
            return f"{shown} lies in {what} ({folder}): it must be a file of its own"
    for path, what in owned_paths(config).items():
        if canonical(path) == stop:
            return (
                f"{shown} is {what}: a failsafe would overwrite it and a clear "
                "would delete it; choose a file of its own"
            )
    return None


def _realpath(path: PurePath) -> PurePath:
    return Path(os.path.realpath(path))


def stop_file_problem(config: Config) -> str | None:
    """Why ``STOP.TXT`` could not be created or removed at ``paths.stop_file`` on this
    machine, or would clash with another file once symlinks are resolved; None when fine."""
    stop_file = config.paths.stop_file
    clash = stop_file_clash(config, _realpath)
    if clash is not None:
        return f"{KEY}: {clash}"
    if stop_file.is_dir():
        return f"{KEY}: {stop_file} is a folder: it must be a file of its own"
    folder = stop_file.parent
    if not folder.exists():
        return f"{KEY}: its folder {folder} does not exist"
    if not folder.is_dir():
        return f"{KEY}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"{KEY}: its folder {folder} is not writable by this user "
            "(a read-only file system, or under systemd a folder missing from ReadWritePaths)"
        )
    return None
