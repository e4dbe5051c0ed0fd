"""The terminal block's call-log table and profile tag (the rest is in test_reports.py)."""

from __future__ import annotations

import click

from scenarios.model import Scenario
from scenarios.observers import LogEntry
from scenarios.reports import render_scenario
from scenarios.runner import ScenarioResult


def entry(label: str, other: str, direction: str, **overrides: object) -> LogEntry:
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
    first, header, rule, *rows = lines_of(render_scenario(result()))
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
    (row,) = lines_of(render_scenario(result(logs=long)))[3:]
    assert row.split()[:3] == ["alice", "canceled", "with"]


def test_the_styles_are_only_styles() -> None:
    text = render_scenario(result())
    assert "\x1b[" in text  # styled for a terminal; click.echo drops it elsewhere
    assert "\x1b" not in click.unstyle(text)  # nothing but SGR codes, which unstyle removes


def test_the_profile_is_named_when_it_is_not_the_scenarios_own() -> None:
    assert lines_of(render_scenario(result("signal")))[0].startswith("PASS  busy [signal]  (")
    assert lines_of(render_scenario(result()))[0].startswith("PASS  busy  (")
    shown = render_scenario(result(), show_profile=True)
    assert lines_of(shown)[0].startswith("PASS  busy [whatsapp]  (")
    hidden = render_scenario(result("signal"), show_profile=False)
    assert lines_of(hidden)[0].startswith("PASS  busy  (")
