"""The ladder both the Mermaid and the HTML reports draw, checked as rows, not as text."""

from __future__ import annotations

from typing import Any

import pytest

from scenarios.model import PhoneSpec, Scenario
from scenarios.reports.ladder import (
    SERVER,
    Arrow,
    Note,
    as_number,
    by_scenario_file,
    format_seconds,
    ladder_of,
)
from scenarios.runner import ScenarioResult


def run(
    events: list[dict[str, Any]],
    phones: tuple[str, ...] = ("alice", "bob"),
    *,
    path: str = "library/synthetic.yaml",
    profile: str = "whatsapp",
) -> ScenarioResult:
    scenario = Scenario(
        path=path, name="synthetic", phones={phone: PhoneSpec(phone) for phone in phones}
    )
    return ScenarioResult(scenario=scenario, profile=profile, seed=0, events=events)


def frame(
    t: float, sender: str, receiver: str, kind: str, call_id: str | None = None
) -> dict[str, Any]:
    return {
        "event": "frame",
        "t": t,
        "sender": sender,
        "receiver": receiver,
        "type": kind,
        "call_id": call_id,
    }


def server_ends(t: float, cause: str, call_id: str = "c0ffee0123456789") -> dict[str, Any]:
    return {
        "event": "transition",
        "t": t,
        "who": SERVER,
        "call_id": call_id,
        "to": "ended",
        "cause": cause,
    }


def test_a_frame_is_an_arrow_labeled_with_its_type_and_a_short_call_id() -> None:
    ladder = ladder_of(run([frame(1.0, "alice", SERVER, "offer", "c0ffee0123456789")]))
    assert ladder.rows == (Arrow(1.0, "alice", SERVER, "offer", "c0ffee0123456789"),)
    (arrow,) = ladder.rows
    assert isinstance(arrow, Arrow)
    assert arrow.label == "offer c0ffee"
    assert Arrow(0.0, "alice", SERVER, "register", None).label == "register"


def test_callers_come_first_then_the_server_then_every_other_phone() -> None:
    events = [frame(0.0, "bob", SERVER, "register"), frame(0.5, "carol", SERVER, "offer", "c1")]
    ladder = ladder_of(run(events, ("alice", "bob", "carol")))
    assert ladder.participants == ("carol", SERVER, "alice", "bob")


def test_a_timer_firing_is_a_note_over_the_server() -> None:
    ladder = ladder_of(run([server_ends(30.0, "no_answer")]))
    assert ladder.rows == (Note(30.0, (SERVER,), "ring timer fired → no_answer"),)


def test_an_end_the_server_was_told_of_at_that_instant_is_no_timer() -> None:
    told = frame(3.0, "alice", SERVER, "hangup", "c0ffee0123456789")
    ladder = ladder_of(run([told, server_ends(3.0, "unreachable")]))
    assert [type(row) for row in ladder.rows] == [Arrow]


def test_connections_radio_and_errors_are_notes_over_who_they_concern() -> None:
    events = [
        frame(0.0, "alice", SERVER, "register"),
        {"event": "link", "phone": "alice", "state": "no_signal", "t": 1.0},
        {"event": "connection", "who": "alice", "state": "lost", "code": 1006, "t": 2.0},
        {"event": "connection", "who": "stranger", "state": "closed", "t": 2.5},
        {"event": "connection", "who": "alice", "state": "opened", "t": 2.6},
        {"event": "error", "who": "bob", "code": "busy", "message": "no", "t": 3.0},
        {"event": "server", "state": "restarted", "t": 4.0},
    ]
    notes = [row for row in ladder_of(run(events)).rows if isinstance(row, Note)]
    assert notes == [
        Note(1.0, ("alice",), "signal lost"),
        Note(2.0, ("alice", SERVER), "connection lost (code 1006)"),
        Note(2.5, (SERVER,), "connection closed"),
        Note(3.0, ("bob",), "error busy: no"),
        Note(4.0, (SERVER,), "server restarted"),
    ]


@pytest.mark.parametrize(
    ("t", "text"), [(3.0, "3.0"), (0.25, "0.25"), (45.0, "45.0"), (0.1239, "0.124")]
)
def test_format_seconds_keeps_one_to_three_decimals(t: float, text: str) -> None:
    assert format_seconds(t) == text


def test_as_number_reads_numbers_only() -> None:
    assert (as_number(2), as_number(0.5), as_number(None), as_number("3")) == (2.0, 0.5, 0.0, 0.0)


def test_by_scenario_file_keeps_the_order_runs_first_come_in() -> None:
    a1, b1, a2 = run([], path="a.yaml"), run([], path="b.yaml"), run([], path="a.yaml")
    assert by_scenario_file([a1, b1, a2]) == {"a.yaml": [a1, a2], "b.yaml": [b1]}
