"""The durable commands' one path (:mod:`autoheal.cli.submit`) and the operator's requests
(:mod:`autoheal.cli.operator`): request values from argv, the checks against a real config,
the outcome of a real submit to a real journal, and the one map from outcome to text and
exit code (0 only for success; 1 failed or still pending; 2 usage; 3 refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.cli import parse_args
from autoheal.cli.common import Problem
from autoheal.cli.operator import problem_with, request_from
from autoheal.cli.submit import Finished, Queued, Request, report, submit_and_wait
from autoheal.config import Config, load_config
from autoheal.store.commands import Command
from autoheal.store.lock import RuntimeLock


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    path = tmp_path / "autoheal.toml"
    path.write_text(
        f'environment = "paper"\n[paths]\nruntime_dir = "{tmp_path}/rt"\n'
        f'stop_file = "{tmp_path}/STOP.TXT"\n'
        '[services.svc]\nargv = ["sleep", "100"]\nautostart = false\n'
    )
    return load_config(str(path))


def _command(status: str, result: dict[str, object] | None = None, **kw: object) -> Command:
    return Command(
        id="c1",
        type="restart",
        target="svc",
        payload={"reason": "r"},
        requested_by="op",
        idempotency_key="k",
        checksum="x",
        created_at=0.0,
        expires_at=60.0,
        status=status,
        result=result or {},
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("outcome", "code", "out", "err"),
    [
        (Finished(_command("succeeded", {"pid": 7})), 0, 'restart svc succeeded: {"pid": 7}', ""),
        (
            Finished(_command("failed", {"reason": "spawn_failed"})),
            1,
            "",
            "autoheal: restart svc failed: spawn_failed",
        ),
        (
            Finished(_command("failed", {"message": "in FAILSAFE", "refused": True})),
            3,
            "",
            "autoheal: restart svc failed: in FAILSAFE",
        ),
        (Finished(_command("expired")), 1, "", "autoheal: restart svc expired: expired"),
        (
            Finished(_command("pending")),
            1,
            "",
            "autoheal: restart svc: no result yet: command c1 is still pending",
        ),
        (
            Finished(_command("claimed", claimed_by="daemon:42")),
            1,
            "",
            "autoheal: restart svc: no result yet: command c1 is still claimed by daemon:42",
        ),
        (Queued(_command("pending"), duplicate=False), 0,
         "queued command c1; not waiting for its result", ""),
        (Queued(_command("claimed"), duplicate=True), 0,
         "queued command c1 (claimed); not waiting", ""),
        (Problem("usage", "bad"), 2, "", "autoheal: usage error: bad"),
        (Problem("config", "bad"), 2, "", "autoheal: config error: bad"),
        (Problem("refused", "live"), 3, "", "autoheal: refused: live"),
        (Problem("failed", "no daemon"), 1, "", "autoheal: no daemon"),
    ],
)  # fmt: skip
def test_report_maps_each_outcome_to_one_line_and_its_exit_code(
    outcome: Finished | Queued | Problem,
    code: int,
    out: str,
    err: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert report(outcome) == code
    printed = capsys.readouterr()
    assert printed.out == (out + "\n" if out else "")
    assert printed.err == (err + "\n" if err else "")


def test_requests_from_argv() -> None:
    restart = request_from(parse_args(["restart", "svc", "--no-wait", "--timeout", "5"]))
    assert restart == Request("restart", "svc", {"reason": "manual"}, None, 5.0, wait=False)
    failsafe = request_from(
        parse_args(["failsafe", "reduce-only", "--reason", "unwind", "--idempotency-key", "k"])
    )
    assert failsafe == Request("failsafe_reduce_only", "", {"reason": "unwind"}, "k", 30.0)
    chaos = request_from(parse_args(["chaos", "stall", "feeder", "--for", "10s"]))
    assert chaos == Request(
        "chaos_stall",
        "feeder",
        {"duration": "10s", "ms": None, "mode": "blackhole", "reason": "chaos"},
    )
    assert chaos.ttl == 60.0 and Request("stop", "svc", timeout=45.0).ttl == 90.0


def test_requests_checked_against_the_config(cfg: Config, tmp_path: Path) -> None:
    assert problem_with(Request("restart", "svc"), cfg) is None
    assert problem_with(Request("restart", "nope"), cfg) == Problem(
        "usage", "unknown service 'nope' (known: svc)"
    )
    assert problem_with(Request("chaos_kill", ""), cfg) == Problem(
        "usage", "chaos kill needs a target"
    )
    assert problem_with(Request("chaos_heal", ""), cfg) is None
    live = tmp_path / "live.toml"
    live.write_text(Path(cfg.path).read_text().replace('"paper"', '"live"'))
    refused = problem_with(Request("chaos_heal", ""), load_config(str(live)))
    assert refused == Problem("refused", f'chaos against environment = "live" ({live})')


def test_with_a_daemon_a_command_is_queued_or_waited_for_never_reported_done(
    cfg: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg.paths.runtime_dir.mkdir(parents=True)
    lock = RuntimeLock(cfg.paths.runtime_dir)  # a "daemon" that never claims anything
    lock.acquire()
    try:
        queued = submit_and_wait(cfg, Request("restart", "svc", wait=False), user="op")
        assert isinstance(queued, Queued) and not queued.duplicate
        assert queued.command.status == "pending"
        waited = submit_and_wait(
            cfg, Request("restart", "svc", idempotency_key="k", timeout=0.0), user="op"
        )
        assert isinstance(waited, Finished) and waited.command.status == "pending"
        assert report(waited) == 1  # not done is not success
        capsys.readouterr()
        again = submit_and_wait(
            cfg, Request("restart", "svc", idempotency_key="k", wait=False), user="op"
        )
        assert isinstance(again, Queued) and again.duplicate
        assert again.command.id == waited.command.id
        assert capsys.readouterr().out == (
            f"duplicate: idempotency key 'k' already used by {waited.command.id} (pending)\n"
        )
        other = submit_and_wait(cfg, Request("stop", "svc", idempotency_key="k"), user="op")
        assert isinstance(other, Problem) and other.kind == "usage"
    finally:
        lock.release()


def test_without_a_daemon_a_chaos_fault_fails_and_is_settled(cfg: Config) -> None:
    from autoheal.store.journal import Journal

    outcome = submit_and_wait(cfg, Request("chaos_kill", "svc"), user="op")
    assert outcome == Problem(
        "failed", "no daemon running: chaos faults need 'autoheal run --chaos'"
    )
    with Journal.open(cfg.paths.runtime_dir) as journal:
        rows = journal.query("SELECT status, result FROM commands")
    assert [(r["status"], r["result"]) for r in rows] == [("failed", '{"reason":"no_daemon"}')]


def test_a_breaker_reset_runs_here_and_a_reused_key_says_duplicate(
    cfg: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    request = Request("breaker_reset", "", {"reason": "r", "keys": ["BTCUSDT"]}, "b1")
    first = submit_and_wait(cfg, request, user="op")
    assert isinstance(first, Finished) and first.command.status == "succeeded"
    assert first.command.result == {"reset": {}, "absent": ["BTCUSDT"]}
    again = submit_and_wait(cfg, request, user="op")
    assert isinstance(again, Finished) and again.command.id == first.command.id
    assert capsys.readouterr().out.startswith("duplicate: idempotency key 'b1' already used by")
    other = Request("breaker_reset", "", {"reason": "r", "keys": ["ETHUSDT"]}, "b1")
    assert isinstance(submit_and_wait(cfg, other, user="op"), Problem)
