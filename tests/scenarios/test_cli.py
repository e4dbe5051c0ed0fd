"""The ``voip-sandbox`` command: exit codes, output formats, the event log, refusals."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result

import scenarios.cli as cli
from scenarios.cli import main
from scenarios.profiles import load_profile


LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"
CANCEL = LIBRARY / "01-cancel-while-ringing.yaml"
NO_ANSWER = LIBRARY / "10-no-answer.yaml"

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

WRONG = """\
name: a wrong expectation
phones: {alice: {}, bob: {}}
steps:
  - at: 0s
    do: alice calls bob
  - when: bob rings
    after: 1s
    do: alice hangs up
expect:
  alice: missed
  bob: missed
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- run ---------------------------------------------------------------------------------------


def test_run_on_the_library_exits_0() -> None:
    count = len(list(LIBRARY.glob("*.yaml")))
    outcome = invoke("run", str(LIBRARY))
    assert outcome.exit_code == 0, outcome.output
    assert f"{count} passed, 0 failed" in outcome.stdout
    assert outcome.stdout.count("PASS  ") == count
    assert "FAIL" not in outcome.stdout


def test_run_format_json_prints_one_design_document() -> None:
    count = len(list(LIBRARY.glob("*.yaml")))
    outcome = invoke("run", str(LIBRARY), "--format", "json")
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.stdout)  # the whole output is one document
    assert set(document) == {"passed", "failed", "scenarios"}
    assert (document["passed"], document["failed"]) == (count, 0)
    assert len(document["scenarios"]) == count
    for scenario in document["scenarios"]:
        assert set(scenario) >= DESIGN_SCENARIO_KEYS, scenario.keys()
        assert scenario["passed"] is True
        assert scenario["failures"] == []
        assert isinstance(scenario["virtual_seconds"], float)
        assert isinstance(scenario["wall_seconds"], float)
        for phone in scenario["phones"].values():
            assert set(phone) == {"log"}
            for entry in phone["log"]:
                assert list(entry) == DESIGN_ENTRY_KEYS
    first = document["scenarios"][0]
    assert first["file"].endswith("01-cancel-while-ringing.yaml")
    assert first["phones"]["alice"]["log"] == [
        {
            "label": "canceled",
            "with": "bob",
            "direction": "outgoing",
            "kind": "audio",
            "reached": True,
            "duration": None,
        }
    ]


def test_a_failing_scenario_exits_1_and_shows_the_diff(tmp_path: Path) -> None:
    wrong = write(tmp_path, "wrong.yaml", WRONG)
    outcome = invoke("run", str(CANCEL), str(wrong))
    assert outcome.exit_code == 1, outcome.output
    assert "FAIL  a wrong expectation" in outcome.stdout
    assert "alice: expected [missed], got [canceled]" in outcome.stdout
    assert "!! 1. expected missed" in outcome.stdout
    assert "1 passed, 1 failed" in outcome.stdout


def test_a_failing_scenario_in_json_exits_1(tmp_path: Path) -> None:
    wrong = write(tmp_path, "wrong.yaml", WRONG)
    outcome = invoke("run", str(CANCEL), str(wrong), "--format", "json")
    assert outcome.exit_code == 1, outcome.output
    document = json.loads(outcome.stdout)
    assert (document["passed"], document["failed"]) == (1, 1)
    bad = document["scenarios"][1]
    assert bad["passed"] is False
    assert bad["failures"][0].startswith("alice: expected [missed], got [canceled]")


def test_a_bad_yaml_file_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        """\
        name: typo
        phones: {alice: {}, bob: {}}
        stepz:
          - at: 0s
            do: alice calls bob
        """,
    )
    outcome = invoke("run", str(CANCEL), str(bad))
    assert outcome.exit_code == 2, outcome.output
    assert f"{bad}:3:" in outcome.stderr
    assert "stepz" in outcome.stderr
    assert "PASS" not in outcome.stdout  # nothing runs when an input is bad


def test_a_file_that_is_not_yaml_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "name: x\nphones: {alice: {}\n")
    outcome = invoke("run", str(bad))
    assert outcome.exit_code == 2, outcome.output
    assert f"{bad}:2:" in outcome.stderr


