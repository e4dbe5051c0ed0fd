"""The ``voip-sandbox`` command: exit codes, output formats, the event log, refusals."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result
from websockets.asyncio.client import ClientConnection, connect

import scenarios.cli as cli
import scenarios.reports
import scenarios.runner
from scenarios.cli import main
from scenarios.load_process import ServerProcess, serve_command
from scenarios.loader import discover, load_scenario
from scenarios.model import Scenario
from scenarios.profiles import load_profile, profile_names
from scenarios.runner import profiles_to_run
from signaling.messages import (
    Decline,
    Offer,
    PhoneMessage,
    Register,
    Ringing,
    parse_server_message,
    serialize_message,
)


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


def runs_of(*paths: Path) -> int:
    """How many runs ``voip-sandbox run PATHS`` makes: one per scenario and profile."""
    scenarios = [load_scenario(path) for path in discover(paths)]
    return sum(len(profiles_to_run(scenario, None)) for scenario in scenarios)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- run ---------------------------------------------------------------------------------------


def test_run_on_the_library_exits_0() -> None:
    count = runs_of(LIBRARY)  # each scenario under its profile and its expect_profiles'
    outcome = invoke("run", str(LIBRARY))
    assert outcome.exit_code == 0, outcome.output
    assert f"{count} passed, 0 failed" in outcome.stdout
    assert outcome.stdout.count("PASS  ") == count
    assert "FAIL" not in outcome.stdout


def test_run_format_json_prints_one_design_document() -> None:
    count = runs_of(LIBRARY)
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
    assert f"{runs_of(CANCEL)} passed, 1 failed" in outcome.stdout


def test_a_failing_scenario_in_json_exits_1(tmp_path: Path) -> None:
    wrong = write(tmp_path, "wrong.yaml", WRONG)
    outcome = invoke("run", str(CANCEL), str(wrong), "--format", "json")
    assert outcome.exit_code == 1, outcome.output
    document = json.loads(outcome.stdout)
    assert (document["passed"], document["failed"]) == (runs_of(CANCEL), 1)
    bad = document["scenarios"][-1]
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
    outcome = invoke("run", str(NO_ANSWER), "--log", str(log), "--profile", "whatsapp")
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
    outcome = invoke("run", str(CANCEL), str(NO_ANSWER), "--log", str(log), "--profile", "whatsapp")
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


# --- profiles, reports, progress ---------------------------------------------------------------


def test_profiles_runs_each_scenario_under_each_named_profile() -> None:
    first, second = profile_names()[:2]
    outcome = invoke(
        "run", str(CANCEL), str(NO_ANSWER), "--profiles", f"{second}, {first},{second}"
    )
    assert outcome.exit_code in (0, 1), outcome.output
    outcome = invoke(
        "run", str(CANCEL), str(NO_ANSWER), "--profiles", f"{second},{first}", "--format", "json"
    )
    runs = [(Path(s["file"]).name, s["profile"]) for s in json.loads(outcome.stdout)["scenarios"]]
    assert runs == [
        (CANCEL.name, second),
        (CANCEL.name, first),
        (NO_ANSWER.name, second),
        (NO_ANSWER.name, first),
    ]


def test_profiles_all_means_every_profile() -> None:
    outcome = invoke("run", str(CANCEL), "--profiles", "all", "--format", "json")
    assert outcome.exit_code in (0, 1), outcome.output
    profiles = [s["profile"] for s in json.loads(outcome.stdout)["scenarios"]]
    assert profiles == profile_names()


def test_each_block_names_its_profile_when_a_scenario_runs_under_several() -> None:
    first, second = profile_names()[:2]
    outcome = invoke("run", str(CANCEL), "--profiles", f"{first},{second}")
    for name in (first, second):
        assert f"  caller cancels while ringing [{name}]  (" in outcome.stdout
    alone = invoke("run", str(CANCEL), "--profile", "whatsapp")
    assert "PASS  caller cancels while ringing  (" in alone.stdout


def test_which_profiles_is_up_to_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, list[str] | None]] = []

    def choose(scenario: Scenario, requested: list[str] | None) -> list[str]:
        asked.append((scenario.name, None if requested is None else list(requested)))
        return ["whatsapp", "whatsapp"]

    monkeypatch.setattr(scenarios.runner, "profiles_to_run", choose)
    outcome = invoke("run", str(CANCEL), "--format", "json")
    assert outcome.exit_code == 0, outcome.output
    assert len(json.loads(outcome.stdout)["scenarios"]) == 2
    assert invoke("run", str(CANCEL), "--profile", "whatsapp").exit_code == 0
    assert invoke("run", str(CANCEL), "--profiles", "whatsapp").exit_code == 0
    assert asked == [
        ("caller cancels while ringing", None),
        ("caller cancels while ringing", ["whatsapp"]),
        ("caller cancels while ringing", ["whatsapp"]),
    ]


def test_an_unknown_profile_from_the_runner_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        scenarios.runner, "profiles_to_run", lambda scenario, requested: ["nosuchapp"]
    )
    outcome = invoke("run", str(CANCEL))
    assert outcome.exit_code == 2, outcome.output
    assert "nosuchapp" in outcome.stderr and str(CANCEL) in outcome.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--profiles", "whatsapp,nosuchapp,nope"],
            ["'nosuchapp', 'nope'", "known profiles", "whatsapp"],
        ),
        (["--profiles", "whatsapp,,"], ["empty name"]),
        (["--profiles", ""], ["empty name"]),
        (["--profile", "whatsapp", "--profiles", "whatsapp"], ["--profile and --profiles"]),
    ],
)
def test_bad_profiles_exit_2_before_anything_runs(args: list[str], words: list[str]) -> None:
    outcome = invoke("run", str(CANCEL), *args)
    assert outcome.exit_code == 2, outcome.output
    for word in words:
        assert word in outcome.stderr
    assert "PASS" not in outcome.stdout


def test_report_writes_the_page_and_a_ladder_per_run(tmp_path: Path) -> None:
    wrong = write(tmp_path, "wrong.yaml", WRONG)
    report = tmp_path / "report"
    outcome = invoke(
        "run", str(CANCEL), str(wrong), "--report", str(report), "--profile", "whatsapp"
    )
    assert outcome.exit_code == 1, outcome.output
    assert sorted(p.name for p in report.iterdir()) == [
        "01-cancel-while-ringing.mmd",
        "index.html",
        "wrong.mmd",
    ]
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "caller cancels while ringing" in page and "a wrong expectation" in page
    assert '<span class="fail">FAIL</span>' in page
    ladder = (report / "wrong.mmd").read_text(encoding="utf-8")
    assert ladder.startswith("sequenceDiagram\n")


def test_report_under_two_profiles_names_each_ladder_and_compares_labels(tmp_path: Path) -> None:
    names = profile_names()
    assert len(names) >= 2, names
    report = tmp_path / "report"
    outcome = invoke("run", str(CANCEL), "--profiles", ",".join(names[:2]), "--report", str(report))
    assert outcome.exit_code in (0, 1), outcome.output
    assert sorted(p.name for p in report.glob("*.mmd")) == sorted(
        f"01-cancel-while-ringing.{name}.mmd" for name in names[:2]
    )
    assert '<table class="profiles">' in (report / "index.html").read_text(encoding="utf-8")


def test_junit_writes_a_case_per_run(tmp_path: Path) -> None:
    wrong = write(tmp_path, "wrong.yaml", WRONG)
    junit = tmp_path / "junit.xml"
    outcome = invoke(
        "run",
        str(CANCEL),
        str(wrong),
        "--junit",
        str(junit),
        "--format",
        "json",
        "--profile",
        "whatsapp",
    )
    assert outcome.exit_code == 1, outcome.output
    json.loads(outcome.stdout)  # the JSON document is untouched
    (suite,) = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names == ["caller cancels while ringing [whatsapp]", "a wrong expectation [whatsapp]"]


@pytest.mark.parametrize("flag", ["--report", "--junit"])
def test_an_output_that_cannot_be_written_exits_2_before_anything_runs(
    tmp_path: Path, flag: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way", encoding="utf-8")
    target = blocker / "out" if flag == "--report" else tmp_path / "no-such-folder" / "junit.xml"
    outcome = invoke("run", str(CANCEL), flag, str(target))
    assert not isinstance(outcome.exception, OSError), repr(outcome.exception)
    assert outcome.exit_code == 2, outcome.output
    assert str(target) in outcome.stderr
    assert "PASS" not in outcome.stdout


def test_a_report_that_fails_to_be_written_at_the_end_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(directory: Path, results: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scenarios.reports, "write_html_report", full)
    outcome = invoke("run", str(CANCEL), "--report", str(tmp_path / "report"))
    assert outcome.exit_code == 2, outcome.output
    assert "No space left on device" in outcome.stderr
    assert f"{runs_of(CANCEL)} passed" in outcome.stdout  # what ran is still reported


def test_no_progress_bar_unless_stderr_is_a_terminal() -> None:
    outcome = invoke("run", str(CANCEL), str(NO_ANSWER))
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stderr == ""


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_on_a_terminal_for_several_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli._Progress(1).bar is None  # one run: nothing to follow
    with cli._Progress(2) as progress:
        assert progress.bar is not None
        progress.running("first [whatsapp]")  # brackets are not markup
        progress.finished()
        progress.bar.refresh()
        assert "first [whatsapp]" in terminal.getvalue()
        assert "1/2" in terminal.getvalue()


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


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])  # rejected
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


# What `serve` imports: the idle-memory budget is per server process, and aiortc
# with PyAV is ~50 MB of it that a signaling server never uses.
MEDIA_PACKAGES = ("aiortc", "av")

# Prints every module the process has imported, as it exits (SIGINT: serve stops cleanly).
SHOW_MODULES_AT_EXIT = (
    "import atexit, sys; "
    "atexit.register(lambda: print('modules:', *sorted(sys.modules), file=sys.stderr)); "
)


async def modules_of_a_serve_process(tmp_path: Path) -> set[str]:
    """Every module a real ``voip-sandbox serve`` process had imported once it listened."""
    command = serve_command("--port", "0", "--memory")
    flag = command.index("-c")
    command[flag + 1] = SHOW_MODULES_AT_EXIT + command[flag + 1]
    process = ServerProcess(command, log_path=tmp_path / "serve.log")
    await process.start()
    assert await process.stop() == 0
    lines = (tmp_path / "serve.log").read_text(encoding="utf-8").splitlines()
    listed = [line.split()[1:] for line in lines if line.startswith("modules: ")]
    assert len(listed) == 1, "the serve process did not list its modules as it exited"
    return set(listed[0])


def from_packages(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in packages)


async def test_serve_imports_neither_aiortc_nor_av(tmp_path: Path) -> None:
    modules = await modules_of_a_serve_process(tmp_path)
    # The probe sees what serve does import: the command, its server and store.
    assert {"scenarios.cli", "signaling.server", "signaling.store", "websockets"} <= modules
    assert from_packages(modules, MEDIA_PACKAGES) == []
    # Nor what pulls them in: the runner, the phones' client and link, the media shim.
    assert not {"scenarios.runner", "peers.client", "peers.link", "peers.media"} & modules


# The event log of `serve`: what each event holds (the keys of Transition.as_event and
# CallRecord.as_event, plus structlog's), for anyone who reads the log.
TRANSITION_KEYS = {"who", "call_id", "caller", "callee", "kind", "placed_at", "from", "to"}
TRANSITION_KEYS |= {"cause", "at", "event", "timestamp"}
CDR_KEYS = {"call_id", "caller", "callee", "kind", "placed_at", "state", "blocked", "reached"}
CDR_KEYS |= {"answered_at", "ended_at", "cause", "event", "timestamp"}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


async def send(ws: ClientConnection, message: PhoneMessage) -> None:
    await ws.send(serialize_message(message))


async def until(ws: ClientConnection, expected: str) -> None:
    """Reads the server's frames up to one of type ``expected``."""
    while True:
        frame = await asyncio.wait_for(ws.recv(), 10)
        if parse_server_message(frame).__struct_config__.tag == expected:
            return


