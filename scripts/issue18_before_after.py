"""Before/after reproduction of issue 18's defects against a real autoheal install.

Usage:  python3 scripts/issue18_before_after.py CHECKOUT

CHECKOUT is a checkout with its own ``.venv`` (the README's install), e.g. one at
6adfa2b (before) and one at main (after). Needs ``redis-server`` and ``redis-cli``.
Every port is a free loopback one. Every check drives the real
`autoheal` CLI or the real library (in a child process of that venv's python) against
real files in a fresh temp dir, and prints one line:

    A<n> <short name>: DEFECT (<evidence>)   or   A<n> <short name>: fixed (<evidence>)

Every subprocess has a timeout; every process a check starts (redis-server, the daemon,
the services the daemon spawned) is stopped before the check returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WORK = Path(tempfile.gettempdir()) / "autoheal-issue18"
TIMEOUT = 20  # seconds, every subprocess

if len(sys.argv) != 2 or not (Path(sys.argv[1]) / ".venv/bin/autoheal").exists():
    sys.exit("usage: issue18_before_after.py CHECKOUT (a checkout with its .venv installed)")
ROOT = Path(sys.argv[1]).resolve()
WHICH = ROOT.name
AUTOHEAL = str(ROOT / ".venv/bin/autoheal")
PYTHON = str(ROOT / ".venv/bin/python")


# -- helpers ------------------------------------------------------------------------------
def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any AUTOHEAL_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOHEAL")}
    env.update(extra)
    return env


def run(argv: list, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, timeout=TIMEOUT, env=kw.pop("env", clean_env()), **kw
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_line(data: bytes) -> str:
    lines = data.decode(errors="replace").strip().splitlines()
    return lines[0] if lines else ""


def short(text: str, n: int = 200) -> str:
    text = text.replace("\n", " | ")
    return text if len(text) <= n else text[: n - 3] + "..."


@contextlib.contextmanager
def tempdir(tag: str):
    d = Path(tempfile.mkdtemp(prefix=f"{WHICH.lower()}-{tag}-", dir=WORK))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def service_toml(name: str, code: str) -> str:
    """A minimal supervised service: ``python -c code`` with a process probe."""
    return textwrap.dedent(f"""
        [services.{name}]
        argv = ["{{python}}", "-c", {json.dumps(code)}]
        [[services.{name}.probes]]
        kind = "process"
        """)


def write_config(
    d: Path,
    body: str = "",
    paths: str = 'runtime_dir = "rt"\nstop_file = "STOP.TXT"',
    service: str | None = None,
) -> Path:
    cfg = d / "autoheal.toml"
    (d / "rt").mkdir(exist_ok=True)  # the runtime dir exists, as on a real host
    service = service or service_toml("sleeper", "import time; time.sleep(3600)")
    cfg.write_text(f'environment = "paper"\n[paths]\n{paths}\n{body}\n{service}')
    return cfg


def redis_cli(port: int, *args: str, password: str | None = None) -> str:
    argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--no-auth-warning"]
    if password:
        argv += ["-a", password]
    out = subprocess.run(argv + list(args), capture_output=True, timeout=TIMEOUT, text=True)
    return out.stdout.strip()


@contextlib.contextmanager
def redis_server(d: Path, password: str | None = None):
    """A throwaway redis-server on a free loopback port; yields the port."""
    port = free_port()
    data = d / "redis"
    data.mkdir()
    argv = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data),
    ]
    if password:
        argv += ["--requirepass", password]
    log = open(data / "redis.log", "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while redis_cli(port, "ping", password=password) != "PONG":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (rc={proc.poll()})")
            time.sleep(0.1)
        yield port
    finally:
        stop_process(proc)
        log.close()


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal ``proc`` (one we started), wait, KILL its process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=TIMEOUT)


def kill_leftover_services(rt: Path, marker: str) -> None:
    """Kill any service the daemon started that outlived it (pidfiles in ``rt``).

    Only a pid whose command line still holds ``marker`` (our own service's code) is
    signalled, so a reused pid is never touched.
    """
    for pidfile in rt.glob("*.pid"):
        with contextlib.suppress(Exception):
            text = pidfile.read_text().strip()
            pid = int(json.loads(text)["pid"]) if text.startswith("{") else int(text.split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if marker.encode() in cmdline:
                os.kill(pid, signal.SIGKILL)


def verdict(n: str, name: str, defect: bool, evidence: str) -> str:
    return f"A{n} {name}: {'DEFECT' if defect else 'fixed'} ({evidence})"


# -- A6: the trading gate with a kill switch it cannot find -----------------------------
A6_CHILD = r"""
import hashlib, json, sys
from pathlib import Path
from autoheal.guard import TradingGate
from autoheal.guard.live_gating import is_live_execution_allowed
missing = Path(sys.argv[1])            # absolute, does not exist
stop = missing.parent / "STOP.TXT"     # absent
out = {}
tok = "confirm-me"
env = dict(mode="live", enable_live_trading=True, live_mode_armed=True, live_dry_run_mode=False,
           confirm_token=tok, confirm_token_sha256=hashlib.sha256(tok.encode()).hexdigest(),
           runtime_dir=missing, stop_file=stop)
out["is_live_execution_allowed(missing dir)"] = list(is_live_execution_allowed(env, environ={}))
out["TradingGate(missing dir).allowed(buy)"] = list(TradingGate(missing, stop).allowed("buy"))
try:  # relative paths, in a process whose cwd is not where the daemon keeps them
    out['TradingGate("shared_data","STOP.TXT").allowed(buy)'] = list(
        TradingGate("shared_data", "STOP.TXT").allowed("buy"))
except Exception as exc:
    out['TradingGate("shared_data","STOP.TXT")'] = ["raised", f"{type(exc).__name__}: {exc}"]
print(json.dumps(out))
"""


def check_a6() -> str:
    with tempdir("a6") as d:
        missing = d / "x" / "does-not-exist"
        p = run([PYTHON, "-c", A6_CHILD, str(missing)], cwd=d)  # cwd: no shared_data here
        if p.returncode != 0:
            return f"A6 gate without kill switch: ERROR (child rc={p.returncode}: {short(p.stderr.decode())})"
        results = json.loads(p.stdout)
        allowed = [k for k, v in results.items() if v[0] is True]
        evidence = "; ".join(f"{k} -> {tuple(v)}" for k, v in results.items())
        return verdict("6", "gate without kill switch", bool(allowed), evidence)


# -- A7: a market buy valued at a mark price of 0 -----------------------------------------
A7_CHILD = r"""
import json
from decimal import Decimal
from autoheal.guard import RiskBook, RiskGuard, RiskOrder, parse_limits
guard = RiskGuard(parse_limits({"max_order_notional": 1000}), None)
order = RiskOrder("BTCUSDT", "buy", Decimal("1000"), None)          # market buy, 1000 units
book = RiskBook(positions={}, open_orders=(), marks={"BTCUSDT": Decimal("0")})
ok, reasons = guard.check(order, book)
print(json.dumps([ok, list(reasons)]))
"""


def check_a7() -> str:
    with tempdir("a7") as d:
        p = run([PYTHON, "-c", A7_CHILD], cwd=d)
        if p.returncode != 0:
            return f"A7 risk mark 0: ERROR (child rc={p.returncode}: {short(p.stderr.decode())})"
        ok, reasons = json.loads(p.stdout)
        evidence = (
            f"market buy qty=1000 mark=0 max_order_notional=1000 -> allowed={ok} reasons={reasons}"
        )
        return verdict("7", "risk mark price 0", ok is True, evidence)


# -- A9a: a --reason that is not UTF-8 ----------------------------------------------------
def check_a9a() -> str:
    with tempdir("a9a") as d:
        cfg = write_config(d)
        argv = [
            AUTOHEAL.encode(),
            b"failsafe",
            b"enter",
            b"--config",
            str(cfg).encode(),
            b"--reason",
            b"\xff\xfe",
        ]
        p = run(argv, cwd=d)
        err = p.stderr.decode(errors="replace")
        lines = err.strip().splitlines()
        traceback = "Traceback" in err
        fixed = p.returncode == 2 and not traceback and len(lines) == 1 and "--reason" in err
        evidence = (
            f"exit {p.returncode}, {len(lines)} stderr line(s), traceback={traceback}; "
            f"last: {short(lines[-1] if lines else '')}"
        )
        return verdict("9a", "non-UTF-8 --reason", not fixed, evidence)


# -- A9b: paths.stop_file is the journal ------------------------------------------------
def check_a9b() -> str:
    with tempdir("a9b") as d:
        # journal.sqlite3 in both trees (runtime_files.JOURNAL / store.layout.JOURNAL)
        cfg = write_config(d, paths='runtime_dir = "rt"\nstop_file = "rt/journal.sqlite3"')
        p = run([AUTOHEAL, "check-config", "--config", str(cfg)], cwd=d)
        out = (first_line(p.stderr) or first_line(p.stdout)).replace(str(d), "<tmp>")
        # fixed = refused in one line, and refused *because* the stop file is the journal
        fixed = (
            p.returncode == 2
            and len(p.stderr.decode().strip().splitlines()) == 1
            and "paths.stop_file" in out
            and "journal" in out
        )
        return verdict(
            "9b",
            "stop_file = journal",
            not fixed,
            f"check-config exit {p.returncode}: {short(out)}",
        )


# -- A9c: an absurd heartbeat interval ----------------------------------------------------
def check_a9c() -> str:
    with tempdir("a9c") as d:
        cfg = write_config(d, body="[daemon]\nheartbeat_interval = 1e308\n")
        p = run([AUTOHEAL, "check-config", "--config", str(cfg)], cwd=d)
        out = (first_line(p.stderr) or first_line(p.stdout)).replace(str(d), "<tmp>")
        fixed = (
            p.returncode == 2
            and len(p.stderr.decode().strip().splitlines()) == 1
            and "heartbeat_interval" in out
        )
        return verdict(
            "9c",
            "heartbeat_interval 1e308",
            not fixed,
            f"check-config exit {p.returncode}: {short(out)}",
        )


# -- A10: terminal escapes from a reason reach `autoheal events` raw ---------------------
def check_a10() -> str:
    with tempdir("a10") as d:
        cfg = write_config(d)
        reason = "x\x1b[2Jy\x1b]0;pwned\x07z"
        enter = run(
            [AUTOHEAL, "failsafe", "enter", "--config", str(cfg), "--reason", reason], cwd=d
        )
        if enter.returncode != 0:
            return f"A10 escapes in events: ERROR (failsafe enter exit {enter.returncode}: {short(enter.stderr.decode())})"
        p = run([AUTOHEAL, "events", "--config", str(cfg)], cwd=d)
        out = p.stdout
        if b"pwned" not in out:
            return f"A10 escapes in events: ERROR (the reason is not in the events output, exit {p.returncode})"
        esc, bel = out.count(b"\x1b"), out.count(b"\x07")
        sample = next(line for line in out.splitlines() if b"pwned" in line)
        sample = sample[sample.index(b"reason=") :][:40]
        return verdict(
            "10",
            "escapes in events",
            esc + bel > 0,
            f"events stdout holds {esc} ESC and {bel} BEL bytes; e.g. {sample!r}",
        )


# -- A4: one malformed host summary blocks the fleet switch -----------------------------
def check_a4() -> str:
    with tempdir("a4") as d, redis_server(d) as port:
        cfg = write_config(
            d,
            body=textwrap.dedent(f"""
            [fleet]
            redis_url = "redis://127.0.0.1:{port}/0"
            name = "desk"
            host = "me"
            """),
        )
        doc = {"host": "bad", "fleet": "desk", "ts": time.time(), "fleet_version": "7a"}
        redis_cli(port, "set", "autoheal:fleet:desk:host:bad", json.dumps(doc))
        redis_cli(port, "sadd", "autoheal:fleet:desk:hosts", "bad")
        p = run([AUTOHEAL, "fleet", "halt", "--config", str(cfg), "--reason", "x"], cwd=d)
        raw = redis_cli(port, "get", "autoheal:fleet:desk:switch")
        state = json.loads(raw).get("state") if raw else None
        err = " / ".join(p.stderr.decode(errors="replace").strip().splitlines())
        evidence = (
            f"host 'bad' has fleet_version \"7a\"; fleet halt exit {p.returncode}, "
            f"stderr: {short(err or '-')}; switch record state={state}"
        )
        return verdict(
            "4", "bad host blocks fleet halt", not (p.returncode == 0 and state == "HALT"), evidence
        )


# -- A8: the daemon hands its secrets to the services it starts -------------------------
def check_a8() -> str:
    secrets = {
        "AUTOHEAL_STATUS_TOKEN": "stattok-SECRET-a8",
        "AUTOHEAL_REDIS_PASSWORD": "redispw-SECRET-a8",
    }
    marker = "repro18-a8-envdump"
    dump = (
        "import json,os,time; " + f"MARK={marker!r}; "
        "json.dump(dict(os.environ), open('{runtime_dir}/env.json.tmp','w')); "
        "os.replace('{runtime_dir}/env.json.tmp','{runtime_dir}/env.json'); time.sleep(3600)"
    )
    with tempdir("a8") as d, redis_server(d, password=secrets["AUTOHEAL_REDIS_PASSWORD"]) as port:
        cfg = write_config(
            d,
            body=textwrap.dedent(f"""
                [daemon]
                status_listen = "127.0.0.1:{free_port()}"
                status_token_env = "AUTOHEAL_STATUS_TOKEN"
                [fleet]
                redis_url = "redis://:{{secret}}@127.0.0.1:{port}/0"
                secret_env = "AUTOHEAL_REDIS_PASSWORD"
                name = "desk"
                host = "me"
                """),
            service=service_toml("dumper", dump),
        )
        rt = d / "rt"
        log = open(d / "daemon.log", "wb")
        daemon = subprocess.Popen(
            [AUTOHEAL, "run", "--config", str(cfg)],
            cwd=d,
            env=clean_env(**secrets),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            host_key = "autoheal:fleet:desk:host:me"
            started = time.monotonic()
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline and daemon.poll() is None:
                published = (
                    redis_cli(port, "exists", host_key, password=secrets["AUTOHEAL_REDIS_PASSWORD"])
                    == "1"
                )
                if (rt / "env.json").exists() and published:
                    break
                time.sleep(0.25)
            time.sleep(max(0.0, started + 3 - time.monotonic()))  # >= 3 s of running in all
        finally:
            stop_process(daemon)  # SIGTERM, bounded wait, then KILL
            log.close()
            kill_leftover_services(rt, marker)
        if not (rt / "env.json").exists():
            tail = short((d / "daemon.log").read_text(errors="replace")[-300:])
            return f"A8 secrets in service env: ERROR (the service never dumped its env; daemon exit {daemon.returncode}: {tail})"
        env = json.loads((rt / "env.json").read_text())
        leaked = [k for k, v in secrets.items() if v in env.values()]
        evidence = (
            f"daemon reached Redis with the password: {published}; daemon exit after SIGTERM "
            f"{daemon.returncode}; secret values in the service's environment: "
            f"{', '.join(leaked) or 'none'}"
        )
        return verdict("8", "secrets in service env", bool(leaked), evidence)


# -- A5: an operator's hand-written halt during a fleet halt -----------------------------
def read_flags(rt: Path) -> dict:
    with contextlib.suppress(Exception):
        return json.loads((rt / "global_flags.json").read_text())
    return {}


def wait_until(pred, timeout: float, step: float = 0.2) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if pred():
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def check_a5() -> str:
    marker = "repro18-a5-sleeper"
    name = "A5 hand-written halt during fleet halt"
    with tempdir("a5") as d, redis_server(d) as port:
        cfg = write_config(
            d,
            body=textwrap.dedent(f"""
                [fleet]
                redis_url = "redis://127.0.0.1:{port}/0"
                name = "desk"
                host = "me"
                poll_interval = "200ms"
                """),
            service=service_toml("sleeper", f"MARK={marker!r}; import time; time.sleep(3600)"),
        )
        rt, stop = d / "rt", d / "STOP.TXT"
        log = open(d / "daemon.log", "wb")
        daemon = subprocess.Popen(
            [AUTOHEAL, "run", "--config", str(cfg)],
            cwd=d,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            up = wait_until(
                lambda: (
                    daemon.poll() is None
                    and (rt / "auto_heal.heartbeat.json").exists()
                    and redis_cli(port, "exists", "autoheal:fleet:desk:host:me") == "1"
                ),
                TIMEOUT,
            )
            if not up:
                tail = short((d / "daemon.log").read_text(errors="replace")[-300:])
                return f"{name}: ERROR (daemon not up; exit {daemon.poll()}: {tail})"
            time.sleep(1.0)  # a few switch polls: the daemon has read the (absent) switch
            halt = run(
                [AUTOHEAL, "fleet", "halt", "--config", str(cfg), "--reason", "drill"], cwd=d
            )
            if halt.returncode != 0:
                return f"{name}: ERROR (fleet halt exit {halt.returncode}: {short(halt.stderr.decode())})"
            halted = wait_until(
                lambda: stop.exists() and read_flags(rt).get("failsafe_active") is True, 20
            )
            if not halted:
                return (
                    f"{name}: ERROR (host did not halt within 20 s: STOP.TXT={stop.exists()}, "
                    f"flags={read_flags(rt)})"
                )
            fleet_doc = read_flags(rt)
            # The operator's edit, atomically, keeping the document's shape.
            doc = dict(fleet_doc)
            doc.update(
                {
                    "failsafe_active": True,
                    "mode": "SIGNAL_READ_ONLY",
                    "reason": "alice: bad fills, holding",
                    "set_by": "alice",
                }
            )
            if "since" in doc and isinstance(doc["since"], str):
                doc["since"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            else:
                doc["since"] = time.time()
            tmp = rt / ".global_flags.json.alice.tmp"
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, rt / "global_flags.json")
            time.sleep(3.0)  # the daemon reads it (inotify / its poll)
            after_edit = read_flags(rt)
            resume = run([AUTOHEAL, "fleet", "run", "--config", str(cfg), "--reason", "ok"], cwd=d)
            if resume.returncode != 0:
                return f"{name}: ERROR (fleet run exit {resume.returncode}: {short(resume.stderr.decode())})"
            # Up to 15 s for the daemon to act on the RUN: stop early once it lifted the halt.
            lifted = wait_until(
                lambda: (
                    not stop.exists()
                    or read_flags(rt).get("failsafe_active") is not True
                    or read_flags(rt).get("mode") == "NORMAL"
                ),
                15,
            )
            if not lifted:
                time.sleep(0.5)
            final = read_flags(rt)
            stop_present = stop.exists()
            ev = run([AUTOHEAL, "events", "--config", str(cfg), "--json"], cwd=d)
            takeover = []
            for line in ev.stdout.decode(errors="replace").splitlines():
                low = line.lower()
                if (
                    "alice" in low
                    or "taken over" in low
                    or "take over" in low
                    or "takes over" in low
                ):
                    with contextlib.suppress(Exception):
                        e = json.loads(line)
                        line = " ".join(
                            f"{k}={e[k]}"
                            for k in ("kind", "type", "event", "reason", "actor")
                            if e.get(k)
                        )
                        said = [
                            v
                            for v in (e.get("data") or {}).values()
                            if isinstance(v, str) and ("alice" in v or " over " in v)
                        ]
                        line += f' "{said[0]}"' if said else ""
                    takeover.append(short(line, 160))
        finally:
            stop_process(daemon)
            log.close()
            kill_leftover_services(rt, marker)
        fleet_switch = redis_cli(port, "get", "autoheal:fleet:desk:switch")
        fixed = (
            stop_present
            and final.get("failsafe_active") is True
            and (final.get("set_by") == "alice" or bool(takeover))
        )
        lifted_halt = (
            not stop_present
            or final.get("failsafe_active") is not True
            or final.get("mode") == "NORMAL"
        )
        fmt = lambda f: (
            f"failsafe_active={f.get('failsafe_active')} mode={f.get('mode')} set_by={f.get('set_by')}"
        )
        evidence = (
            f"fleet halt -> flags {fmt(fleet_doc)}; alice's edit read back as {fmt(after_edit)}; "
            f"after `fleet run` (switch {json.loads(fleet_switch).get('state') if fleet_switch else None}): "
            f"STOP.TXT present={stop_present}, flags {fmt(final)}; "
            f"journal events naming alice/takeover: {'; '.join(takeover[:3]) or 'none'}"
        )
        if not fixed and not lifted_halt:
            return f"{name}: UNCLEAR ({evidence})"
        return verdict("5", "hand-written halt during fleet halt", not fixed, evidence)


# -- A2: idle connections to the status server kill the daemon ---------------------------
def http_get(port: int, path: str, timeout: float) -> tuple[int | None, float, str]:
    """GET ``path`` on a new connection: (status or None, seconds, error)."""
    import http.client

    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - t0, ""
    except Exception as exc:
        return None, time.monotonic() - t0, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def check_a2() -> str:
    import resource

    marker = "repro18-a2-sleeper"
    name = "A2 idle connections kill the daemon"
    n_conns = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n_conns + 100:
        return f"{name}: ERROR (this process may open at most {hard} descriptors)"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks: list[socket.socket] = []
    with tempdir("a2") as d:
        cfg = write_config(
            d,
            body=f'[daemon]\nstatus_listen = "127.0.0.1:{free_port()}"\n',
            service=service_toml("sleeper", f"MARK={marker!r}; import time; time.sleep(3600)"),
        )
        rt = d / "rt"
        log = open(d / "daemon.log", "wb")
        daemon = subprocess.Popen(
            [AUTOHEAL, "run", "--config", str(cfg)],
            cwd=d,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)),
        )
        try:
            port = None

            def ready() -> bool:
                nonlocal port
                port = json.loads((rt / "status_endpoint.json").read_text())["port"]
                return daemon.poll() is None and http_get(port, "/metrics", 2)[0] == 200

            if not wait_until(ready, TIMEOUT, step=0.3):
                tail = short((d / "daemon.log").read_text(errors="replace")[-300:])
                return f"{name}: ERROR (the status server never answered; exit {daemon.poll()}: {tail})"

            def service_pid() -> int | None:
                with contextlib.suppress(Exception):
                    text = (rt / "sleeper.pid").read_text().strip()
                    pid = (
                        int(json.loads(text)["pid"])
                        if text.startswith("{")
                        else int(text.split()[0])
                    )
                    if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        return pid
                return None

            wait_until(lambda: service_pid() is not None, 10)
            pid_before = service_pid()
            failed_connects = 0
            for _ in range(n_conns):
                s = socket.socket()
                s.settimeout(2)
                try:
                    s.connect(("127.0.0.1", port))
                    socks.append(s)
                except OSError:
                    failed_connects += 1
                    s.close()
            opened = len(socks)
            time.sleep(5.0)  # hold them, idle
            alive = daemon.poll() is None
            status, latency, err = http_get(port, "/metrics", 10)
            alive_after = daemon.poll() is None
            pid_after = service_pid()
            service_running = pid_after is not None
            closed_by_server = 0  # our idle sockets the server closed (EOF or reset)
            for s in socks:
                try:
                    closed_by_server += s.recv(1, socket.MSG_DONTWAIT) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    closed_by_server += 1
        finally:
            for s in socks:
                s.close()
            socks.clear()
            stop_process(daemon)
            log.close()
            kill_leftover_services(rt, marker)
        rc = daemon.returncode
        tail = ""
        if not alive_after:
            lines = (d / "daemon.log").read_text(errors="replace").strip().splitlines()
            errno_lines = [ln.strip() for ln in lines if "Errno" in ln or "EMFILE" in ln]
            last = [ln.strip() for ln in lines if "rror" in ln]
            tail = f"; daemon log: {short((errno_lines or last or lines or [''])[-1], 160)}"
        metrics = (
            f"/metrics answered {status} in {latency * 1000:.1f} ms"
            if status is not None
            else f"/metrics unanswered after {latency:.1f} s ({short(err, 80)})"
        )
        evidence = (
            f"daemon RLIMIT_NOFILE=256, {opened}/{n_conns} idle "
            f"connections open for 5 s ({closed_by_server} of them found closed from the daemon's side at the end); daemon alive after hold: {alive}"
            f"{'' if alive_after else f' (exit code {rc})'}; {metrics}; service running: "
            f"{service_running} (pid {pid_before} -> {pid_after}){tail}"
        )
        return verdict(
            "2", "idle connections kill the daemon", not (alive_after and status == 200), evidence
        )


CHECKS = [
    check_a6,
    check_a7,
    check_a9a,
    check_a9b,
    check_a9c,
    check_a10,
    check_a4,
    check_a8,
    check_a5,
    check_a2,
]


def main() -> None:
    print(f"# autoheal {WHICH}: {ROOT} ({AUTOHEAL})", flush=True)
    WORK.mkdir(exist_ok=True)
    for check in CHECKS:
        try:
            line = check()
        except Exception as exc:  # one check failing to run never hides the others
            line = f"{check.__name__}: ERROR ({type(exc).__name__}: {short(str(exc))})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
