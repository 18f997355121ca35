"""Every ``autoheal`` command prints no control character it did not write (issue 18 A10).

The cases are enumerated from the real argparse parser: each subcommand, and each
choice of its ``action`` argument, must have a case here, or
:func:`test_every_command_has_a_hostile_case` fails -- a new command comes with its
case. Each case plants hostile text (``tests/terminal_text.py``) where that command
reads from outside -- a journal row, a reason, a breaker key, a component's error
text, a host name and a switch record in a real Redis, a drill title in TOML, a key
in the config -- runs the real command (``main([...])`` in this process, a real
``autoheal run`` for the daemon) and checks stdout and stderr: no character for the
terminal to obey, no forged line, the words still readable, and JSON still JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from autoheal.cli import build_parser, main
from autoheal.drills.stacks.redis import RedisServer
from autoheal.drills.stacks.simple import Runtime, write_config
from autoheal.store.journal import Journal
from tests.sysdeps import require_binary
from tests.terminal_text import HOSTILE, HOSTILE_ARG, VISIBLE, assert_clean

pytestmark = pytest.mark.timeout(120)


@dataclass
class Printed:
    """What one command run printed, and the hostile words it must still show."""

    code: int
    out: str
    err: str
    shows: tuple[str, ...] = ()

    def showing(self, *words: str) -> Printed:
        self.shows = words or VISIBLE
        return self


@dataclass
class Ctx:
    """One case's folder, config and ways to run the command."""

    tmp: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch
    _redis: list[RedisServer] = field(default_factory=list)

    @property
    def runtime_dir(self) -> Path:
        return self.tmp / "rt"

    def config(self, services: tuple[str, ...] = (), extra: str = "") -> str:
        path = write_config(self.tmp, services)
        if extra:
            path.write_text(path.read_text() + extra)
        self.runtime_dir.mkdir(exist_ok=True)
        return str(path)

    def main(self, *argv: str) -> Printed:
        self.capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        cap = self.capsys.readouterr()
        return Printed(code, cap.out, cap.err)

    def run(self, *argv: str) -> Printed:
        """``python -m autoheal ARGV`` as a real process: stderr as a terminal gets it,
        the log lines of whatever the command runs included."""
        done = subprocess.run(
            [sys.executable, "-m", "autoheal", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Printed(done.returncode, done.stdout, done.stderr)

    def redis(self) -> RedisServer:
        if not self._redis:
            server = RedisServer(require_binary("redis-server", "redis-server"), self.tmp / "redis")
            server.start()
            self._redis.append(server)
        return self._redis[0]

    def close(self) -> None:
        for server in self._redis:
            server.stop()


Case = Callable[[Ctx, tuple[str, ...]], list[Printed]]
CASES: dict[tuple[str, ...], Case] = {}
#: Cases that start real processes or wait on them (over ~0.25 s).
SLOW: set[tuple[str, ...]] = set()


def case(*keys: tuple[str, ...], slow: bool = False) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        for key in keys:
            CASES[key] = fn
            if slow:
                SLOW.add(key)
        return fn

    return register


def command_keys() -> list[tuple[str, ...]]:
    """Every subcommand of the real parser, split by its ``action`` choices if it has them."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    keys: list[tuple[str, ...]] = []
    for name, subparser in sub.choices.items():
        actions = [a for a in subparser._actions if a.dest in ("action", "fault") and a.choices]
        if actions:
            keys += [(name, str(choice)) for choice in actions[0].choices]
        else:
            keys.append((name,))
    return keys


def toml_str(value: str) -> str:
    """A TOML basic string holding ``value``, control characters and all (as escapes)."""
    body = "".join(
        ch if ch.isprintable() and ch not in '"\\' else f"\\u{ord(ch):04x}" for ch in value
    )
    return f'"{body}"'


def _journal(ctx: Ctx, *rows: dict[str, Any]) -> None:
    with Journal.open(ctx.runtime_dir) as journal:
        for row in rows:
            journal.record(**row)


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- the cases


@case(("events",))
def _events(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = ctx.config()
    data = {"from": HOSTILE, "to": HOSTILE, "attempt": HOSTILE, "max_attempts": 3,
            "pid": HOSTILE, "probe": HOSTILE, "message": HOSTILE}  # fmt: skip
    _journal(ctx, {"kind": HOSTILE, "component": HOSTILE, "reason": HOSTILE,
                   "actor": HOSTILE, "data": data})  # fmt: skip
    text = ctx.main("events", "--config", cfg).showing()
    as_json = ctx.main("events", "--json", "--config", cfg)
    assert _json_lines(as_json.out)[0]["reason"] == HOSTILE
    return [text, as_json]


@case(("status",))
def _status(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = ctx.config()
    rt, now = ctx.runtime_dir, time.time()
    component = {"stage": HOSTILE, "ok": False, "reason": HOSTILE, "pid": HOSTILE,
                 "restarts": HOSTILE, "probes": {"heartbeat": {"value": 1.0}}}  # fmt: skip
    dependency = {"ok": False, "reason": HOSTILE, "probes": {HOSTILE: {"value": 0.1}}}
    _write_json(rt / "health_v2.json", {
        "ts": now, "dor": False, "components": {HOSTILE: component},
        "dependencies": {HOSTILE: dependency},
        "kill_switch": {"write_failures": {"stop": {"message": HOSTILE, "attempts": HOSTILE}}},
    })  # fmt: skip
    _write_json(rt / "auto_heal.heartbeat.json", {"ts": now, "pid": HOSTILE})
    _write_json(rt / "global_flags.json", {"failsafe_active": True, "reason": HOSTILE,
                                          "set_by": HOSTILE})  # fmt: skip
    _write_json(rt / "alerts" / "evil.json", {"detail": HOSTILE})
    stop = ctx.tmp / "STOP.TXT"
    stop.write_text(HOSTILE + "\n")
    text = ctx.main("status", "--config", cfg).showing()
    as_json = ctx.main("status", "--json", "--config", cfg)
    assert json.loads(as_json.out)["flags"]["reason"] == HOSTILE
    bare = ctx.main("status", "--runtime-dir", str(rt), "--stop-file", str(stop)).showing()
    return [text, as_json, bare]


@case(("check",), slow=True)
def _check(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = ctx.config()
    flags = {"failsafe_active": True, "reason": HOSTILE, "set_by": HOSTILE}
    _write_json(ctx.runtime_dir / "global_flags.json", flags)
    text = ctx.main("check", "--config", cfg).showing()
    as_json = ctx.main("check", "--json", "--config", cfg)
    assert json.loads(as_json.out)["failsafe"] == HOSTILE
    return [text, as_json]


@case(("check-config",))
def _check_config(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    # A hostile table name and an unknown key are quoted back in the error message.
    broken = ctx.tmp / "broken.toml"
    broken.write_text(f'environment = "paper"\n[services.{toml_str(HOSTILE)}]\nargv = ["x"]\n')
    bad_name = ctx.main("check-config", "--config", str(broken)).showing()
    assert bad_name.code == 2
    unknown = ctx.tmp / "unknown.toml"
    unknown.write_text(f'environment = "paper"\n[policy]\n{toml_str(HOSTILE)} = 1\n')
    bad_key = ctx.main("check-config", "--config", str(unknown)).showing()
    assert bad_key.code == 2
    # A valid config whose runtime directory's name is hostile: the summary names it.
    odd = ctx.tmp / "odd.toml"
    runtime_dir = toml_str("rt-" + HOSTILE_ARG.replace("/", ""))
    odd.write_text(f'environment = "paper"\n[paths]\nruntime_dir = {runtime_dir}\n')
    ok = ctx.main("check-config", "--config", str(odd)).showing()
    assert ok.code == 0, ok
    return [bad_name, bad_key, ok]


@case(("run",), slow=True)
def _run(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    # The daemon logs an operator's reason (in the FAILSAFE notice) to its stderr.
    with Runtime(ctx.tmp, ()) as rt:
        rt.start_daemon()
        entered = rt.cli("failsafe", "enter", "--reason", HOSTILE_ARG)
        assert entered.returncode == 0, entered.stderr
        rt.stop_daemon()
        log = rt.log_text()
    daemon = Printed(0, "", log).showing()
    return [daemon, Printed(entered.returncode, entered.stdout, entered.stderr)]


def _broken_service(ctx: Ctx) -> str:
    """A service whose program does not exist, named with hostile text: its spawn error
    (the component's error text) quotes it."""
    extra = f"""
[services.svc]
argv = [{toml_str("/nonexistent/" + HOSTILE_ARG.replace("/", ""))}]
stop_timeout = "1s"
[[services.svc.probes]]
kind = "process"
"""
    return ctx.config(extra=extra)


@case(("restart",), ("start",), ("stop",), slow=True)
def _service(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = _broken_service(ctx)
    verb = key[0]
    acted = ctx.run(verb, "svc", "--reason", HOSTILE_ARG, "--config", cfg)
    if verb != "stop":  # the spawn error, or the notice of the refusal, quotes the text
        acted.showing()
    unknown = ctx.main(verb, HOSTILE_ARG, "--config", cfg).showing()
    assert unknown.code == 2
    return [acted, unknown]


@case(("failsafe", "enter"), ("failsafe", "clear"), ("failsafe", "reduce-only"), slow=True)
def _failsafe(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = ctx.config()
    out = []
    if key[1] == "clear":  # something to clear
        out.append(ctx.run("failsafe", "enter", "--reason", HOSTILE_ARG, "--config", cfg))
    out.append(ctx.run("failsafe", key[1], "--reason", HOSTILE_ARG, "--config", cfg))
    assert [p.code for p in out] == [0] * len(out), out
    out[-1].showing()  # the notice the command logs quotes the reason
    return out


@case(*[("chaos", fault) for fault in ("kill", "stall", "corrupt", "latency", "netcut", "heal")])
def _chaos(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = ctx.config()
    target = () if key[1] == "heal" else (HOSTILE_ARG,)
    no_daemon = ctx.main("chaos", key[1], *target, "--config", cfg)
    assert no_daemon.code == 1, no_daemon
    live = ctx.tmp / "live.toml"
    live.write_text(Path(cfg).read_text().replace('"paper"', '"live"'))
    refused = ctx.main("chaos", key[1], *target, "--config", str(live))
    assert refused.code == 3, refused
    return [no_daemon, refused]


def _hostile_scenarios(ctx: Ctx) -> Path:
    """The shipped live_gating_a drill with a hostile title and a hostile expectation."""
    from autoheal.drills.catalog import SCENARIO_DIR

    folder = ctx.tmp / "scenarios"
    folder.mkdir()
    text = (SCENARIO_DIR / "live_gating_a.toml").read_text()
    text = text.replace('title = "Drill A', f"title = {toml_str(HOSTILE)[:-1]} Drill A", 1)
    text = text.replace('expected = "enable_live_trading=False"', f"expected = {toml_str(HOSTILE)}")
    (folder / "live_gating_a.toml").write_text(text)
    return folder


@case(("drill", "list"))
def _drill_list(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    folder = _hostile_scenarios(ctx)
    listed = ctx.main("drill", "list", "--scenarios", str(folder)).showing()
    unknown = ctx.main("drill", "run", HOSTILE_ARG).showing()
    assert unknown.code == 2
    return [listed, unknown]


@case(("drill", "run"), slow=True)
def _drill_run(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    folder = _hostile_scenarios(ctx)
    ctx.monkeypatch.chdir(ctx.tmp)  # the report goes to ./shared_data/drills
    text = ctx.main("drill", "run", "live_gating_a", "--scenarios", str(folder)).showing()
    assert text.code == 1  # the hostile expectation does not hold: FAILED, with the report
    as_json = ctx.main("drill", "run", "live_gating_a", "--scenarios", str(folder),
                       "--format", "json")  # fmt: skip
    assert json.loads(as_json.out)["drills"][0]["title"].startswith(HOSTILE)
    return [text, as_json]


@case(("metrics",))
def _metrics(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = ctx.config(("feeder",))
    now = time.time()
    _journal(
        ctx,
        {"kind": "stage_transition", "component": "feeder", "reason": HOSTILE,
         "data": {"from": "OBSERVE", "to": HOSTILE}, "ts": now - 60},
        {"kind": "stage_transition", "component": "feeder", "reason": HOSTILE,
         "data": {"from": HOSTILE, "to": "OBSERVE"}, "ts": now - 50},
        {"kind": "failsafe_enter.started", "actor": HOSTILE, "ts": now - 40},
        {"kind": "notice", "component": HOSTILE, "reason": "operator", "actor": HOSTILE,
         "data": {"kind": "failsafe"}, "ts": now - 40},
        {"kind": "failsafe_clear.started", "actor": HOSTILE, "ts": now - 30},
        {"kind": "notice", "component": HOSTILE, "reason": "operator",
         "data": {"kind": "failsafe_cleared"}, "ts": now - 30},
    )  # fmt: skip
    report = {
        "started_at": HOSTILE,
        "passed": False,
        "drills": [{"name": HOSTILE, "status": HOSTILE, "time_to_detect_s": HOSTILE}],
    }
    _write_json(ctx.runtime_dir / "drills" / f"{HOSTILE_ARG.replace('/', '')}.json", report)
    text = ctx.main("metrics", "--config", cfg).showing()
    as_json = ctx.main("metrics", "--json", "--config", cfg)
    assert json.loads(as_json.out)["last_drill"]["drills"][0]["name"] == HOSTILE
    return [text, as_json]


@case(("compliance",))
def _compliance(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    # The runtime directory's name (printed as the history's path) is hostile, and so
    # is a drill name in the history (refused: the history reads as garbled).
    rt = ctx.tmp / HOSTILE_ARG.replace("/", "")
    rt.mkdir()
    cfg = ctx.tmp / "compliance.toml"
    runtime_dir = json.dumps(str(rt)).replace("\x7f", "\\u007f")
    cfg.write_text(f'environment = "paper"\n[paths]\nruntime_dir = {runtime_dir}\n'
                   '[services.feeder]\nargv = ["/bin/true"]\n')
    history = {"schema": 1, "drills": {HOSTILE: {"status": "PASSED", "finished_at": 1.0,
                                                 "duration_s": 1.0}}}
    _write_json(rt / "drill_history.json", history)
    text = ctx.main("compliance", "--config", str(cfg)).showing()
    as_json = ctx.main("compliance", "--json", "--config", str(cfg))
    assert json.loads(as_json.out)["history"]["read"] == "garbled"
    window = ctx.main("compliance", "--config", str(cfg), "--window", HOSTILE_ARG)
    assert text.code == 1 and window.code == 2
    return [text, as_json, window.showing()]


@case(("breaker", "status"))
def _breaker_status(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = ctx.config()
    state = {"state": "closed", "consecutive_failures": 1, "failure_times": [],
             "last_reason": HOSTILE}  # fmt: skip
    _write_json(ctx.runtime_dir / "circuit_breaker.json", {"keys": {HOSTILE: state}})
    text = ctx.main("breaker", "status", "--config", cfg).showing()
    as_json = ctx.main("breaker", "status", "--json", "--config", cfg)
    assert json.loads(as_json.out)["keys"][0]["key"] == HOSTILE
    return [text, as_json]


@case(("breaker", "reset"))
def _breaker_reset(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = ctx.config()
    state = {"state": "closed", "consecutive_failures": 1, "failure_times": []}
    _write_json(ctx.runtime_dir / "circuit_breaker.json", {"keys": {HOSTILE: state}})
    every = ctx.main("breaker", "reset", "--all", "--reason", HOSTILE_ARG, "--config", cfg)
    assert every.code == 0, every
    named = ctx.main("breaker", "reset", HOSTILE_ARG, "--reason", HOSTILE_ARG, "--config", cfg)
    assert named.code == 0, named
    return [every.showing(), named]


@case(("risk", "status"))
def _risk_status(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = ctx.config()
    scope = "strategy=grid,symbol=BTCUSDT,side=buy"
    body = {"reason": HOSTILE, "since": 1.0, "executions": 3, "window_s": 60}
    _write_json(ctx.runtime_dir / "risk_scope_latches.json", {"latches": {scope: body}})
    text = ctx.main("risk", "status", "--config", cfg).showing()
    _write_json(ctx.runtime_dir / "risk_scope_latches.json", {"latches": {HOSTILE: body}})
    garbage = ctx.main("risk", "status", "--config", cfg)
    assert garbage.code == 1, garbage
    return [text, garbage]


@case(("risk", "enable"))
def _risk_enable(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = ctx.config()
    scope = "strategy=grid,symbol=BTCUSDT,side=buy"
    body = {"reason": "risk_repeated_execution", "since": 1.0, "executions": 3, "window_s": 60}
    _write_json(ctx.runtime_dir / "risk_scope_latches.json", {"latches": {scope: body}})
    bad = ctx.main("risk", "enable", HOSTILE_ARG, "--config", cfg)
    assert bad.code == 2, bad
    named = ctx.main("risk", "enable", scope, "--operator", HOSTILE_ARG, "--config", cfg)
    assert named.code == 0, named
    return [bad, named]


def _fleet_config(ctx: Ctx) -> str:
    extra = f"""
[fleet]
redis_url = {toml_str(ctx.redis().url)}
name = "desk"
host = "here"
"""
    return ctx.config(extra=extra)


@case(("fleet", "status"), slow=True)
def _fleet_status(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    import redis

    from autoheal.core import fleet as core_fleet

    cfg = _fleet_config(ctx)
    client = redis.Redis.from_url(ctx.redis().url)
    now = time.time()
    summary = {
        "host": HOSTILE,
        "ts": now,
        "dor": False,
        "mode": HOSTILE,
        "failsafe": True,
        "failsafe_set_by": HOSTILE,
        "failing_components": [HOSTILE],
        "fleet_lost": True,
    }
    client.sadd(core_fleet.hosts_key("desk"), HOSTILE, "impostor")
    client.set(core_fleet.host_key("desk", HOSTILE), json.dumps(summary))
    client.set(core_fleet.host_key("desk", "impostor"), json.dumps({"host": HOSTILE}))
    record = core_fleet.SwitchRecord("HALT", 3, HOSTILE, HOSTILE, now)
    client.set(core_fleet.switch_key("desk"), core_fleet.encode_switch(record))
    client.close()
    text = ctx.main("fleet", "status", "--config", cfg).showing()
    as_json = ctx.main("fleet", "status", "--json", "--config", cfg)
    assert json.loads(as_json.out)["switch"]["reason"] == HOSTILE
    # A config without [fleet] whose file name is hostile: the error names the file.
    no_fleet = ctx.tmp / f"{HOSTILE_ARG.replace('/', '')}.toml"
    no_fleet.write_text(f'environment = "paper"\n[paths]\nruntime_dir = "{ctx.runtime_dir}"\n')
    unset = ctx.main("fleet", "status", "--config", str(no_fleet)).showing()
    assert unset.code == 2, unset
    return [text, as_json, unset]


@case(("fleet", "halt"), ("fleet", "reduce-only"), ("fleet", "run"), slow=True)
def _fleet_set(ctx: Ctx, key: tuple[str, ...]) -> list[Printed]:
    cfg = _fleet_config(ctx)
    printed = ctx.main("fleet", key[1], "--reason", HOSTILE_ARG, "--config", cfg)
    assert printed.code == 0, printed
    return [printed.showing()]


# ----------------------------------------------------------------------------- the tests

KEYS = command_keys()


def test_every_command_has_a_hostile_case() -> None:
    missing = [" ".join(k) for k in KEYS if k not in CASES]
    assert missing == [], f"commands without a terminal-output case here: {missing}"
    assert len(KEYS) > 20  # the enumeration found the parser's commands


@pytest.fixture
def ctx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Ctx]:
    monkeypatch.setenv("AUTOHEAL_CONFIG", str(tmp_path / "none.toml"))
    context = Ctx(tmp_path, capsys, monkeypatch)
    try:
        yield context
    finally:
        context.close()


@pytest.mark.parametrize(
    "key",
    [pytest.param(k, marks=pytest.mark.slow) if k in SLOW else k for k in KEYS],
    ids=[" ".join(k) for k in KEYS],
)
def test_command_prints_no_control_character_it_did_not_write_issue18(
    key: tuple[str, ...], ctx: Ctx
) -> None:
    runs = CASES[key](ctx, key)
    assert runs
    for printed in runs:
        assert_clean(printed.out)
        assert_clean(printed.err)
        assert_clean(printed.out + printed.err, shows=printed.shows)


def test_usage_error_quoting_the_command_line_is_clean_issue18(ctx: Ctx) -> None:
    printed = ctx.main("status", HOSTILE_ARG)
    assert printed.code == 2
    assert_clean(printed.err, shows=("pwned",))
