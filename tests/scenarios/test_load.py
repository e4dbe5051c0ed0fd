"""The load generator: mixes, intended outcomes, percentiles, and real bounded runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from scenarios.cli import main
from scenarios.load import (
    LoadSettings,
    Outcome,
    intended,
    parse_mix,
    percentiles,
    run_load,
)
from scenarios.load_process import ServerProcess
from scenarios.profiles import load_profile
from signaling.calls import Cause


ROOT = Path(__file__).resolve().parents[2]
EVERY_OUTCOME = "cancel=20,answer=30,decline=10,no_answer=10,offline=15,blocked=15"


# --- The mix ------------------------------------------------------------------------------------


def test_a_mix_becomes_shares_that_sum_to_one() -> None:
    mix = parse_mix("cancel=30, answer=50,decline=10,no_answer=10,offline=0")
    assert mix == {
        Outcome.CANCEL: 0.3,
        Outcome.ANSWER: 0.5,
        Outcome.DECLINE: 0.1,
        Outcome.NO_ANSWER: 0.1,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cancel=30,hold=5", "unknown outcome 'hold'"),
        ("cancel", "is not NAME=SHARE"),
        ("cancel=lots", "not a number"),
        ("cancel=-1", "at least 0"),
        ("cancel=1,cancel=2", "appears twice"),
        ("cancel=0", "no positive share"),
    ],
)
def test_a_bad_mix_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mix(text)


# --- What each outcome should look like -------------------------------------------------------


def test_whatsapp_labels_each_outcome_as_its_behaviour_table_says() -> None:
    whatsapp = load_profile("whatsapp")
    labels = {}
    for outcome in Outcome:
        caller, callee = intended(outcome, whatsapp)
        labels[outcome] = (caller.label, None if callee is None else callee.label)
    assert labels == {
        Outcome.CANCEL: ("canceled", "missed"),
        Outcome.ANSWER: ("outgoing", "incoming"),
        Outcome.DECLINE: ("declined", "declined"),
        Outcome.NO_ANSWER: ("no_answer", "missed"),
        Outcome.OFFLINE: ("canceled", "missed"),
        Outcome.BLOCKED: ("canceled", None),
    }
    caller, callee = intended(Outcome.OFFLINE, whatsapp)
    assert (caller.reached, callee is not None and callee.reached) == (False, False)


def test_policies_change_what_is_intended() -> None:
    telegram_caller, _ = intended(Outcome.BLOCKED, load_profile("telegram"))
    assert telegram_caller.cause is Cause.BLOCKED  # telegram reveals a block at once
    twilio_caller, twilio_callee = intended(Outcome.DECLINE, load_profile("twilio"))
    assert (twilio_caller.cause, twilio_callee and twilio_callee.cause) == (
        Cause.BUSY,
        Cause.DECLINED,
    )
    _, sip_callee = intended(Outcome.OFFLINE, load_profile("sip"))
    assert sip_callee is None  # sip keeps no notice for an absent phone


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert percentiles(values) == {
        "count": 100,
        "p50": 50.0,
        "p95": 95.0,
        "p99": 99.0,
        "max": 100.0,
    }
    assert percentiles([]) == {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"phones": 1}, "phones must be"),
        ({"phones": 100_000}, "phones must be"),
        ({"duration": 0}, "duration"),
        ({"duration": 10_000}, "duration"),
        ({"rate": -1}, "rate"),
        ({"ring_timeout": 5, "step_timeout": 4}, "step_timeout"),
        ({"max_calls": 0}, "max_calls"),
    ],
)
def test_every_run_is_bounded(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadSettings(**changes).check()  # type: ignore[arg-type]


# --- Real runs ----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_every_outcome_is_judged_right_on_both_ends(tmp_path: Path) -> None:
    settings = LoadSettings(
        phones=9, duration=1.5, mix=parse_mix(EVERY_OUTCOME), ring_timeout=0.2, seed=3
    )
    report = await run_load(settings, workdir=tmp_path)

    assert report.passed, report.mismatches
    assert (report.phones, report.pairs) == (9, 3)
    assert report.calls_placed == report.calls_completed > 0
    assert set(report.judged) == set(report.outcomes)
    for outcome, tally in report.judged.items():
        assert tally == {"ok": report.outcomes[outcome]}, outcome
    if Outcome.BLOCKED in report.labels:
        assert set(report.labels[Outcome.BLOCKED]) == {"caller canceled / callee (none)"}
    assert report.offer_to_ringing["count"] == sum(
        report.outcomes[o]
        for o in (Outcome.CANCEL, Outcome.ANSWER, Outcome.DECLINE, Outcome.NO_ANSWER)
    )
    assert report.server_cpu_seconds is not None and report.server_rss_mb is not None
    assert report.error_frames == 0


@pytest.mark.timeout(60)
async def test_a_profile_s_policies_are_judged_end_to_end(tmp_path: Path) -> None:
    # Telegram tells a blocked caller at once and shows a decline as busy: the server runs
    # under it, and the judge expects exactly that.
    settings = LoadSettings(
        phones=6,
        duration=1.0,
        mix=parse_mix("blocked=1,decline=1"),
        profile="telegram",
        ring_timeout=0.2,
        seed=1,
    )
    report = await run_load(settings, memory=True, workdir=tmp_path)

    assert report.passed, report.mismatches
    telegram = load_profile("telegram")
    blocked_caller, _ = intended(Outcome.BLOCKED, telegram)
    declined_caller, declined_callee = intended(Outcome.DECLINE, telegram)
    assert (blocked_caller.cause, declined_caller.cause) == (Cause.BLOCKED, Cause.BUSY)
    assert declined_callee is not None
    labels = {outcome: set(counts) for outcome, counts in report.labels.items()}
    assert labels == {
        Outcome.BLOCKED: {f"caller {blocked_caller.label} / callee (none)"},
        Outcome.DECLINE: {f"caller {declined_caller.label} / callee {declined_callee.label}"},
    }


@pytest.mark.timeout(60)
async def test_a_relay_that_delivers_blocked_calls_is_caught(tmp_path: Path) -> None:
    # The bare relay knows nothing of blocks: the blocked callee rings, and the judge
    # must say so rather than count the call as done.
    relay = ServerProcess(
        [sys.executable, str(ROOT / "benchmarks" / "relay_python.py"), "0"],
        log_path=tmp_path / "relay.log",
    )
    url = await relay.start()
    try:
        settings = LoadSettings(
            phones=3, duration=0.5, mix=parse_mix("blocked=1"), ring_timeout=0.2, step_timeout=2
        )
        report = await run_load(settings, server=url, server_pid=relay.pid)
    finally:
        await relay.stop()

    assert not report.passed
    assert report.wrong >= report.calls_placed > 0
    assert any("logged a call from a phone it blocked" in m for m in report.mismatches)


@pytest.mark.timeout(60)
def test_the_command_prints_a_summary_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    result = CliRunner().invoke(
        main,
        ["load", "--phones", "4", "--duration", "1", "--mix", "answer=1,cancel=1",
         "--memory", "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output
    assert "offer → ringing" in result.output
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["passed"] is True
    assert document["pairs"] == 2
    assert document["calls_placed"] == sum(document["outcomes"].values()) > 0
    assert document["latency_ms"]["offer_to_ringing"]["p99"] is not None
    assert document["server_process"]["rss_mb"] > 0


@pytest.mark.parametrize(
    "args",
    [
        ["--phones", "1"],
        ["--mix", "cancel=1,dance=2"],
        ["--server", "ws://example.com:80"],
        ["--server-pid", "1"],
    ],
)
def test_bad_input_exits_2(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["load", *args])
    assert result.exit_code == 2, result.output
