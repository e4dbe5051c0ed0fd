"""The terminal report: the timeline, the per-scenario block and its call-log table, the summary."""

from __future__ import annotations

import click
import pytest

from scenarios.model import Scenario
from scenarios.observers import LogEntry
from scenarios.reports.terminal import render_scenario, render_summary, render_timeline
from scenarios.runner import ScenarioResult


def entry(label: str | None, other: str, direction: str, **overrides: object) -> LogEntry:
    fields: dict[str, object] = {
        "label": label,
        "with_": other,
        "direction": direction,
        "kind": "audio",
        "reached": True,
        "duration": None,
        "call_id": "c1",
        "placed_at": 0.0,
    }
    fields.update(overrides)
    return LogEntry(**fields)  # type: ignore[arg-type]


def result(
    name: str = "cancel",
    *,
    failures: list[str] | None = None,
    virtual: float = 3.14159,
    wall: float = 0.02718,
    events: list[dict[str, object]] | None = None,
) -> ScenarioResult:
    return ScenarioResult(
        scenario=Scenario(path=f"library/{name}.yaml", name=f"scenario {name}"),
        profile="whatsapp",
        seed=0,
        failures=failures or [],
        logs={
            "alice": [entry("canceled", "bob", "outgoing")],
            "bob": [entry("missed", "alice", "incoming")],
            "carol": [],
        },
        events=events or [],
        virtual_seconds=virtual,
        wall_seconds=wall,
    )


# --- render_timeline --------------------------------------------------------------------------


EVENTS: list[dict[str, object]] = [
    {"event": "server_started", "url": "ws://127.0.0.1:1", "t": 0.0},
    {"event": "connection", "conn": 1, "state": "opened", "t": 0.0},
    {"event": "frame", "sender": "alice", "receiver": "server", "type": "register", "t": 0.0},
    {"event": "step", "index": 0, "line": 4, "do": "alice calls bob", "t": 0.0},
    {
        "event": "frame",
        "sender": "alice",
        "receiver": "server",
        "type": "offer",
        "call_id": "abc",
        "t": 0.0,
    },
    {
        "event": "transition",
        "who": "bob",
        "call_id": "abc",
        "from": "new",
        "to": "ringing",
        "cause": "reached",
        "t": 0.25,
    },
    {"event": "heartbeat", "who": "alice", "t": 5.0},
    {"event": "step", "index": 1, "line": 6, "do": "alice hangs up", "t": 12.5},
]


def test_render_timeline_narrates_steps_frames_and_transitions() -> None:
    lines = [click.unstyle(line) for line in render_timeline(EVENTS)]
    assert [line.strip() for line in lines] == [
        "0.000  alice → server: register",
        "0.000  step 1: alice calls bob",
        "0.000  alice → server: offer [abc]",
        "0.250  bob: call new → ringing (reached) [abc]",
        "12.500  step 2: alice hangs up",
    ]


def test_render_timeline_aligns_the_times() -> None:
    lines = [click.unstyle(line) for line in render_timeline(EVENTS)]
    starts = {line.index("  ", line.index(".")) for line in lines}
    assert len(starts) == 1  # the text starts in one column whatever the time's width


def test_render_timeline_of_other_events() -> None:
    events = [
        {"event": "screen", "who": "alice", "previous": "idle", "screen": "calling", "t": 1.0},
        {"event": "link", "phone": "bob", "state": "no_signal", "t": 2.0},
        {"event": "connection", "who": "bob", "state": "lost", "code": 1006, "t": 3.0},
        {"event": "server", "state": "crashed", "t": 4.0},
    ]
    lines = [click.unstyle(line).strip() for line in render_timeline(events)]
    assert lines == [
        "1.000  alice: screen idle → calling",
        "2.000  bob: radio no_signal",
        "3.000  bob: connection lost (code 1006)",
        "4.000  server crashed",
    ]


# --- render_scenario and render_summary --------------------------------------------------------


def test_render_scenario_shows_the_verdict_and_each_log() -> None:
    text = click.unstyle(render_scenario(result()))
    first, *rest = text.splitlines()
    assert first.startswith("PASS  scenario cancel  (library/cancel.yaml)")
    assert "3.1s scenario time" in first
    assert any(line.split() == ["alice", "canceled", "with", "bob", "(reached)"] for line in rest)
    assert any(line.split() == ["carol", "(no", "entry)"] for line in rest)
    assert "step 1" not in text


