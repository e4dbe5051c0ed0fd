"""The JSON document of DESIGN.md."""

from __future__ import annotations

import json

from scenarios.model import Scenario
from scenarios.observers import LogEntry
from scenarios.reports.json_document import render_json
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
