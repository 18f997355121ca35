"""What a drill runs on, and what the end-to-end tests and benchmarks start the same way.

* :mod:`.harness`: the one subprocess harness (start, stop, own by identity, reap, wait);
* :mod:`.exchange`: the fake exchange; :mod:`.demo`: the demo stack under a real
  ``autoheal run --chaos``; :mod:`.target`: a running target; :mod:`.commands`: the
  durable commands a drill sends a daemon;
* :mod:`.simple`: a daemon over simple heartbeat services; :mod:`.redis`: a real
  ``redis-server`` (the tests' and benchmarks' fixtures).

Nothing below :mod:`autoheal.drills` imports these (DESIGN.md §1).
"""
