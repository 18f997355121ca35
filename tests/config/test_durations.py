"""Every duration of the config has sane bounds, in one table (issue 18 A9).

``daemon.heartbeat_interval = 1e308`` passed ``check-config``: the daemon then beat
never again and ``autoheal status`` could never call it stale, and a fleet host's
summary TTL (``ceil(1000 * 3 * beat)``) overflowed. Now each duration has a lower
bound (above zero where zero means nothing) and an upper one, enforced by
``autoheal.config._values.DURATION_BOUNDS`` with a precise error naming the key; a
Hypothesis test throws any number at every duration key.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoheal.config import Config, ConfigError, _schema, load_config
from autoheal.config._values import DURATION_BOUNDS

BASE = """environment = "paper"
[paths]
runtime_dir = "rt"
[policy]
{policy}
[daemon]
{daemon}
[services.s]
argv = ["x"]
{service}
[[services.s.probes]]
kind = "heartbeat"
{probe}
[[services.s.probes]]
kind = "http"
name = "web"
url = "http://127.0.0.1:1/"
{http}
[[webhooks]]
name = "ops"
url = "https://hooks.example.com/x"
{webhook}
[fleet]
redis_url = "redis://127.0.0.1:6379/0"
name = "desk"
host = "h"
{fleet}
[bot_api]
url = "http://127.0.0.1:8080/api/v1"
modes = {{ FAILSAFE = ["stop"] }}
{bot_api}
[bot_api.calls.stop]
post = "/stop"
[compliance]
{compliance}
"""

#: Every duration key: (the table it is in, its field, the key an error names).
KEYS = {
    "policy.restart_backoff[0]": ("policy", "restart_backoff = [{v}]"),
    "policy.verify_window": ("policy", "verify_window = {v}"),
    "policy.verify_min_uptime": ("policy", "verify_min_uptime = {v}"),
    "policy.stable_reset": ("policy", "stable_reset = {v}"),
    "daemon.heartbeat_interval": ("daemon", "heartbeat_interval = {v}"),
    "services.s.stop_timeout": ("service", "stop_timeout = {v}"),
    "services.s.probes[0].interval": ("probe", "interval = {v}"),
    "services.s.probes[0].timeout": ("probe", "timeout = {v}"),
    "services.s.probes[0].max_age": ("probe", "max_age = {v}"),
    "services.s.probes[1].latency_p95": ("http", "latency_p95 = {v}"),
    "webhooks[0].timeout": ("webhook", "timeout = {v}"),
    "fleet.stale_after": ("fleet", "stale_after = {v}"),
    "fleet.poll_interval": ("fleet", "poll_interval = {v}"),
    "bot_api.timeout": ("bot_api", "timeout = {v}"),
    "bot_api.retry_max": ("bot_api", "retry_max = {v}"),
    "compliance.window": ("compliance", "window = {v}"),
}


def config_text(key: str, value: str) -> str:
    table, line = KEYS[key]
    tables = ("policy", "daemon", "service", "probe", "http", "webhook", "fleet", "bot_api",
              "compliance")
    parts = dict.fromkeys(tables, "")
    parts["probe"] = 'max_age = "5s"'  # required by a heartbeat probe
    if key == "services.s.probes[0].max_age":
        parts["probe"] = ""
    parts[table] = "\n".join(filter(None, [parts[table], line.format(v=value)]))
    return BASE.format(**parts)


def toml_value(value: float | int | str) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return str(value)


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "autoheal.toml"
    path.write_text(text)
    return load_config(path)


def durations(cfg: Config) -> list[float]:
    """Every duration of a resolved config, in seconds."""
    p, found = cfg.policy, []
    found += [*p.restart_backoff, p.verify_window, p.verify_min_uptime, p.stable_reset]
    found.append(cfg.daemon.heartbeat_interval)
    for svc in cfg.services.values():
        found.append(svc.stop_timeout)
        for probe in svc.probes:
            found += [probe.interval, probe.timeout]
            found += [d for d in (probe.max_age, probe.latency_p95) if d is not None]
    found += [w.timeout for w in cfg.webhooks]
    if cfg.fleet is not None:
        found += [cfg.fleet.stale_after, cfg.fleet.poll_interval]
    found.append(cfg.compliance_window)
    return found


def test_the_base_config_loads_with_every_duration(tmp_path: Path) -> None:
    assert len(durations(load(tmp_path, config_text("fleet.stale_after", '"5s"')))) == 19


@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize("value", ["1e308", "1e20", '"1000000h"', "8640000"])
def test_a_duration_past_its_upper_bound_names_the_key(
    tmp_path: Path, key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, config_text(key, value))
    assert (info.value.key, info.value.problem[:12]) == (key, "must be at m")


@pytest.mark.parametrize(
    "key",
    [k for k in KEYS if k.rpartition(".")[2].partition("[")[0] not in ("restart_backoff",
     "verify_min_uptime", "stop_timeout")],
)  # fmt: skip
@pytest.mark.parametrize("value", ["0", '"0ms"', "1e-300", '"0.0001s"'])
def test_a_duration_that_cannot_be_zero_must_be_at_least_a_millisecond(
    tmp_path: Path, key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, config_text(key, value))
    assert info.value.key == key
    assert info.value.problem in ("must be greater than zero",) or "at least 1ms" in (
        info.value.problem
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("policy.restart_backoff[0]", "0"), ("services.s.stop_timeout", '"0s"'),
     ("policy.verify_min_uptime", "0"), ("daemon.heartbeat_interval", '"1h"'),
     ("policy.stable_reset", '"168h"'), ("fleet.poll_interval", '"1ms"')],
)  # fmt: skip
def test_the_bounds_themselves_are_allowed(tmp_path: Path, key: str, value: str) -> None:
    load(tmp_path, config_text(key, value))


def test_every_duration_field_of_the_schema_has_bounds() -> None:
    fields = {
        field
        for cls in vars(_schema).values()
        if isinstance(cls, type) and cls.__name__.startswith("Raw")
        for field, annotation in getattr(cls, "__annotations__", {}).items()
        if "Duration" in str(annotation)
    }
    assert fields == set(DURATION_BOUNDS)
    assert {k.rpartition(".")[2].partition("[")[0] for k in KEYS} == set(DURATION_BOUNDS)


NUMBERS = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -1e308, 5e-324, -0.0, 0.0, 1e-300, 1e15, 3600.0, 3600.0001])
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(alphabet="0123456789.smh-e+inf ", max_size=12)
)


@pytest.mark.slow
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(key=st.sampled_from(list(KEYS)), value=NUMBERS)
def test_any_number_at_any_duration_key_loads_within_bounds_or_is_one_error(
    tmp_path: Path, key: str, value: float | int | str
) -> None:
    try:
        cfg = load(tmp_path, config_text(key, toml_value(value)))
    except ConfigError as err:
        assert err.key  # precise: a key, never a crash
        return
    for seconds in durations(cfg):
        assert math.isfinite(seconds) and 0 <= seconds <= 7 * 86400
        # What the shell computes from them: deadlines, a TTL in milliseconds.
        assert math.isfinite(1e9 + 3 * seconds)
        assert math.ceil(1000 * 3 * seconds) < 2**63
