"""Live-execution gating: may this process send *real* orders to a live exchange?

Gates, checked in this order; the reason names the first one that blocks:

1. ``mode`` is ``live`` (``testnet`` and ``paper`` never reach a live exchange):
   ``mode=testnet``
2. ``enable_live_trading`` is true: ``enable_live_trading=False``
3. ``live_mode_armed`` is true: ``live_mode_armed=False``
4. ``live_dry_run_mode`` is false: ``live_dry_run_mode=True``
5. ``confirm_token`` hashes (SHA-256) to the configured ``confirm_token_sha256``,
   compared in constant time: ``confirm_token=missing`` / ``confirm_token=invalid``
6. the kill switch is off (no ``STOP.TXT``, no failsafe, readable flags, no
   REDUCE_ONLY and no risk latch): ``stop_file_present`` / ``failsafe_active`` /
   ``flags_invalid`` / ``reduce_only``; ``kill_switch_unknown`` when it cannot be
   found

Only the first five are pure; the kill switch is always read from disk: from the
``stop_file`` / ``runtime_dir`` the caller names, else from ``AUTOHEAL_STOP_FILE`` /
``AUTOHEAL_RUNTIME_DIR`` (set by the daemon for its services; see
:mod:`autoheal.guard.kill_switch`). Nothing is allowed when the kill switch cannot
be found: no runtime directory, a relative path, a runtime directory or flags file
that does not exist, a flags file that is not a regular file. The token itself is
never logged or put into a reason.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from autoheal.guard.kill_switch import (
    KILL_SWITCH_UNKNOWN,
    KillSwitchUnknown,
    flags_problem,
    resolve_kill_switch,
)
from autoheal.store.flags import read_flags, risk_latch_present, stop_file_present

__all__ = ["LiveEnv", "hash_confirm_token", "is_live_execution_allowed"]

MODES = ("live", "testnet", "paper")


def hash_confirm_token(token: str) -> str:
    """The SHA-256 hex digest an operator puts in the configuration."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LiveEnv:
    """What the gating looks at; every default is the safe one."""

    mode: str = "paper"
    enable_live_trading: bool = False
    live_mode_armed: bool = False
    live_dry_run_mode: bool = True
    confirm_token: str | None = None
    confirm_token_sha256: str | None = None
    #: ``None``: ``AUTOHEAL_STOP_FILE``, else beside the runtime directory. Absolute.
    stop_file: Path | None = None
    #: ``None``: ``AUTOHEAL_RUNTIME_DIR``, else the kill switch is unknown (not allowed).
    #: Absolute.
    runtime_dir: Path | None = None

    @classmethod
    def from_mapping(cls, env: Mapping[str, Any]) -> LiveEnv:
        """Build from a dict (unknown keys ignored, missing ones safe)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in env.items() if k in names})


def _kill_switch_reason(env: LiveEnv, environ: Mapping[str, str] | None) -> str | None:
    paths = resolve_kill_switch(env.runtime_dir, env.stop_file, environ)
    if isinstance(paths, KillSwitchUnknown):
        return KILL_SWITCH_UNKNOWN
    read = read_flags(paths.runtime_dir)
    if flags_problem(read, paths.runtime_dir):
        return KILL_SWITCH_UNKNOWN
    if stop_file_present(paths.stop_file):
        return "stop_file_present"
    if read.flags is None:
        return "flags_invalid"
    if read.flags.failsafe_active or read.flags.mode == "SIGNAL_READ_ONLY":
        return "failsafe_active"
    if read.flags.mode == "REDUCE_ONLY" or risk_latch_present(paths.runtime_dir):
        return "reduce_only"
    return None


def is_live_execution_allowed(
    env: LiveEnv | Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> tuple[bool, str]:
    """Whether real orders may go to a live exchange, and the first gate that says no.

    Args:
        env: a :class:`LiveEnv` or a mapping with the same keys.
        environ: where ``AUTOHEAL_RUNTIME_DIR`` / ``AUTOHEAL_STOP_FILE`` are looked up
            when ``env`` names no paths; default ``os.environ``.

    Returns:
        ``(True, "ok")`` or ``(False, reason)``, e.g. ``(False, "enable_live_trading=False")``.
    """
    if not isinstance(env, LiveEnv):
        env = LiveEnv.from_mapping(env)
    mode = str(env.mode).lower()
    if mode != "live":
        return False, f"mode={mode if mode in MODES else 'unknown'}"
    if env.enable_live_trading is not True:
        return False, "enable_live_trading=False"
    if env.live_mode_armed is not True:
        return False, "live_mode_armed=False"
    if env.live_dry_run_mode is not False:
        return False, "live_dry_run_mode=True"
    if not env.confirm_token or not env.confirm_token_sha256:
        return False, "confirm_token=missing"
    given = hash_confirm_token(env.confirm_token)
    if not hmac.compare_digest(given, env.confirm_token_sha256.strip().lower()):
        return False, "confirm_token=invalid"
    reason = _kill_switch_reason(env, environ)
    if reason is not None:
        return False, reason
    return True, "ok"
