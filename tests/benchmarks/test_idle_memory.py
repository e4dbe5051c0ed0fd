"""Smoke run of benchmarks/idle_memory.py with a few phones."""

from __future__ import annotations

import pytest

from benchmarks.idle_memory import run_idle_memory


@pytest.mark.timeout(60)
async def test_the_servers_memory_with_idle_phones_is_measured() -> None:
    result = await run_idle_memory(50, memory=True, settle=0.2)

    assert result.phones == 50
    assert 10 < result.baseline_mb <= result.peak_mb
    assert result.connected_mb >= result.baseline_mb * 0.9
    assert result.connect_seconds > 0
    assert result.as_json()["projected_mb_at_10000"] > 0
    assert "per idle phone" in result.table()
