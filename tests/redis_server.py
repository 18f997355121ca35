"""The tests' name for :mod:`autoheal.drills.stacks.redis`: a real ``redis-server``.

It lives in the package since issue 19, on the drills' one subprocess harness, so that
the fleet benchmark shares it without importing ``tests``. The tests keep importing it
from here; new code imports it from the package.
"""

from autoheal.drills.stacks.redis import RedisServer, SentinelServer, free_port, ping

__all__ = ["RedisServer", "SentinelServer", "free_port", "ping"]