def test_an_unknown_label_exits_2(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", WRONG.replace("bob: missed", "bob: mised"))
    outcome = invoke("run", str(bad))
    assert outcome.exit_code == 2, outcome.output
    assert f"{bad}:11:" in outcome.stderr
    assert "mised" in outcome.stderr


def test_a_missing_path_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    outcome = invoke("run", str(missing))
    assert outcome.exit_code == 2, outcome.output
    assert str(missing) in outcome.stderr
    assert "no such file" in outcome.stderr


def test_an_empty_folder_exits_2(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a scenario", encoding="utf-8")
    outcome = invoke("run", str(tmp_path))
    assert outcome.exit_code == 2, outcome.output
    assert "no scenario files" in outcome.stderr


def test_run_needs_a_path() -> None:
    assert invoke("run").exit_code == 2


def test_run_with_the_profile_option(tmp_path: Path) -> None:
    assert invoke("run", str(CANCEL), "--profile", "whatsapp").exit_code == 0
    assert invoke("run", str(CANCEL), "--profile", "nosuchapp").exit_code == 2


def test_run_with_another_seed_still_passes() -> None:
    outcome = invoke("run", str(CANCEL), "--seed", "42", "--format", "json")
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["scenarios"][0]["seed"] == 42


def test_log_writes_json_lines_with_frames_and_transitions_in_virtual_time(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    outcome = invoke("run", str(NO_ANSWER), "--log", str(log))
    assert outcome.exit_code == 0, outcome.output
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert events
    assert all(isinstance(e["t"], int | float) for e in events)
    kinds = {e["event"] for e in events}
    assert {"frame", "transition", "step"} <= kinds
    # The ring timer fires 45 s into the scenario: that is the time the events carry.
    endings = [e["t"] for e in events if e["event"] == "transition" and e["to"] == "ended"]
    assert endings and min(endings) == pytest.approx(45.0)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)


def test_log_of_several_scenarios_keeps_them_all(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    outcome = invoke("run", str(CANCEL), str(NO_ANSWER), "--log", str(log))
    assert outcome.exit_code == 0, outcome.output
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    steps = [e["do"] for e in events if e["event"] == "step"]
    assert steps == ["alice calls bob", "alice hangs up", "alice calls bob"]


def test_a_log_file_that_cannot_be_written_exits_2(tmp_path: Path) -> None:
    # A bad flag is bad input (exit 2) with a clear error, not a crash (DESIGN.md rule 5).
    log = tmp_path / "no-such-folder" / "events.jsonl"
    outcome = invoke("run", str(CANCEL), "--log", str(log))
    assert not isinstance(outcome.exception, OSError), repr(outcome.exception)
    assert outcome.exit_code == 2, outcome.output
    assert str(log) in outcome.stderr


def test_verbose_prints_the_timeline() -> None:
    outcome = invoke("run", str(CANCEL), "-v")
    assert outcome.exit_code == 0, outcome.output
    assert "step 1: alice calls bob" in outcome.stdout
    assert "step 2: alice hangs up" in outcome.stdout
    assert "alice → server: offer" in outcome.stdout
    assert "bob: call new → ringing (reached)" in outcome.stdout
    quiet = invoke("run", str(CANCEL))
    assert "step 1: alice calls bob" not in quiet.stdout


# --- labels, serve, help -----------------------------------------------------------------------


def test_labels_prints_whatsapp_keys_and_texts() -> None:
    outcome = invoke("labels")
    assert outcome.exit_code == 0, outcome.output
    assert "whatsapp (WhatsApp)" in outcome.stdout
    lines = outcome.stdout.splitlines()
    for key, label in load_profile("whatsapp").labels.items():
        assert any(line.split()[:1] == [key] and label.text in line for line in lines), (
            f"no line for {key}: {label.text}"
        )


def test_labels_for_one_profile() -> None:
    outcome = invoke("labels", "--profile", "whatsapp")
    assert outcome.exit_code == 0, outcome.output
    assert "Missed call" in outcome.stdout
    assert invoke("labels", "--profile", "nosuchapp").exit_code == 2


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_serve_refuses_a_host_other_than_loopback(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    def must_not_serve(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"serve built a server for {host}")

    monkeypatch.setattr(cli, "SignalingServer", must_not_serve)
    monkeypatch.setattr(structlog, "configure", lambda **kwargs: None)
    outcome = invoke("serve", "--host", host, "--port", "0")
    assert outcome.exit_code == 2, outcome.output
    assert "--host" in outcome.output
    assert "loopback" in outcome.output


@pytest.mark.parametrize("command", [[], ["run"], ["serve"], ["labels"]])
def test_help_works_for_each_command(command: list[str]) -> None:
    for flag in ("--help", "-h"):
        outcome = invoke(*command, flag)
        assert outcome.exit_code == 0, outcome.output
        assert outcome.stdout.startswith(f"Usage: main {' '.join(command)}".rstrip())
    if not command:
        for sub in ("run", "serve", "labels"):
            assert sub in outcome.stdout
