"""Deterministic simulation of the whole daemon (issue 20, first slice).

The real daemon (:class:`autoheal.daemon.loop.Daemon`: the real core and the real
shell) runs in one thread, on trio with ``MockClock(autojump_threshold=0)``, against
the verified fake process control, the simulated disk (:mod:`autoheal.sim.disk`:
real files on tmpfs behind a ledger of what is durable, power loss, disk faults;
:mod:`autoheal.sim.events`: change events dropped, held or late), and a simulated
operator; one ``random.Random(seed)`` draws every fault and act. See
``docs/simulation.md``.

Why this is deterministic on Python 3.11:

* one thread: nothing in the daemon's path runs in a worker thread here (the webhook
  sender, the only user of ``anyio.to_thread``, is not configured), so no OS
  scheduling decides an order;
* virtual time: every sleep and deadline of the daemon is on the loop's clock
  (:mod:`autoheal.daemon.clock`), which is trio's ``MockClock``; it jumps to the next
  deadline only when every task is blocked, so time is a function of what ran;
* trio's scheduling, once made a function of the seed: trio runs each batch of ready
  tasks in an order it randomises from the OS (reversed or not, by a module-level
  ``random.Random``). :func:`autoheal.sim.run.run_seed` seeds that generator and turns
  on trio's own deterministic mode (sort each batch by task creation order, then
  shuffle with the seeded generator: what trio does under Hypothesis). Left alone,
  trio is *not* deterministic from run to run;
* the files' events are synchronous: a write by the simulator or the daemon queues
  its inotify event before the write returns, and trio polls for I/O on every pass;
* ``PYTHONHASHSEED``: ``python -m autoheal.sim`` pins it (re-executing itself once),
  so no set of strings iterates in a per-process order.

The claim is checked, not assumed: ``tests/sim/test_determinism.py`` runs seeds in
fresh interpreters and compares the traces' sha256, and every run listens for the
wall clock, randomness, threads and sockets reached from the daemon's code
(:mod:`autoheal.sim.escapes`). A run is also a script of acts that replays without
the seed's generator (:mod:`autoheal.sim.script`), which a failing seed's shrink cuts
down to a regression test (:mod:`autoheal.sim.shrink`).
"""
