"""``[fleet]``: one Redis for a fleet's switch and host summaries (docs/fleet.md).

The URL is checked without ever being echoed: it may hold credentials. A password
belongs in an environment variable (``secret_env``), written ``{secret}`` in the URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from autoheal.config._model import FleetConfig
from autoheal.config._schema import RawFleet, fail
from autoheal.config._values import ENV_NAME, NAME, as_duration, expand, is_loopback_host
from autoheal.core.fleet import HOST_NAME

SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel")
ON_LOST = ("degrade", "halt")
_TLS = ("rediss", "rediss+sentinel", "unix")


def resolve_fleet(raw: RawFleet, placeholders: dict[str, str]) -> FleetConfig:
    """Check ``[fleet]``.

    Raises:
        Invalid: the first problem, at its dotted key.
    """
    if not NAME.fullmatch(raw.name):
        fail("fleet.name", "names may hold only letters, digits, '_' and '-'")
    if raw.host:
        host = raw.host
    else:
        import socket  # only here: a config without [fleet] need not load it

        host = socket.gethostname()
    if not HOST_NAME.fullmatch(host):
        fail("fleet.host", "may hold only letters, digits, '.', '_' and '-'")
    if raw.secret_env is not None and not ENV_NAME.fullmatch(raw.secret_env):
        fail("fleet.secret_env", "must be the name of an environment variable, not the secret")
    # {secret} stays for connect time; the other placeholders expand now.
    url = expand(raw.redis_url.replace("{secret}", "{{secret}}"), "fleet.redis_url", placeholders)
    try:
        parts = urlsplit(url)
    except ValueError:
        fail("fleet.redis_url", "not a valid URL")
    _check_ports(parts.scheme, parts.netloc.rpartition("@")[2])
    if parts.scheme not in SCHEMES:
        fail("fleet.redis_url", f"must start with one of {', '.join(s + '://' for s in SCHEMES)}")
    if parts.scheme != "unix" and not parts.netloc.rpartition("@")[2]:
        fail("fleet.redis_url", "needs a host")
    password = parts.password or ""
    if password and password != "{secret}":  # noqa: S105 - the placeholder, not a secret
        fail(
            "fleet.redis_url",
            "holds a password: put it in an environment variable, name it in "
            "fleet.secret_env and write {secret} in its place",
        )
    if "{secret}" in url and raw.secret_env is None:
        fail("fleet.secret_env", "required: fleet.redis_url uses {secret}")
    hosts = [h.rpartition(":")[0] or h for h in parts.netloc.rpartition("@")[2].split(",")]
    remote = [h for h in hosts if not is_loopback_host(h.strip("[]"))]
    if raw.secret_env is not None and parts.scheme not in _TLS and remote:
        fail(
            "fleet.redis_url",
            "a password travels only over TLS (rediss://) unless Redis is on a loopback address",
        )
    if raw.on_lost not in ON_LOST:
        fail("fleet.on_lost", f"expected 'degrade' or 'halt', got {raw.on_lost[:20]!r}")
    stale_after = as_duration(raw.stale_after, "fleet.stale_after")
    poll = as_duration(raw.poll_interval, "fleet.poll_interval")
    if poll >= stale_after:
        fail(
            "fleet.poll_interval",
            f"must be shorter than fleet.stale_after ({stale_after:g}s): "
            "one slow poll would count as a lost fleet",
        )
    return FleetConfig(
        redis_url=url,
        name=raw.name,
        host=host,
        secret_env=raw.secret_env,
        stale_after=stale_after,
        on_lost=raw.on_lost,
        poll_interval=poll,
    )


def _check_ports(scheme: str, hosts: str) -> None:
    """Each address's port is a number in range: one for Redis, one per Sentinel.

    A Sentinel deployment names three or more (``redis+sentinel://h1:26379,h2:26379,
    h3:26379/mymaster``); ``urlsplit`` sees their list as one host with no valid port.
    """
    items = hosts.split(",") if "+sentinel" in scheme else [hosts]
    for item in items:
        try:
            port = urlsplit("//" + item).port
        except ValueError:
            port = -1
        if port == -1 or ("+sentinel" in scheme and not item.rpartition(":")[0].strip("[]")):
            where = f" (sentinel {item!r})" if "+sentinel" in scheme else ""
            fail("fleet.redis_url", f"not a valid URL: a port must be a number up to 65535{where}")
