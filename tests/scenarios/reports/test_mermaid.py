"""The Mermaid ladder: structure checked line by line, without any renderer."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest

from scenarios.loader import load_scenario, load_scenario_text
from scenarios.model import PhoneSpec, Scenario
from scenarios.reports.mermaid import render_mermaid, write_mermaid_files
from scenarios.runner import ScenarioResult, run_scenario


LIBRARY = Path(__file__).resolve().parents[3] / "scenarios" / "library"

PARTICIPANT = re.compile(r"participant (?P<id>[A-Za-z_][A-Za-z0-9_]*) as (?P<label>.+)")
ARROW = re.compile(r"(?P<a>[A-Za-z_][A-Za-z0-9_]*)->>(?P<b>[A-Za-z_][A-Za-z0-9_]*): (?P<text>.+)")
NOTE = re.compile(
    r"Note over (?P<a>[A-Za-z_][A-Za-z0-9_]*)(?:,(?P<b>[A-Za-z_][A-Za-z0-9_]*))?: "
    r"(?P<text>t=\d+\.\d+s(?: .+)?)"
)
ENTITY = re.compile(r"#(?:\d+|[a-z]+);")


def parse(text: str) -> dict[str, Any]:
    """Checks a diagram the way Mermaid's grammar reads it; returns what it declares and draws.

    The first line is ``sequenceDiagram``; every other line is a comment, a participant
    declared once before use, an arrow or a note between declared participants. In labels and
    texts, ``#``, ``;``, quotes and angle brackets appear only inside entity codes.
    """
    assert text.endswith("\n")
    first, *lines = text.splitlines()
    assert first == "sequenceDiagram"
    participants: dict[str, str] = {}
    arrows: list[tuple[str, str, str]] = []
    notes: list[tuple[tuple[str, ...], str]] = []
    for line in lines:
        assert line.startswith("    ") and line.strip(), repr(line)
        line = line.strip()
        if line.startswith("%%"):
            assert not line.startswith("%%{"), line  # a directive, not a comment
            continue
        if match := PARTICIPANT.fullmatch(line):
            assert not arrows and not notes, "participants come first"
            assert match["id"] not in participants, f"{match['id']} declared twice"
            participants[match["id"]] = check_text(match["label"])
            continue
        if match := ARROW.fullmatch(line):
            arrows.append((match["a"], match["b"], check_text(match["text"])))
            used = [match["a"], match["b"]]
        elif match := NOTE.fullmatch(line):
            over = tuple(name for name in (match["a"], match["b"]) if name)
            notes.append((over, check_text(match["text"])))
            used = list(over)
        else:
            raise AssertionError(f"not a sequenceDiagram statement: {line!r}")
        assert all(name in participants for name in used), (line, participants)
    return {"participants": participants, "arrows": arrows, "notes": notes}


def check_text(text: str) -> str:
    bare = ENTITY.sub("", text)
    for bad in '#;"<>\n':
        assert bad not in bare, f"{bad!r} unescaped in {text!r}"
    return text


@functools.cache
def library_run(stem: str) -> ScenarioResult:
    return run_scenario(load_scenario(LIBRARY / f"{stem}.yaml"))


def synthetic(
    events: list[dict[str, Any]],
    phones: tuple[str, ...] = ("alice", "bob"),
    *,
    name: str = "synthetic",
    steps_text: str | None = None,
) -> ScenarioResult:
    scenario = Scenario(
        path="library/synthetic.yaml",
        name=name,
        phones={phone: PhoneSpec(phone) for phone in phones},
    )
    if steps_text is not None:
        scenario = load_scenario_text(steps_text)
    return ScenarioResult(scenario=scenario, profile="whatsapp", seed=0, events=events)


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
        "who": "server",
        "call_id": call_id,
        "caller": "alice",
        "callee": "bob",
        "from": "ringing",
        "to": "ended",
        "cause": cause,
    }


# --- Structure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_library_ladder_is_a_valid_sequence_diagram(path: Path) -> None:
    result = library_run(path.stem)
    diagram = parse(render_mermaid(result))
    frames = [e for e in result.events if e["event"] == "frame"]
    assert len(diagram["arrows"]) == len(frames)  # every frame is an arrow
    steps = [e for e in result.events if e["event"] == "step"]
    step_notes = [text for _, text in diagram["notes"] if " step " in text]
    assert len(step_notes) == len(steps)


def test_the_cancel_ladder_reads_as_the_call_went() -> None:
    result = library_run("01-cancel-while-ringing")
    text = render_mermaid(result)
    diagram = parse(text)
    assert list(diagram["participants"]) == ["alice", "server", "bob"]
    call_id = next(e["call_id"] for e in result.events if e["event"] == "frame" and e["call_id"])
    short = call_id[:6]
    assert call_id not in text  # shortened
    assert [a for a in diagram["arrows"] if a[2].split()[-1] == short] == [
        ("alice", "server", f"offer {short}"),
        ("server", "bob", f"incoming {short}"),
        ("bob", "server", f"ringing {short}"),
        ("server", "alice", f"ringing {short}"),
        ("alice", "server", f"hangup {short}"),
        ("server", "bob", f"call_ended {short}"),
    ]
    assert "    Note over alice: t=0.0s step 1: alice calls bob" in text.splitlines()
    assert "    Note over alice: t=3.0s step 2: alice hangs up" in text.splitlines()
    assert not any("timer" in note for _, note in diagram["notes"])


@pytest.mark.parametrize(
    ("stem", "note"),
    [
        ("03-no-signal-dial-timeout", "Note over server: t=30.0s dial timer fired → unreachable"),
        ("10-no-answer", "Note over server: t=45.0s ring timer fired → no_answer"),
        (
            "12-caller-loses-signal-while-ringing",
            "Note over server: t=20.0s reconnect grace timer fired → dropped",
        ),
    ],
)
def test_timer_firings_are_notes_over_the_server(stem: str, note: str) -> None:
    lines = [line.strip() for line in render_mermaid(library_run(stem)).splitlines()]
    assert note in lines
    assert sum("timer fired" in line for line in lines) == 1


def test_radio_and_connection_changes_are_notes() -> None:
    lines = [
        line.strip()
        for line in render_mermaid(library_run("12-caller-loses-signal-while-ringing")).splitlines()
    ]
    assert "Note over alice: t=2.0s signal lost" in lines
    assert "Note over alice,server: t=10.0s connection lost (code 1006)" in lines
    assert "Note over alice: t=60.0s signal back" in lines
    off = [line.strip() for line in render_mermaid(library_run("08-blocked")).splitlines()]
    assert "Note over bob: t=41.0s radio cut" in off


def test_an_end_the_server_was_told_of_is_no_timer() -> None:
    events = [
        frame(5.0, "alice", "server", "hangup", "c0ffee0123456789"),
        server_ends(5.0, "no_answer"),  # a phone-owned ring timer: the phone said so
        frame(9.0, "bob", "server", "register"),
        server_ends(9.0, "dropped", "beef000011112222"),  # a phone back without its call
        frame(12.0, "server", "alice", "call_ended", "beef000011112222"),
        server_ends(12.0, "unreachable", "1234567890abcdef"),  # the server spoke since
    ]
    notes = [text for _, text in parse(render_mermaid(synthetic(events)))["notes"]]
    assert [note for note in notes if "timer" in note] == ["t=12.0s dial timer fired → unreachable"]


def test_callers_come_first_then_the_server_then_every_other_phone() -> None:
    text = """\
    name: order
    phones: {dave: {}, bob: {}, carol: {}, alice: {}}
    steps:
      - {at: 0s, do: alice calls bob}
      - {at: 1s, do: server restarts}
      - {at: 2s, do: carol calls dave}
    """
    result = synthetic(
        [
            {"event": "step", "t": 1.0, "index": 1, "do": "server restarts"},
            {"event": "server", "t": 1.0, "state": "restarting"},
            frame(1.5, "server", "conn-7", "error"),
        ],
        steps_text="\n".join(line.removeprefix("    ") for line in text.splitlines()),
    )
    diagram = parse(render_mermaid(result))
    # dave and bob never send a frame here: declared all the same.
    assert list(diagram["participants"]) == ["alice", "carol", "server", "dave", "bob", "conn_7"]
    assert (("server",), "t=1.0s step 2: server restarts") in diagram["notes"]
    assert (("server",), "t=1.0s server restarting") in diagram["notes"]


def test_the_time_is_shown_before_an_arrow_at_a_new_time() -> None:
    events = [
        frame(0.0, "alice", "server", "register"),
        frame(0.0, "server", "alice", "registered"),
        frame(2.5, "alice", "server", "offer", "abcdef0123"),
    ]
    lines = [line.strip() for line in render_mermaid(synthetic(events)).splitlines()]
    body = lines[lines.index("participant bob as bob") + 1 :]
    assert body == [
        "Note over alice,bob: t=0.0s",
        "alice->>server: register",
        "server->>alice: registered",
        "Note over alice,bob: t=2.5s",
        "alice->>server: offer abcdef",
    ]


# --- Names and texts Mermaid would choke on -----------------------------------------------------


HOSTILE = ("bob#2", "a;b", 'say "hi', "<script>", "end", "9lives", "bob_2", "Bob#2")


def test_any_name_gets_a_distinct_plain_id_and_an_escaped_label() -> None:
    events = [frame(0.0, name, "server", "register") for name in HOSTILE]
    events.append(
        {"event": "error", "t": 1.0, "who": "a;b", "code": "bad#1", "message": "no; <way>"}
    )
    result = synthetic(events, phones=HOSTILE, name='cancel; "#1" <b>')
    text = render_mermaid(result)
    diagram = parse(text)  # no stray ; # " < > anywhere
    labels = diagram["participants"]
    assert len(labels) == len(HOSTILE) + 1
    assert len({ident.lower() for ident in labels}) == len(labels)
    assert "end" not in labels and not any(ident[0].isdigit() for ident in labels)
    assert labels["bob_2"] == "bob#35;2"  # the first comer keeps the plain id
    assert "#lt;script#gt;" in labels.values()
    assert "say #quot;hi" in labels.values()
    assert any(note.endswith("error bad#35;1: no#59; #lt;way#gt;") for _, note in diagram["notes"])


def test_newlines_in_a_text_stay_on_one_line() -> None:
    events = [{"event": "internal_error", "t": 0.5, "message": "Boom\n  at line 3;\r\nend"}]
    diagram = parse(render_mermaid(synthetic(events)))
    assert diagram["notes"] == [(("server",), "t=0.5s internal error: Boom at line 3#59; end")]


# --- Files ------------------------------------------------------------------------------------


def test_write_mermaid_files_names_a_file_per_run(tmp_path: Path) -> None:
    cancel = library_run("01-cancel-while-ringing")
    busy = library_run("11-busy")
    same_stem = ScenarioResult(
        scenario=Scenario(path="elsewhere/01-cancel-while-ringing.yaml", name="other"),
        profile="whatsapp",
        seed=0,
    )
    signal = ScenarioResult(scenario=cancel.scenario, profile="signal", seed=0, events=[])
    written = write_mermaid_files(tmp_path / "out", [cancel, signal, busy, same_stem])
    assert [path.name for path in written] == [
        "01-cancel-while-ringing.whatsapp.mmd",
        "01-cancel-while-ringing.signal.mmd",
        "11-busy.mmd",
        "01-cancel-while-ringing-2.mmd",
    ]
    assert written[0].read_text(encoding="utf-8") == render_mermaid(cancel)
    for path in written:
        parse(path.read_text(encoding="utf-8"))
