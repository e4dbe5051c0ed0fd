"""Smoke run of benchmarks/throughput.py: every server, tiny, so the benchmark keeps working."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks.throughput import (
    NODE_RELAY,
    OURS,
    OURS_MEMORY,
    PYTHON_RELAY,
    TARGETS,
    run_throughput,
)


@pytest.mark.timeout(120)
async def test_every_server_is_driven_by_the_same_generator_and_judged(tmp_path: Path) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing = "node and npm are not installed: the Node relay cannot run"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; .ci/run installs them, so CI must have them")
        pytest.skip(f"{missing} (apt-get install nodejs npm)")
    result = await run_throughput(pairs=(2,), duration=0.5, repeat=1, workdir=tmp_path)

    assert result.skipped == {}
    assert [r.target for r in result.rows] == list(TARGETS)
    for row in result.rows:
        assert row.calls > 0, row.target
        assert row.wrong == 0, (row.target, row.report["mismatches"])
        assert row.calls_per_second > 0
        assert row.ringing_p99_ms is not None
        assert row.server_cpu_percent is not None
    against = {(x["server"], x["against"]) for x in result.ratios()}
    assert against == {(o, r) for o in (OURS, OURS_MEMORY) for r in (PYTHON_RELAY, NODE_RELAY)}
    table = result.table()
    assert "| node relay | 2 |" in table and "calls/s ratio" in table
    assert result.as_json()["rows"][0]["report"]["passed"] is True


async def test_a_missing_node_is_reported_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = await run_throughput(
        pairs=(1,), duration=0.3, repeat=1, targets=(PYTHON_RELAY, NODE_RELAY), workdir=tmp_path
    )
    assert "node and npm are not installed" in result.skipped[NODE_RELAY]
    assert [r.target for r in result.rows] == [PYTHON_RELAY]
    assert "skipped node relay" in result.table()