def test_render_scenario_shows_each_failure_line() -> None:
    failure = "alice: expected [missed], got [canceled]\n    !! 1. expected missed  got canceled"
    text = click.unstyle(render_scenario(result(failures=[failure])))
    assert text.startswith("FAIL")
    assert "✗ alice: expected [missed], got [canceled]" in text
    assert "!! 1. expected missed  got canceled" in text


def test_render_scenario_verbose_adds_the_timeline() -> None:
    text = click.unstyle(render_scenario(result(events=EVENTS), verbose=True))
    assert "step 1: alice calls bob" in text
    assert "bob: call new → ringing (reached) [abc]" in text


@pytest.mark.parametrize(
    ("failing", "expected"),
    [(0, "3 passed, 0 failed"), (1, "2 passed, 1 failed"), (3, "0 passed, 3 failed")],
)
def test_render_summary_counts(failing: int, expected: str) -> None:
    results = [
        result(str(i), failures=["x"] if i < failing else None, virtual=10.0, wall=0.1)
        for i in range(3)
    ]
    assert render_summary(results) == f"{expected} (30.0s of scenario time in 0.30s wall time)"


# --- the call-log table and the profile tag ----------------------------------------------------


def busy_result(
    profile: str = "whatsapp", logs: dict[str, list[LogEntry]] | None = None
) -> ScenarioResult:
    return ScenarioResult(
        scenario=Scenario(path="library/busy.yaml", name="busy", profile="whatsapp"),
        profile=profile,
        seed=0,
        logs=logs
        if logs is not None
        else {
            "alice": [
                entry("outgoing", "bob", "outgoing", duration=40.0),
                entry("missed", "carol", "incoming", reached=False),
            ],
            "[bold]carol[/bold]": [entry("busy", "alice", "outgoing", reached=False)],
            "dave": [],
        },
    )


def lines_of(text: str) -> list[str]:
    return click.unstyle(text).splitlines()


def test_the_call_logs_are_a_table_with_one_entry_a_line() -> None:
    first, header, rule, *rows = lines_of(render_scenario(busy_result()))
    assert first.startswith("PASS  busy  (library/busy.yaml)")
    assert header.split() == ["phone", "call", "log"]
    assert set(rule.strip()) == {"─"}
    assert [row.split() for row in rows] == [
        ["alice", "outgoing", "with", "bob", "(reached,", "40s)"],
        ["missed", "with", "carol", "(not", "reached)"],
        ["[bold]carol[/bold]", "busy", "with", "alice", "(not", "reached)"],  # not markup
        ["dave", "(no", "entry)"],
    ]
    # One column: every entry starts where the first does, and nothing trails.
    firsts = ["outgoing", "missed", "busy", "(no"]
    starts = {row.index(word) for row, word in zip(rows, firsts, strict=True)}
    assert len(starts) == 1
    assert all(row == row.rstrip() for row in [header, *rows])


def test_a_long_log_is_not_wrapped() -> None:
    long = {"alice": [entry("canceled", "bob" * 60, "outgoing")]}
    (row,) = lines_of(render_scenario(busy_result(logs=long)))[3:]
    assert row.split()[:3] == ["alice", "canceled", "with"]


def test_the_styles_are_only_styles() -> None:
    text = render_scenario(busy_result())
    assert "\x1b[" in text  # styled for a terminal; click.echo drops it elsewhere
    assert "\x1b" not in click.unstyle(text)  # nothing but SGR codes, which unstyle removes


def test_the_profile_is_named_when_it_is_not_the_scenarios_own() -> None:
    assert lines_of(render_scenario(busy_result("signal")))[0].startswith("PASS  busy [signal]  (")
    assert lines_of(render_scenario(busy_result()))[0].startswith("PASS  busy  (")
    shown = render_scenario(busy_result(), show_profile=True)
    assert lines_of(shown)[0].startswith("PASS  busy [whatsapp]  (")
    hidden = render_scenario(busy_result("signal"), show_profile=False)
    assert lines_of(hidden)[0].startswith("PASS  busy  (")
