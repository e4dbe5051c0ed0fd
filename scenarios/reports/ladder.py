"""The message ladder of one run: what the Mermaid and the HTML reports both draw.

:func:`ladder_of` builds it once per run from the event stream, as rows of two kinds: an
:class:`Arrow` for every frame, and a :class:`Note` for every step, timer firing, radio
change, lost or closed connection, server restart and error. Both formats also lay out one
ladder per run grouped by scenario file (:func:`by_scenario_file`) and write times the same
way (:func:`format_seconds`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scenarios.model import Scenario, Verb
from scenarios.runner import ScenarioResult


__all__ = [
    "SERVER",
    "Arrow",
    "Ladder",
    "Note",
    "as_number",
    "by_scenario_file",
    "format_seconds",
    "ladder_of",
]

SERVER = "server"
"""The signaling server's name in the event stream (frames, transitions) and in ladders."""


@dataclass(frozen=True, slots=True)
class Arrow:
    """A frame: ``sender`` sent ``receiver`` a message of type ``kind``."""

    t: float
    sender: str
    receiver: str
    kind: str
    call_id: str | None

    @property
    def label(self) -> str:
        """``offer 0499b8``: the type, and the call id cut to what tells calls apart."""
        return f"{self.kind} {self.call_id[:6]}" if self.call_id else self.kind


@dataclass(frozen=True, slots=True)
class Note:
    """Something that is not a frame, written over one participant or across two."""

    t: float
    over: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Ladder:
    """Every participant, left to right, and the rows top to bottom."""

    participants: tuple[str, ...]
    rows: tuple[Arrow | Note, ...]


# The server's timers, by the end cause each gives a call when it fires.
_TIMERS = {
    "unreachable": "dial timer",
    "no_answer": "ring timer",
    "dropped": "reconnect grace timer",
}

_RADIO = {"no_signal": "signal lost", "signal": "signal back", "cut": "radio cut"}


def ladder_of(result: ScenarioResult) -> Ladder:
    """The ladder of one run, from its event stream."""
    events = result.events
    # Who takes part in frames: a connection note goes across that phone and the server.
    in_frames = {str(e.get(k)) for e in events if e.get("event") == "frame" for k in _ENDS}
    talkers = set(result.scenario.phones) | in_frames
    rows: list[Arrow | Note] = []
    # The last frame the server received at this instant, which may explain what it does
    # next; forgotten as soon as the server answers anything.
    inbound: tuple[float, str | None] | None = None
    for e in events:
        t = as_number(e.get("t"))
        call_id = _text_or_none(e.get("call_id"))
        match e.get("event"):
            case "frame":
                arrow = Arrow(
                    t, str(e.get("sender")), str(e.get("receiver")), str(e.get("type")), call_id
                )
                rows.append(arrow)
                if arrow.receiver == SERVER:
                    inbound = (t, call_id)
                elif arrow.sender == SERVER:
                    inbound = None
            case "step":
                index = int(as_number(e.get("index")))
                actor = _step_actor(result.scenario, index, str(e.get("do", "")))
                rows.append(Note(t, (actor,), f"step {index + 1}: {e.get('do')}"))
            case "transition" if e.get("who") == SERVER and e.get("to") == "ended":
                cause = str(e.get("cause"))
                # A frame at this instant about this call (or about no call: a phone
                # coming back registers) is what the server answered, not a timer.
                answering = (
                    inbound is not None and inbound[0] == t and inbound[1] in (None, call_id)
                )
                if cause in _TIMERS and not answering:
                    rows.append(Note(t, (SERVER,), f"{_TIMERS[cause]} fired → {cause}"))
            case "link":
                state = str(e.get("state"))
                rows.append(Note(t, (str(e.get("phone")),), _RADIO.get(state, f"radio {state}")))
            case "connection" if e.get("state") in ("lost", "closed"):
                who = _text_or_none(e.get("who"))
                over = (who, SERVER) if who is not None and who in talkers else (SERVER,)
                code = e.get("code")
                text = f"connection {e.get('state')}" + (f" (code {code})" if code else "")
                rows.append(Note(t, over, text))
            case "server":
                rows.append(Note(t, (SERVER,), f"server {e.get('state')}"))
            case "error":
                who = _text_or_none(e.get("who"))
                code = e.get("code")
                text = f"error{f' {code}' if code else ''}: {e.get('message')}"
                over = (who,) if who is not None and who in talkers else (SERVER,)
                rows.append(Note(t, over, text))
            case "internal_error":
                rows.append(Note(t, (SERVER,), f"internal error: {e.get('message')}"))
    return Ladder(_participants(result, rows), tuple(rows))


_ENDS = ("sender", "receiver")


def _step_actor(scenario: Scenario, index: int, do: str) -> str:
    """Whom a step's note goes over: its phone, or the server for the server's verbs."""
    if 0 <= index < len(scenario.steps):
        return scenario.steps[index].action.actor or SERVER
    first = do.split(maxsplit=1)[0] if do.strip() else SERVER
    return first if first in scenario.phones else SERVER


def _participants(result: ScenarioResult, rows: Sequence[Arrow | Note]) -> tuple[str, ...]:
    """Callers first, then the server, then every other phone, silent ones included."""
    order: dict[str, None] = {}  # an ordered set
    for step in result.scenario.steps:
        action = step.action
        if action.verb in (Verb.CALLS, Verb.VIDEO_CALLS) and action.actor is not None:
            order.setdefault(action.actor)
    for e in result.events:
        if e.get("event") == "transition" and isinstance(e.get("caller"), str):
            order.setdefault(e["caller"])
        elif e.get("event") == "frame" and e.get("type") == "offer":
            order.setdefault(str(e.get("sender")))
    order.setdefault(SERVER)
    for name in result.scenario.phones:
        order.setdefault(name)
    for row in rows:
        for name in (row.sender, row.receiver) if isinstance(row, Arrow) else row.over:
            order.setdefault(name)
    return tuple(order)


def as_number(value: object) -> float:
    """An event's number (a time, a step index); 0.0 when it is missing or not a number."""
    return float(value) if isinstance(value, int | float) else 0.0


def _text_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def format_seconds(t: float) -> str:
    """``3.0``, ``0.25``, ``45.0``: at least one decimal, at most three."""
    text = f"{t:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def by_scenario_file(results: Iterable[ScenarioResult]) -> dict[str, list[ScenarioResult]]:
    """Results grouped by scenario file, files and runs in the order they first come."""
    groups: dict[str, list[ScenarioResult]] = {}
    for result in results:
        groups.setdefault(result.scenario.path, []).append(result)
    return groups
