"""sd_notify without libsystemd: tell systemd we are ready, alive, busy or stopping.

The protocol (``man sd_notify``) is one ``AF_UNIX`` datagram of newline-separated
``KEY=VALUE`` lines sent to the socket named by ``$NOTIFY_SOCKET``: a filesystem path,
or ``@name`` for a Linux abstract socket. systemd checks the sender's PID from the
socket credentials, so with ``NotifyAccess=main`` only the daemon itself is heard.

What the daemon sends (DESIGN.md §5): ``READY=1`` after its first full probe round,
``WATCHDOG=1`` from :func:`watchdog_loop` only while its main loop is healthy,
``STATUS=`` with a one-line summary, and ``STOPPING=1`` on shutdown.

Rules of this module:

* Without ``$NOTIFY_SOCKET`` every method is a no-op, so the daemon never has to ask
  whether it runs under systemd.
* Nothing here raises into the daemon. A failed send returns ``False`` and is logged
  once per streak of failures (a dead socket must not flood the journal every ping).
* Sends never block the event loop: the socket is non-blocking, so a full receive
  queue is a failed send, not a stall. A fresh socket per message, as libsystemd does,
  keeps no descriptor alive across ``fork`` and nothing to close.
* ``STATUS`` text is one line: a newline in it would start a new ``KEY=`` field.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping

import anyio

__all__ = [
    "SYSTEMD_ENV_VARS",
    "LoopLiveness",
    "SystemdNotifier",
    "watchdog_loop",
]

log = logging.getLogger(__name__)

#: The variables systemd hands to the main process. Supervised children must not
#: inherit them (a child that speaks sd_notify would talk for the daemon).
SYSTEMD_ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _socket_address(raw: str | None) -> str | None:
    """Map ``$NOTIFY_SOCKET`` to a ``sendto`` address, or ``None`` when unusable."""
    if not raw:
        return None
    if raw.startswith("@"):
        # Linux abstract namespace: a leading NUL instead of the '@'.
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    # systemd ≥ 253 also knows "vsock:CID:PORT"; a relative path is never valid.
    log.warning("sd_notify disabled: unsupported NOTIFY_SOCKET address %r", raw)
    return None


def _one_line(value: object) -> str:
    return " ".join(str(value).splitlines())


class SystemdNotifier:
    """A tiny sd_notify client; a no-op when not started by systemd.

    Args:
        notify_socket: the raw ``$NOTIFY_SOCKET`` value (``/path`` or ``@abstract``);
            ``None`` or empty disables the notifier.
        watchdog_usec: the raw ``$WATCHDOG_USEC`` value, if any.
        watchdog_pid: the raw ``$WATCHDOG_PID`` value, if any: the watchdog is ours
            only when it names this process.
    """

    def __init__(
        self,
        notify_socket: str | None = None,
        *,
        watchdog_usec: str | None = None,
        watchdog_pid: str | None = None,
    ) -> None:
        self._address = _socket_address(notify_socket)
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid
        self._failing = False

    @classmethod
    def from_env(
        cls,
        environ: MutableMapping[str, str] | None = None,
        *,
        unset_environment: bool = False,
    ) -> SystemdNotifier:
        """Build a notifier from the environment systemd gave us.

        Args:
            environ: the environment to read (default ``os.environ``).
            unset_environment: remove :data:`SYSTEMD_ENV_VARS` from ``environ``
                afterwards (as ``sd_notify(unset_environment=1)`` does), so that
                supervised children, which inherit the daemon's environment, do not
                receive the daemon's notify socket and watchdog.

        Returns:
            The notifier; disabled when ``NOTIFY_SOCKET`` is unset.
        """
        env = os.environ if environ is None else environ
        notifier = cls(
            env.get("NOTIFY_SOCKET"),
            watchdog_usec=env.get("WATCHDOG_USEC"),
            watchdog_pid=env.get("WATCHDOG_PID"),
        )
        if unset_environment:
            for var in SYSTEMD_ENV_VARS:
                env.pop(var, None)
        return notifier

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere (``NOTIFY_SOCKET`` was set and usable)."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout systemd enforces (``WatchdogSec=``), in seconds.

        Ping at half this interval, as ``man sd_watchdog_enabled`` recommends.

        Returns:
            Seconds, or ``None`` when no watchdog is configured for this process
            (unset or invalid ``WATCHDOG_USEC``, or ``WATCHDOG_PID`` names another).
        """
        if not self.enabled or not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 1_000_000 if usec > 0 else None

    def notify(self, **fields: object) -> bool:
        """Send ``fields`` as one datagram, e.g. ``notify(READY=1, STATUS="ok")``.

        Args:
            **fields: ``KEY=value`` pairs, sent in the given order; values are made
                one line.

        Returns:
            ``True`` if the datagram was sent, ``False`` if disabled or it failed.
        """
        if self._address is None or not fields:
            return False
        payload = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(payload.encode(), self._address)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                log.warning("sd_notify_failed fields=%s error=%s", ",".join(fields), exc)
            return False
        if self._failing:
            self._failing = False
            log.info("sd_notify_recovered")
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd that start-up finished (``Type=notify`` leaves "activating")."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def watchdog(self) -> bool:
        """Reset systemd's watchdog timer (``WATCHDOG=1``)."""
        return self.notify(WATCHDOG=1)

    def status(self, text: str) -> bool:
        """Set the one-line status shown by ``systemctl status``."""
        return self.notify(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd that shutdown has begun (``STOPPING=1``)."""
        if status is None:
            return self.notify(STOPPING=1)
        return self.notify(STOPPING=1, STATUS=status)


class LoopLiveness:
    """Has the main loop iterated recently? The health check behind the watchdog.

    The loop calls :meth:`mark` once per iteration; :func:`watchdog_loop` calls the
    object. A loop stuck in a blocking call or a busy cycle stops marking, the pings
    stop, and systemd restarts the daemon after ``WatchdogSec``.

    Args:
        max_silence: how long without a :meth:`mark` still counts as healthy, in
            seconds. Make it longer than the loop's longest regular sleep.
        time_fn: a monotonic clock.
    """

    def __init__(self, max_silence: float, *, time_fn: Callable[[], float] = time.monotonic):
        if not max_silence > 0:
            raise ValueError(f"max_silence must be > 0, got {max_silence!r}")
        self._max_silence = max_silence
        self._time_fn = time_fn
        self._last = time_fn()

    def mark(self) -> None:
        """Record one iteration of the main loop."""
        self._last = self._time_fn()

    def __call__(self) -> bool:
        """Whether the last :meth:`mark` is at most ``max_silence`` old."""
        return self._time_fn() - self._last <= self._max_silence


async def watchdog_loop(
    notifier: SystemdNotifier,
    is_healthy: Callable[[], bool],
    *,
    interval: float,
    sleep_fn: Callable[[float], Awaitable[object]] = anyio.sleep,
) -> None:
    """Send ``WATCHDOG=1`` every ``interval`` seconds while ``is_healthy()`` is true.

    Pings are withheld while unhealthy and resume if health returns before systemd
    gives up. Runs until cancelled; returns at once when the notifier is disabled.

    Args:
        notifier: where the pings go.
        is_healthy: cheap, non-blocking check, e.g. a :class:`LoopLiveness`.
        interval: seconds between checks, normally ``watchdog_interval() / 2``.
        sleep_fn: the sleep to use (injected by tests).

    Raises:
        ValueError: ``interval`` is not positive.
    """
    if not interval > 0:
        raise ValueError(f"interval must be > 0, got {interval!r}")
    if not notifier.enabled:
        return
    withheld = False
    while True:
        if is_healthy():
            if withheld:
                withheld = False
                log.info("watchdog_resumed")
            notifier.watchdog()
        elif not withheld:
            withheld = True
            log.warning("watchdog_withheld reason=main_loop_stalled")
        await sleep_fn(interval)
