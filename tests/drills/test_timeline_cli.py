"""`autoheal drill run --report r.json` also writes the timeline picture r.svg, and says so."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from autoheal.cli import main
from autoheal.drills.model import Status
from autoheal.drills.runner import run_drills

NS = "{http://www.w3.org/2000/svg}"


@pytest.mark.slow
def test_drill_run_report_writes_the_svg_beside_the_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "out" / "r.json"
    assert main(["drill", "run", "sell_without_position", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    svg = report.with_suffix(".svg")
    assert f"Timeline picture: {svg}" in out
    root = ET.fromstring(svg.read_text(encoding="utf-8"))
    lanes = [g.get("data-drill") for g in root.iter(f"{NS}g") if g.get("class") == "lane"]
    assert lanes == ["sell_without_position"]
    drill = json.loads(report.read_text())["drills"][0]
    timed = [c for c in drill["criteria"] if c.get("kind") == "time"]
    assert timed and all(c["margin_s"] == pytest.approx(c["bound_s"] - c["measured_s"])
                         for c in timed)
    assert f"margin {timed[0]['margin_s']:+.2f}s" in out
    assert drill["timeline"]["fault"]["start_s"] == 0.0
    # The run's own copy under the runtime directory gets its picture too.
    (own,) = (tmp_path / "shared_data" / "drills").glob("*.json")
    assert own.with_suffix(".svg").exists()


@pytest.mark.slow
def test_daemon_drill_records_its_timeline_and_draws_it(tmp_path: Path) -> None:
    """A real kill_feeder run: the restart, DOR false until recovery, detection, deadlines."""
    report = run_drills(["kill_feeder"], work_dir=tmp_path / "work",
                        report_path=tmp_path / "r.json", progress=lambda _line: None,
                        output=lambda _text: None)
    (result,) = report.results
    assert result.status is Status.PASSED, result.failed_criteria or result.details
    tl = result.timeline
    assert tl["fault"] == {"label": "kill feeder", "start_s": 0.0, "end_s": None}
    assert [m["label"] for m in tl["marks"]] == ["feeder"]
    not_ready = [s for s in tl["spans"] if s["kind"] == "not_ready"]
    assert not_ready and result.time_to_recover_s is not None
    assert 0 <= not_ready[0]["start_s"] <= result.time_to_recover_s + 0.01
    root = ET.fromstring((tmp_path / "r.svg").read_text(encoding="utf-8"))
    classes = [e.get("class") for e in root.iter()]
    timed = [c for c in result.criteria if c.bound_s is not None]
    assert classes.count("restart") == 1 and classes.count("deadline") == len(timed) > 0
    assert "detect" in classes and "recover" in classes
