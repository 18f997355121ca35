"""What ``autoheal check`` shows of how failures are judged (issue 23): each probe's
K-of-N window, each service's exit-code rules and debug environment (names only:
the values are the operator's and may be sensitive)."""

from __future__ import annotations

from typing import Any

from autoheal.cli.common import clean
from autoheal.config import DEBUG_INVOCATION, Config, ProbeConfig

__all__ = ["judging_doc", "judging_lines"]


def _windows(probes: tuple[ProbeConfig, ...]) -> dict[str, dict[str, int]]:
    return {
        p.name: {"failures": p.failures, "within": p.within}
        for p in probes
        if p.failures is not None and p.within is not None
    }


def judging_doc(cfg: Config) -> dict[str, dict[str, Any]]:
    """By service or dependency, what is set (absent: today's rules)."""
    out: dict[str, dict[str, Any]] = {}
    for name, svc in cfg.services.items():
        one: dict[str, Any] = {}
        if windows := _windows(svc.probes):
            one["windows"] = windows
        if svc.failsafe_exit_codes:
            one["failsafe_exit_codes"] = list(svc.failsafe_exit_codes)
        if svc.restart_exit_codes:
            one["restart_exit_codes"] = list(svc.restart_exit_codes)
        if svc.debug_environment is not None:
            one["debug_environment"] = sorted([*svc.debug_environment, DEBUG_INVOCATION])
        if one:
            out[name] = one
    for name, dep in cfg.dependencies.items():
        if windows := _windows(dep.probes):
            out[name] = {"windows": windows}
    return out


def judging_lines(cfg: Config) -> list[str]:
    """One line per service or dependency with a rule; none when nothing is set."""
    lines = []
    for name, one in judging_doc(cfg).items():
        parts = [
            f"{clean(p)} {w['failures']} failures within {w['within']} checks"
            for p, w in one.get("windows", {}).items()
        ]
        for key in ("failsafe_exit_codes", "restart_exit_codes"):
            if key in one:
                parts.append(f"{key} {','.join(map(str, one[key]))}")
        if "debug_environment" in one:
            parts.append(
                f"debug_environment on retry {','.join(map(clean, one['debug_environment']))}"
            )
        lines.append(f"  {clean(name)}: {'; '.join(parts)}")
    return ["judging (any other probe: failures_before_restart in a row):", *lines] if lines else []
