"""Smoke run of benchmarks/virtual_time.py over two library scenarios."""

from __future__ import annotations

from benchmarks.virtual_time import LIBRARY, run_virtual_time


def test_scenario_time_per_wall_second_is_measured() -> None:
    paths = [LIBRARY / "01-cancel-while-ringing.yaml", LIBRARY / "10-no-answer.yaml"]
    result = run_virtual_time(paths=paths, repeat=1)

    assert result.runs >= 2 and result.failed == 0
    assert result.virtual_seconds > 40  # scenario 10 alone waits out a 45 s ring timer
    assert 0 < result.run_wall_seconds <= result.total_wall_seconds
    assert result.speed > 1  # faster than real time, by any measure
    document = result.as_json()
    assert document["target"] == 1000 and document["runs"] == result.runs
    assert "speed" in result.table()


def test_scenarios_with_real_media_are_left_out_and_counted() -> None:
    paths = [LIBRARY / "01-cancel-while-ringing.yaml", LIBRARY / "50-media-call-both-ways.yaml"]
    result = run_virtual_time(paths=paths, repeat=1)

    assert result.real_time_left_out == 1
    assert result.runs >= 1 and result.failed == 0
    assert result.as_json()["real_time_left_out"] == 1
    assert "left out (real media, real time) | 1 scenarios" in result.table()
