"""How failures are judged, per probe and per service: K of N, exit-code rules, debug on retry.

* ``failures`` / ``within`` on a probe: a soft failure is ``failures`` failed checks
  within the probe's last ``within`` counted checks (``within`` defaults to
  ``failures``: that many in a row). Absent: the consecutive rule of
  ``policy.failures_before_restart`` (a service's probe) or of the dependency rule.
* ``failsafe_exit_codes`` / ``restart_exit_codes`` on a service: codes 0..255, none
  in both (``autoheal.core.exit_rules`` has their meaning).
* ``debug_environment`` on a service: variables added to a restart after a failure (with
  ``AUTOHEAL_DEBUG_INVOCATION=1``) until the service is verified again; its values
  are the operator's own and are never logged.
"""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from autoheal.config._model import ProbeConfig, ServiceConfig
from autoheal.config._schema import RawProbe, RawService, fail, type_words
from autoheal.config._values import ENV_NAME, Context, expand
from autoheal.core.judgement import MAX_WITHIN

__all__ = ["DEBUG_INVOCATION", "with_exit_rules", "with_window"]

#: Set to ``1`` in a debug restart's environment (systemd's ``$DEBUG_INVOCATION``).
DEBUG_INVOCATION = "AUTOHEAL_DEBUG_INVOCATION"


def with_window(probe: ProbeConfig, raw: RawProbe, key: str) -> ProbeConfig:
    """``probe`` with its K-of-N window (``failures``, ``within``), checked."""
    if raw.failures is None and raw.within is None:
        return probe
    if probe.kind == "process":
        field = "failures" if raw.failures is not None else "within"
        fail(f"{key}.{field}", "not used by a 'process' probe: an exit restarts at once")
    if raw.failures is None:
        fail(f"{key}.failures", "required with within: how many failed checks within it")
    if raw.failures < 1:
        fail(f"{key}.failures", "must be at least 1")
    within = raw.within if raw.within is not None else raw.failures
    if within < raw.failures:
        fail(f"{key}.within", f"must be at least failures ({raw.failures})")
    if within > MAX_WITHIN:
        fail(f"{key}.within", f"must be at most {MAX_WITHIN}")
    return replace(probe, failures=raw.failures, within=within)


def _codes(codes: list[int], key: str) -> tuple[int, ...]:
    seen: list[int] = []
    for i, code in enumerate(codes):
        if not 0 <= code <= 255:
            fail(f"{key}[{i}]", f"must be an exit code between 0 and 255, got {code}")
        if code in seen:
            fail(f"{key}[{i}]", f"lists {code} twice")
        seen.append(code)
    return tuple(seen)


def _debug_env(raw: dict[str, Any] | None, key: str, ctx: Context) -> dict[str, str] | None:
    if raw is None:
        return None
    env: dict[str, str] = {}
    for var, value in raw.items():
        if not ENV_NAME.fullmatch(var):
            fail(key, f"{var!r} is not a valid environment variable name")
        if var.startswith("AUTOHEAL_"):
            # AUTOHEAL_DEBUG_INVOCATION is ours; so are the guard's paths (the kill switch).
            fail(f"{key}.{var}", "names starting with AUTOHEAL_ are set by autoheal itself")
        if not isinstance(value, str):
            fail(f"{key}.{var}", f"expected string, got {type_words(type(value).__name__)}")
        env[var] = expand(value, f"{key}.{var}", ctx.placeholders)
    return env


def with_exit_rules(svc: ServiceConfig, raw: RawService, key: str, ctx: Context) -> ServiceConfig:
    """``svc`` with its exit-code rules and debug environment, checked."""
    failsafe = _codes(raw.failsafe_exit_codes, f"{key}.failsafe_exit_codes")
    restart = _codes(raw.restart_exit_codes, f"{key}.restart_exit_codes")
    for i, code in enumerate(restart):
        if code in failsafe:
            fail(
                f"{key}.restart_exit_codes[{i}]",
                f"{code} is also in failsafe_exit_codes: an exit cannot both halt and restart",
            )
    return replace(
        svc,
        failsafe_exit_codes=failsafe,
        restart_exit_codes=restart,
        debug_environment=_debug_env(raw.debug_environment, f"{key}.debug_environment", ctx),
    )