async def test_serve_logs_every_frame_transition_and_record_as_a_json_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "serve.log"
    process = ServerProcess(serve_command("--port", "0", "--memory"), log_path=log)
    url = await process.start()
    try:
        async with connect(url) as alice, connect(url) as bob:
            await send(alice, Register(name="alice", token="a" * 16))
            await until(alice, "registered")
            await send(bob, Register(name="bob", token="b" * 16))
            await until(bob, "registered")
            await send(alice, Offer("c1", to="bob", kind="audio", sdp="v=0"))
            await until(bob, "incoming")
            await send(bob, Ringing("c1"))
            await send(bob, Decline("c1"))
            await until(alice, "call_ended")
            await send(alice, Decline("c1"))  # the call is over: refused
            await until(alice, "error")
    finally:
        assert await process.stop() == 0
    lines = log.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines if not line.startswith("voip-sandbox ")]
    assert all(ISO_UTC.fullmatch(event.pop("timestamp")) for event in events)
    frames_in = [
        {key: e[key] for key in ("sender", "type", "call_id")}
        for e in events
        if e["event"] == "frame" and e["receiver"] == "server"
    ]
    assert frames_in == [
        {"sender": "alice", "type": "register", "call_id": None},
        {"sender": "bob", "type": "register", "call_id": None},
        {"sender": "alice", "type": "offer", "call_id": "c1"},
        {"sender": "bob", "type": "ringing", "call_id": "c1"},
        {"sender": "bob", "type": "decline", "call_id": "c1"},
        {"sender": "alice", "type": "decline", "call_id": "c1"},
    ]
    assert {"sender": "server", "receiver": "alice", "type": "call_ended", "call_id": "c1"} in [
        {key: e[key] for key in ("sender", "receiver", "type", "call_id")}
        for e in events
        if e["event"] == "frame"
    ]
    transitions = [e for e in events if e["event"] == "transition"]
    assert [(t["from"], t["to"], t["cause"]) for t in transitions][-1][1:] == (
        "ended",
        "declined",
    )
    assert all(set(t) | {"timestamp"} == TRANSITION_KEYS for t in transitions)
    (record,) = [e for e in events if e["event"] == "cdr"]
    assert set(record) | {"timestamp"} == CDR_KEYS
    assert (record["caller"], record["callee"], record["cause"]) == ("alice", "bob", "declined")
    refused = [e for e in events if e["event"] == "frame" and e["type"] == "error"]
    assert [(e["receiver"], e["call_id"]) for e in refused] == [("alice", "c1")]
    closed = [e for e in events if e["event"] == "connection" and e["state"] == "closed"]
    assert sorted(e["who"] for e in closed) == ["alice", "bob"]


