"""Fault injection: the daemon's chaos handler (``autoheal run --chaos``), the loopback
fault proxy and the blast-radius guard. The drills that use them are :mod:`autoheal.drills`."""
