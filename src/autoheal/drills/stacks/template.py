"""A small stack for a ``daemon_template`` drill: ``autoheal run --chaos`` on the
scenario's own config template, its own services, no exchange and no proxy.

The template (``params.config``, beside the scenario or shipped) is plain TOML with
``{name}`` markers replaced as text before the config is written: ``{port}``, a free
loopback port the OS picked (bound to port 0, then released) for a service that
listens on it, each entry of ``params.vars``, and the line ``# {scaled_policy}``, as
in the demo stack's templates (the runbook policy scaled by the scenario's
``time_scale``, then ``params.policy_overrides``; a template with its own ``[policy]``
keys leaves the line out). The daemon's own
placeholders (``{python}``, ``{runtime_dir}``) are left for the config loader. The
paths are the demo stack's (``shared_data/`` and ``STOP.TXT`` in the drill's
directory), so the ``daemon`` kind's observations read the same files.
"""

from __future__ import annotations

import socket

from autoheal.drills.errors import DrillUnavailableError
from autoheal.drills.plan import scaled_policy
from autoheal.drills.stacks.demo import DemoStack, policy_toml
from autoheal.store.atomic import write_bytes_atomic

__all__ = ["TemplateStack", "free_port"]


def free_port() -> int:
    """A loopback port the OS picks (bound to port 0, then released for the service)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TemplateStack(DemoStack):
    """The daemon and the services its template names; nothing else."""

    has_exchange = False

    def render(self, extra: object = None) -> None:
        text = self.template.read_text(encoding="utf-8")
        policy = scaled_policy(self.ctx.scenario.time_scale,
                               self.ctx.params.get("policy_overrides", {}))
        text = text.replace("# {scaled_policy}", policy_toml(policy))
        markers = {"port": str(self.port), **{k: str(v) for k, v in self.variables.items()}}
        for name, value in markers.items():
            text = text.replace("{" + name + "}", value)
        write_bytes_atomic(self.config, text.encode())

    async def start(self) -> None:
        ctx = self.ctx
        if not self.template.exists():
            raise DrillUnavailableError(f"no config template {self.template}")
        self.port = free_port()
        self.variables = dict(ctx.params.get("vars", {}))
        self.shared.mkdir(parents=True, exist_ok=True)
        self.render()
        self.daemon.start()

        async def stop_daemon() -> None:
            ctx.details["daemon_exit"] = await self.daemon.stop()

        ctx.add_rollback("stop_daemon", stop_daemon)
        ctx.details["daemon_pid"] = self.daemon.pid