async def test_serve_writes_the_events_of_one_loop_pass_together_in_order() -> None:
    file = io.BytesIO()
    lines = cli._LinesPerLoopPass(file)
    lines.info(b'{"event":"first"}')
    lines.info(b'{"event":"second"}')
    assert file.getvalue() == b""  # kept until the loop's next pass
    await asyncio.sleep(0)
    assert file.getvalue() == b'{"event":"first"}\n{"event":"second"}\n'
    lines.info(b'{"event":"last"}')
    lines.write_pending()  # as serve does when it stops
    assert file.getvalue().endswith(b'{"event":"second"}\n{"event":"last"}\n')
    await asyncio.sleep(0)  # the pass's callback finds nothing left: nothing twice
    assert file.getvalue().count(b'"last"') == 1


def test_serve_writes_an_event_at_once_when_no_loop_runs() -> None:
    file = io.BytesIO()
    cli._LinesPerLoopPass(file).info(b'{"event":"server"}')
    assert file.getvalue() == b'{"event":"server"}\n'


@pytest.mark.parametrize("command", [[], ["run"], ["serve"], ["labels"]])
def test_help_works_for_each_command(command: list[str]) -> None:
    for flag in ("--help", "-h"):
        outcome = invoke(*command, flag)
        assert outcome.exit_code == 0, outcome.output
        assert outcome.stdout.startswith(f"Usage: main {' '.join(command)}".rstrip())
    if not command:
        for sub in ("run", "serve", "labels"):
            assert sub in outcome.stdout


