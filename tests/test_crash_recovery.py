"""The crash test of ``scripts/crash_recovery.py``, small enough for every CI run.

A real ``voip-sandbox serve`` process is killed with SIGKILL while 20 calls ring and 10
missed-call notices wait in its SQLite file, then started again on the same file and port;
the phones (real clients, real time, 127.0.0.1) reconnect by themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.crash_recovery import run_crash_test_async


@pytest.mark.timeout(120)
async def test_no_notice_is_lost_or_duplicated_and_every_call_ends(tmp_path: Path) -> None:
    result = await run_crash_test_async(20, workdir=tmp_path, seed=1, phase_timeout=60.0)

    assert result.passed, "\n".join(result.failures)
    assert result.phones == 60
    assert result.calls_placed == 30
    assert result.notices_on_disk_before_kill == 10
    assert result.ringing_on_disk_before_kill == 20
    assert (result.notices_expected, result.notices_delivered) == (10, 10)
    assert (result.notices_lost, result.notices_duplicated) == (0, 0)
    assert result.labels == {
        "callee: missed": 10,
        "caller: canceled": 10,
        "ringing callee: missed": 20,
        "ringing caller: canceled": 20,
    }
    for figure in (result.time_to_kill, result.restart_time, result.reregister_time):
        assert figure is not None and figure > 0
    assert result.terminal_time is not None
    assert result.reregister_time is not None
    assert result.terminal_time >= result.reregister_time


async def test_a_used_store_file_is_refused(tmp_path: Path) -> None:
    used = tmp_path / "used.db"
    used.write_bytes(b"")
    with pytest.raises(ValueError, match="fresh file"):
        await run_crash_test_async(4, workdir=tmp_path, db=used)
