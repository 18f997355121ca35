"""Restart delays: the first restart of an episode is immediate, then the sequence, capped."""

from __future__ import annotations

from autoheal.core.policy import HealPolicy


def delay_for(attempts_done: int, policy: HealPolicy) -> float:
    """Delay before the next restart, given how many restarts this episode already made.

    Args:
        attempts_done: restarts already made in this episode (0 = none yet).
        policy: supplies ``restart_backoff``; past its end the last value repeats (the cap).

    Returns:
        0.0 for the first restart; ``restart_backoff[attempts_done - 1]`` capped at the last entry.
    """
    if attempts_done <= 0:
        return 0.0
    seq = policy.restart_backoff
    return seq[min(attempts_done - 1, len(seq) - 1)]
