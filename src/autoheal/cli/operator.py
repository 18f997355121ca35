"""``autoheal restart|stop|start NAME``, ``autoheal failsafe enter|clear|reduce-only``,
``autoheal chaos FAULT [TARGET]``: an operator's durable commands to the daemon.

Each is parsed into a :class:`~autoheal.cli.submit.Request` (:func:`request_from`,
pure), checked against the config (:func:`problem_with`: a known service; no chaos
against a ``live`` runtime, exit 3; a chaos fault names its target), then submitted
and waited for on the durable commands' one path (:mod:`autoheal.cli.submit`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from autoheal.cli.common import EXIT_USAGE, Problem, fail, load_config, os_user
from autoheal.cli.parser import SERVICE_VERBS
from autoheal.cli.submit import Request, report, submit_and_wait

if TYPE_CHECKING:
    from autoheal.config import Config

__all__ = ["handle", "problem_with", "request_from"]


def request_from(args: argparse.Namespace) -> Request:
    """The durable command that ``args`` (a restart/stop/start, failsafe or chaos) asks for."""
    wait = not args.no_wait
    if args.command == "failsafe" and getattr(args, "scope", None) not in (None, "all"):
        scope = _canonical_scope(args.scope)
        ctype = "failsafe_" + args.action.replace("-", "_") + "_scope"
        payload = {"reason": args.reason}
        return Request(ctype, scope, payload, args.idempotency_key, args.timeout, wait)
    if args.command == "failsafe":
        ctype = "failsafe_" + args.action.replace("-", "_")
        payload = {"reason": args.reason}
        return Request(ctype, "", payload, args.idempotency_key, args.timeout, wait)
    if args.command == "chaos":
        payload = {"duration": args.duration, "ms": args.ms, "mode": args.mode, "reason": "chaos"}
        return Request(f"chaos_{args.fault}", args.target, payload, None, args.timeout, wait)
    payload = {"reason": args.reason or "manual"}
    return Request(args.command, args.name, payload, args.idempotency_key, args.timeout, wait)


def _canonical_scope(text: str) -> str:
    """The scope in its fixed form; as given when it does not parse (:func:`problem_with`)."""
    from autoheal.guard.scopes import ScopeError, parse_scope

    try:
        return str(parse_scope(text))
    except ScopeError:
        return text


def problem_with(request: Request, cfg: Config) -> Problem | None:
    """Why ``request`` cannot go to this runtime, or None: checked before anything is queued."""
    if request.type.endswith("_scope") and request.type.startswith("failsafe_"):
        from autoheal.core.commands import SCOPED_COMMANDS
        from autoheal.guard.scopes import ScopeError, parse_scope

        if request.type not in SCOPED_COMMANDS:
            return Problem("usage", "--scope goes with failsafe enter or clear")
        try:
            parse_scope(request.target)
        except ScopeError as exc:
            return Problem("usage", f"--scope: {exc}")
        return None
    if request.type.startswith("chaos_"):
        if cfg.environment == "live":
            return Problem("refused", f'chaos against environment = "live" ({cfg.path})')
        fault = request.type.removeprefix("chaos_")
        if fault != "heal" and not request.target:
            return Problem("usage", f"chaos {fault} needs a target")
        return None
    if request.type in SERVICE_VERBS and request.target and request.target not in cfg.services:
        known = ", ".join(cfg.services)
        return Problem("usage", f"unknown service {request.target!r} (known: {known})")
    return None


def handle(args: argparse.Namespace) -> int:
    """Run one operator command; the exit code is :func:`~autoheal.cli.submit.report`'s."""
    request = request_from(args)
    cfg = load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    problem = problem_with(request, cfg)
    if problem is not None:
        return fail(problem)
    return report(submit_and_wait(cfg, request, user=os_user()))