# --- explore ------------------------------------------------------------------------------------


def test_explore_summarises_and_exits_0_when_every_invariant_holds(tmp_path: Path) -> None:
    outcome = invoke("explore", "--seed", "3", "--count", "40", "--out", str(tmp_path / "found"))
    assert outcome.exit_code == 0, outcome.output
    assert "40 scenarios (sim engine, seed 3)" in outcome.output
    assert "outcomes seen: " in outcome.output and "canceled" in outcome.output
    assert "no invariant violated" in outcome.output
    assert not (tmp_path / "found").exists()  # nothing to reproduce, nothing written


def test_explore_writes_a_reproducer_and_exits_1_when_a_check_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signaling import calls

    # A wrong transition in a copy of the table: a cancel while ringing "answers".
    planted = {state: dict(causes) for state, causes in calls.TRANSITIONS.items()}
    planted[calls.CallState.RINGING][calls.Cause.CANCELED] = calls.CallState.ANSWERED
    monkeypatch.setattr(calls, "TRANSITIONS", planted)
    out = tmp_path / "found"
    outcome = invoke("explore", "--seed", "1", "--count", "200", "--out", str(out))
    assert outcome.exit_code == 1, outcome.output
    assert "violations: " in outcome.output
    written = sorted(out.glob("*.yaml"))
    assert written and all(str(path) in outcome.output for path in written)
    assert "--lenient --seed" in written[0].read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("flag", "value"), [("--count", "0"), ("--jobs", "0"), ("--engine", "fast")]
)
def test_explore_refuses_bad_flags_with_exit_2(flag: str, value: str) -> None:
    outcome = invoke("explore", flag, value)
    assert outcome.exit_code == 2, outcome.output
    assert outcome.output.strip()  # it says what is wrong
