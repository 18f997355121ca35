"""``risk_pnl.json`` on disk (``autoheal.guard.risk_day_file``): a stat says when to re-read."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from autoheal.guard.risk_day import DayRead, RiskDay
from autoheal.guard.risk_day_file import DayFile


def test_the_day_file_notices_every_replacement(tmp_path: Path):
    reader, writer = DayFile(tmp_path), DayFile(tmp_path)
    assert reader.changed()  # never read
    assert reader.read() == DayRead(None)
    assert not reader.changed()
    for pnl in ("-1", "-2", "-3"):  # the same size, well within one mtime tick
        with writer.update():
            writer.write(RiskDay("2024-05-01", D(pnl)), 1.0)
        assert reader.changed()
        assert reader.read().day.realized == D(pnl)
        assert not reader.changed()
    (tmp_path / "risk_pnl.json").unlink()
    assert reader.changed() and reader.read() == DayRead(None)
