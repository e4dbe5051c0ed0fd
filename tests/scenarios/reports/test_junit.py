"""JUnit XML: one suite, a case per scenario and profile, failures counted and explained."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scenarios.model import Scenario
from scenarios.observers import LogEntry
from scenarios.reports.junit import render_junit
from scenarios.runner import ScenarioResult


def entry(label: str, other: str, direction: str) -> LogEntry:
    return LogEntry(
        label=label,
        with_=other,
        direction=direction,
        kind="audio",
        reached=True,
        duration=None,
        call_id="c1",
        placed_at=0.0,
    )


def result(
    name: str = "caller cancels",
    *,
    path: str = "scenarios/library/01-cancel.yaml",
    profile: str = "whatsapp",
    failures: list[str] | None = None,
    wall: float = 0.0123,
) -> ScenarioResult:
    return ScenarioResult(
        scenario=Scenario(path=path, name=name),
        profile=profile,
        seed=0,
        failures=failures or [],
        logs={
            "alice": [entry("canceled", "bob", "outgoing")],
            "bob": [entry("missed", "alice", "incoming")],
            "carol": [],
        },
        virtual_seconds=3.1,
        wall_seconds=wall,
    )


def parse(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    (suite,) = root
    assert suite.tag == "testsuite"
    return suite


def test_one_case_per_scenario_and_profile_with_the_failures_counted() -> None:
    failing = result(
        profile="signal",
        failures=["alice: expected [missed], got [canceled]\n    !! 1. expected missed", "second"],
    )
    suite = parse(render_junit([result(), failing, result("no answer", path="lib/10.yaml")]))
    assert suite.get("tests") == "3"
    assert suite.get("failures") == "1"
    assert suite.get("errors") == "0"
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [
        "caller cancels [whatsapp]",
        "caller cancels [signal]",
        "no answer [whatsapp]",
    ]
    assert [case.get("classname") for case in cases] == [
        "scenarios.library.01-cancel",
        "scenarios.library.01-cancel",
        "lib.10",
    ]
    assert [case.get("time") for case in cases] == ["0.012", "0.012", "0.012"]
    assert suite.get("time") == "0.037"
    assert [len(case.findall("failure")) for case in cases] == [0, 1, 0]
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "alice: expected [missed], got [canceled]"
    assert failure.text == (
        "alice: expected [missed], got [canceled]\n    !! 1. expected missed\n\nsecond"
    )


def test_each_case_carries_its_call_logs() -> None:
    (case,) = parse(render_junit([result()])).findall("testcase")
    out = case.find("system-out")
    assert out is not None and out.text is not None
    lines = out.text.splitlines()
    assert "alice: canceled with bob (reached)" in lines
    assert "bob: missed with alice (reached)" in lines
    assert "carol: (no entry)" in lines


def test_no_scenario_is_an_empty_suite() -> None:
    suite = parse(render_junit([]))
    assert (suite.get("tests"), suite.get("failures"), list(suite)) == ("0", "0", [])


def test_any_text_gives_well_formed_xml() -> None:
    nasty = result(
        'a <b>"name"</b> & co',
        path="<string>",
        failures=["phone sent \x00\x1b[31m <bad> & ]]> \ud800 frames"],
    )
    (case,) = parse(render_junit([nasty])).findall("testcase")
    assert case.get("name") == 'a <b>"name"</b> & co [whatsapp]'
    assert case.get("classname") == "<string>"
    failure = case.find("failure")
    assert failure is not None and failure.text is not None
    assert "<bad> & ]]>" in failure.text
    assert "\x00" not in failure.text and "\x1b" not in failure.text


def test_an_absolute_path_under_the_working_folder_is_made_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    inside = result(path=str(tmp_path / "lib" / "01-cancel.yaml"))
    outside = result(path="/elsewhere/lib/02.yaml")
    cases = parse(render_junit([inside, outside])).findall("testcase")
    assert [case.get("classname") for case in cases] == ["lib.01-cancel", "elsewhere.lib.02"]
