"""``autoheal run [--chaos]``: the daemon in the foreground; ``autoheal check-config``: what
``run`` would load, checked without running anything.

``run`` wires the real things (the config, the fault injector when ``--chaos``, the
umask, logging) and hands them to :func:`autoheal.daemon.loop.run_daemon`; the daemon
never imports the fault injector itself (DESIGN.md §1). It refuses (exit 3) ``--chaos``
against a ``live`` config and a chaos mode whose protected files cannot be pinned.

``check-config`` must start fast, like ``status``: nothing here imports logging or the
daemon at module level.
"""

from __future__ import annotations

import argparse
import sys

from autoheal.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    Problem,
    err,
    fail,
    load_config,
    say,
    stop_file_refused,
)

__all__ = ["check_config", "run"]


def check_config(args: argparse.Namespace) -> int:
    """Validate the config and print its summary; exit 2 with one line when it is wrong.

    An ``auth_env`` (a probe's, ``[bot_api]``'s) not set in this environment is a note
    on stderr, not an error: the daemon's environment (a systemd unit's
    ``EnvironmentFile``) may have it.
    """
    import os

    from autoheal.config import secret_envs, summary

    cfg = load_config(args.config)
    if cfg is None or stop_file_refused(cfg):
        return EXIT_USAGE
    say(summary(cfg))  # names the runtime directory, which may be any path
    for var, key in secret_envs(cfg).items():
        if key.endswith(".auth_env") and not os.environ.get(var):
            what = "every bot-API call" if key.startswith("bot_api.") else "the probe"
            err(
                f"autoheal: note: {key}: {var} is not set here; {what} fails with "
                "auth_env_missing unless the daemon's environment sets it"
            )
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run the daemon until it is stopped; its exit code."""
    cfg = load_config(args.config)
    if cfg is None or stop_file_refused(cfg):
        return EXIT_USAGE
    if args.chaos and cfg.environment == "live":
        return fail(
            Problem(
                "refused",
                f'--chaos with environment = "live" in {cfg.path}; '
                "fault injection runs only against testnet or paper",
            )
        )
    injector = None
    if args.chaos:
        from autoheal.chaos.handler import ChaosError, ChaosHandler, establish_stop_conditions

        injector = ChaosHandler
        try:
            establish_stop_conditions(cfg.chaos.protected_files)
        except ChaosError as exc:
            text = f"--chaos: {exc} (chaos.protected_files in {cfg.path})"
            return fail(Problem("refused", text))
    import os

    # What systemd's UMask=0027 does, for a daemon started by hand: nothing the daemon or
    # its services create is open to "other" (a stricter umask is kept as it is).
    os.umask(os.umask(0o027) | 0o027)
    _setup_logging(cfg.daemon.log_file)
    from autoheal.daemon.loop import run_daemon

    return run_daemon(cfg, chaos=injector)


def _setup_logging(log_file: object = None) -> None:
    import logging

    from autoheal.logformat import CleanFormatter

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        handlers.append(logging.FileHandler(str(log_file)))
    formatter = CleanFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
