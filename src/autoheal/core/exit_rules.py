"""What a service's exit code means: the rules ``failsafe_exit_codes`` and
``restart_exit_codes`` (systemd's ``RestartPreventExitStatus=`` and
``RestartForceExitStatus=``, supervisord's ``exitcodes``).

* An exit with a *failsafe* code (e.g. 78, ``EX_CONFIG``) is not restarted: the
  component enters FAILSAFE at once with reason ``exit_code_<code>``, spending no
  restart. Restarting cannot fix a configuration error; it only burns the budget and
  hides the cause. A failing dependency does not park it (it cannot explain the code);
  while a failsafe already holds, the exit is an ordinary one (parked). It applies in
  RESTART too: the new process may exit before its spawn is reported.
* An exit with a *restart* code is a planned one (a bot that exits to reload): when
  the process had been verified (OBSERVE, no grace period running), it restarts at
  once, without backoff and without spending an attempt of ``max_restarts``, with
  reason ``exit_code_<code>`` and no ``debug``. The same exit before the process was
  verified is an ordinary failure, so a service exiting with it in a tight loop still
  spends its budget and ends in FAILSAFE.
* Every other exit, and one whose code is unknown (an adopted process: only a parent
  learns the code), is the hard failure it always was.

Functions of the step's scratch (:class:`~autoheal.core.work.Work`); pure.
"""

from __future__ import annotations

from dataclasses import replace

from autoheal.core import checks, healing
from autoheal.core import reasons as R
from autoheal.core.stages import Stage
from autoheal.core.state import ProbeState
from autoheal.core.work import Work, with_probe

__all__ = ["process_exited"]


def process_exited(w: Work, name: str, reason: str, code: int | None) -> None:
    """The component's process exited with ``code`` (None: unknown)."""
    spec = w.policy.components[name]
    cs = w.components[name]
    ruled = (
        code is not None
        and not cs.held
        and cs.stage not in (Stage.FAILSAFE, Stage.NOTIFY)
        and w.failsafe is None
    )
    if ruled and code is not None and code in spec.failsafe_exit_codes:
        token = R.exit_code_reason(code)
        probes = with_probe(cs.probes, "process", ProbeState(False, R.PROCESS_EXITED, 0))
        cs = replace(cs, probes=probes, started_at=None)
        why = f"exited with code {code}, one of its failsafe_exit_codes: not restarted"
        healing.enter_failsafe(w, name, cs, token, token=token, why=why)
        return
    planned = (
        ruled
        and code is not None
        and code in spec.restart_exit_codes
        and cs.stage is Stage.OBSERVE
        and cs.verify_until is None
        and not w.dep_blocked(name)
    )
    if planned and code is not None:
        healing.restart_now(w, name, cs, R.exit_code_reason(code), spend=False)
        return
    checks.component_probe(w, name, "process", False, reason or R.PROCESS_EXITED)
