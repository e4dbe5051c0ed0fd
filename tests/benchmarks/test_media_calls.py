"""Smoke run of benchmarks/media_calls.py: one real audio call, briefly."""

from __future__ import annotations

import pytest

from benchmarks.media_calls import run_media_calls


@pytest.mark.timeout(60)
async def test_one_real_audio_call_carries_frames_both_ways() -> None:
    result = await run_media_calls([1], hold=1.0)

    (step,) = result.steps
    assert step.calls == 1
    assert step.fps_min > 25  # frames flow both ways (50/s sent; a loaded CI box may lag)
    assert step.connect_ms_median < 5000
    assert result.as_json()["steps"][0]["calls"] == 1
    assert "real media calls per process" in result.table()
