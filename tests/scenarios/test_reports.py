"""Reports: the JSON document of DESIGN.md, the timeline, the per-scenario block, the summary."""

from __future__ import annotations

import json

import click
import pytest

from scenarios.model import Scenario
from scenarios.observers import LogEntry
from scenarios.reports import render_json, render_scenario, render_summary, render_timeline
from scenarios.runner import ScenarioResult


DESIGN_SCENARIO_KEYS = {
    "file",
    "name",
    "passed",
    "failures",
    "phones",
    "virtual_seconds",
    "wall_seconds",
}
DESIGN_ENTRY_KEYS = ["label", "with", "direction", "kind", "reached", "duration"]


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


# --- render_json ------------------------------------------------------------------------------


def test_render_json_is_the_design_document() -> None:
    failing = result("bad", failures=["alice: expected [missed], got [canceled]"])
    document = json.loads(render_json([result("good"), failing]))
    assert set(document) == {"passed", "failed", "scenarios"}
    assert (document["passed"], document["failed"]) == (1, 1)
    good, bad = document["scenarios"]
    assert set(good) >= DESIGN_SCENARIO_KEYS
    assert good["file"] == "library/good.yaml"
    assert good["name"] == "scenario good"
    assert good["passed"] is True
    assert good["failures"] == []
    assert bad["passed"] is False
    assert bad["failures"] == ["alice: expected [missed], got [canceled]"]
    assert good["virtual_seconds"] == 3.142
    assert good["wall_seconds"] == 0.027


def test_render_json_gives_each_phone_its_log() -> None:
    (scenario,) = json.loads(render_json([result()]))["scenarios"]
    phones = scenario["phones"]
    assert list(phones) == ["alice", "bob", "carol"]
    for phone in phones.values():
        assert set(phone) == {"log"}
        for item in phone["log"]:
            assert list(item) == DESIGN_ENTRY_KEYS
    assert phones["alice"]["log"] == [
        {
            "label": "canceled",
            "with": "bob",
            "direction": "outgoing",
            "kind": "audio",
            "reached": True,
            "duration": None,
        }
    ]
    assert phones["bob"]["log"][0]["label"] == "missed"
    assert phones["carol"]["log"] == []


def test_render_json_of_no_scenario() -> None:
    assert json.loads(render_json([])) == {"passed": 0, "failed": 0, "scenarios": []}


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
