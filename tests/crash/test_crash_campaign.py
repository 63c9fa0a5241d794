"""A short crash campaign through the S3 API (the long one: ``python -m tests.crash.campaign``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from campaign import run_campaign


@pytest.mark.slow
def test_every_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    result = run_campaign(2, seed=15, directory=tmp_path, rounds=2, kill_after=(0.5, 4.0))
    report = "\n".join(result.report())
    assert result.lost == [], report
    assert result.refused == [], report
    # The campaign exercised what it claims to: writes of every kind were acknowledged.
    assert sum(result.acknowledged.values()) >= 30, report
    assert result.acknowledged["UploadPart"] > 0, report
    assert result.kills == 4, report
