"""When a daemon's proof of life is too old: the one staleness rule.

The daemon beats every ``heartbeat_interval`` (``auto_heal.heartbeat.json``). Every
reader judges that beat by the same limit, so that they agree on when the daemon is
gone:

* ``autoheal status``: a heartbeat (and with it the health document) older than the
  limit is stale, and the exit code is 1;
* the status page: no update for that long and it says STALE;
* the daemon itself: a main loop that has not turned for that long stops sending
  ``WATCHDOG=1``, so systemd restarts it about when the readers call it stale;
* a drill against a running daemon: older health is not a precondition met.

The limit is five beats, and never under 5 s: one late beat on a busy host is not a
dead daemon, and a very short interval must not turn scheduling jitter into an alarm.
Pure (numbers in, a number out), like the rest of :mod:`autoheal.core`.
"""

from __future__ import annotations

__all__ = ["BEATS", "MIN_STALE_AFTER_S", "stale_after_s"]

#: Beats a reader waits for before the daemon counts as stale.
BEATS = 5
#: The limit's floor, in seconds, whatever the interval.
MIN_STALE_AFTER_S = 5.0


def stale_after_s(heartbeat_interval_s: float) -> float:
    """The age past which the daemon's heartbeat (and its health document) is stale.

    Args:
        heartbeat_interval_s: the daemon's ``[daemon] heartbeat_interval``, in seconds.

    Returns:
        ``max(5 s, 5 x heartbeat_interval_s)``.
    """
    return max(MIN_STALE_AFTER_S, BEATS * heartbeat_interval_s)
