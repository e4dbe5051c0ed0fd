"""Reports of a run, for people and for tools.

- The terminal: a block per scenario (:func:`render_scenario`, with an optional
  :func:`render_timeline`) and the closing line (:func:`render_summary`).
- The JSON document of DESIGN.md (:func:`render_json`).
- One run's message ladder as a Mermaid ``sequenceDiagram`` (:func:`render_mermaid`,
  :func:`write_mermaid_files`).
- One self-contained HTML page for a whole run (:func:`render_html`,
  :func:`write_html_report`): no script, no stylesheet, font or image from elsewhere, so it
  reads the same offline, attached to a CI job, or mailed to someone.
- JUnit XML for CI (:func:`render_junit`).

A report reads :class:`~scenarios.runner.ScenarioResult` objects (their call logs and event
stream) and nothing else: it never re-runs or re-judges anything. Text from outside (scenario
names, phone names, frame types, error messages; a registering phone may claim any name) is
escaped for the format it goes into.

The ladder (Mermaid and HTML) is built once per run, by :func:`_ladder`, as rows of two
kinds: an arrow for every frame, and a note for every step, timer firing, radio change,
lost or closed connection, server restart and error.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scenarios.model import Scenario, Verb
from scenarios.observers import LogEntry
from scenarios.profiles import ProfileError, load_profile
from scenarios.runner import ScenarioResult


__all__ = [
    "render_html",
    "render_json",
    "render_junit",
    "render_mermaid",
    "render_scenario",
    "render_summary",
    "render_timeline",
    "write_html_report",
    "write_mermaid_files",
]

SERVER = "server"
"""The signaling server's name in the event stream (frames, transitions) and in ladders."""


# --- Terminal ------------------------------------------------------------------------------------


def render_scenario(
    result: ScenarioResult, *, verbose: bool = False, show_profile: bool | None = None
) -> str:
    """One scenario's block: verdict, the timeline, each phone's call log, failures.

    Args:
        result: The run.
        verbose: Whether to narrate the timeline too.
        show_profile: Whether to name the profile after the scenario's name. By default it
            is named only when the run was not under the scenario's own profile.
    """
    scenario = result.scenario
    verdict = click.style("PASS", fg="green") if result.passed else click.style("FAIL", fg="red")
    if show_profile is None:
        show_profile = result.profile != scenario.profile
    profile = f" [{result.profile}]" if show_profile else ""
    lines = [
        f"{verdict}  {click.style(scenario.name, bold=True)}{profile}  ({scenario.path})"
        f"  {result.virtual_seconds:.1f}s scenario time in {result.wall_seconds:.2f}s"
    ]
    if verbose:
        lines.extend(render_timeline(result.events))
    lines.extend(_call_log_table(result.logs))
    for failure in result.failures:
        first, *rest = failure.splitlines() or [""]
        lines.append(click.style(f"      ✗ {first}", fg="red"))
        lines.extend(f"        {line}" for line in rest)
    return "\n".join(lines)


# Trailing padding, possibly inside the closing style codes of the line's last cell.
_TRAILING_BLANKS = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$")


def _call_log_table(logs: dict[str, list[LogEntry]]) -> list[str]:
    """Each phone's call log as a small table (phone | entries, one entry a line), indented."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="dim")
    table.add_column("phone", style="bold", no_wrap=True)
    table.add_column("call log", no_wrap=True)
    for name, entries in logs.items():
        # Text, not str: a str cell is console markup, and a name may contain "[".
        log = "\n".join(entry.describe() for entry in entries) or "(no entry)"
        table.add_row(Text(name), Text(log))
    # Styled, as click.style is above: click.echo drops the codes when not on a terminal.
    console = Console(
        file=io.StringIO(), force_terminal=True, color_system="standard", width=10_000
    )
    with console.capture() as capture:
        console.print(table)
    return [
        "      " + _TRAILING_BLANKS.sub(r"\1", line)
        for line in capture.get().splitlines()
        if line.strip()
    ]


def render_timeline(events: Iterable[dict[str, Any]]) -> list[str]:
    """The run as a person would narrate it, one line per meaningful event."""
    lines = []
    for e in events:
        text = _describe_event(e)
        if text is not None:
            lines.append(f"      {e.get('t', 0.0):9.3f}  {text}")
    return lines


def _describe_event(e: dict[str, Any]) -> str | None:
    call = f" [{e['call_id']}]" if e.get("call_id") else ""
    match e.get("event"):
        case "step":
            return click.style(f"step {e['index'] + 1}: {e['do']}", bold=True)
        case "frame":
            return f"{e['sender']} → {e['receiver']}: {e['type']}{call}"
        case "transition":
            return f"{e['who']}: call {e['from']} → {e['to']} ({e['cause']}){call}"
        case "screen":
            return f"{e['who']}: screen {e['previous']} → {e['screen']}"
        case "link":
            return f"{e['phone']}: radio {e['state']}"
        case "connection" if e.get("state") != "opened":
            who = e.get("who") or f"conn-{e.get('conn')}"
            return f"{who}: connection {e['state']} (code {e.get('code')})"
        case "server":
            return f"server {e['state']}"
        case "error":
            return click.style(f"error {e.get('code', '')}: {e.get('message')}", fg="yellow")
    return None


def render_summary(results: Sequence[ScenarioResult]) -> str:
    """The closing line: counts and the time figures."""
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    virtual = sum(r.virtual_seconds for r in results)
    wall = sum(r.wall_seconds for r in results)
    return (
        f"{passed} passed, {failed} failed "
        f"({virtual:.1f}s of scenario time in {wall:.2f}s wall time)"
    )


# --- JSON ----------------------------------------------------------------------------------------


def render_json(results: Sequence[ScenarioResult]) -> str:
    """The JSON document of DESIGN.md."""
    passed = sum(r.passed for r in results)
    document = {
        "passed": passed,
        "failed": len(results) - passed,
        "scenarios": [r.as_json() for r in results],
    }
    return json.dumps(document, indent=2)


# --- The ladder: what Mermaid and HTML both draw -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Arrow:
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
class _Note:
    """Something that is not a frame, written over one participant or across two."""

    t: float
    over: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class _Ladder:
    """Every participant, left to right, and the rows top to bottom."""

    participants: tuple[str, ...]
    rows: tuple[_Arrow | _Note, ...]


# The server's timers, by the end cause each gives a call when it fires.
_TIMERS = {
    "unreachable": "dial timer",
    "no_answer": "ring timer",
    "dropped": "reconnect grace timer",
}

_RADIO = {"no_signal": "signal lost", "signal": "signal back", "cut": "radio cut"}


def _ladder(result: ScenarioResult) -> _Ladder:
    """The ladder of one run, from its event stream."""
    events = result.events
    # Who takes part in frames: a connection note goes across that phone and the server.
    in_frames = {str(e.get(k)) for e in events if e.get("event") == "frame" for k in _ENDS}
    talkers = set(result.scenario.phones) | in_frames
    rows: list[_Arrow | _Note] = []
    # The last frame the server received at this instant, which may explain what it does
    # next; forgotten as soon as the server answers anything.
    inbound: tuple[float, str | None] | None = None
    for e in events:
        t = _number(e.get("t"))
        call_id = _text_or_none(e.get("call_id"))
        match e.get("event"):
            case "frame":
                arrow = _Arrow(
                    t, str(e.get("sender")), str(e.get("receiver")), str(e.get("type")), call_id
                )
                rows.append(arrow)
                if arrow.receiver == SERVER:
                    inbound = (t, call_id)
                elif arrow.sender == SERVER:
                    inbound = None
            case "step":
                index = int(_number(e.get("index")))
                actor = _step_actor(result.scenario, index, str(e.get("do", "")))
                rows.append(_Note(t, (actor,), f"step {index + 1}: {e.get('do')}"))
            case "transition" if e.get("who") == SERVER and e.get("to") == "ended":
                cause = str(e.get("cause"))
                # A frame at this instant about this call (or about no call: a phone
                # coming back registers) is what the server answered, not a timer.
                answering = (
                    inbound is not None and inbound[0] == t and inbound[1] in (None, call_id)
                )
                if cause in _TIMERS and not answering:
                    rows.append(_Note(t, (SERVER,), f"{_TIMERS[cause]} fired → {cause}"))
            case "link":
                state = str(e.get("state"))
                rows.append(_Note(t, (str(e.get("phone")),), _RADIO.get(state, f"radio {state}")))
            case "connection" if e.get("state") in ("lost", "closed"):
                who = _text_or_none(e.get("who"))
                over = (who, SERVER) if who is not None and who in talkers else (SERVER,)
                code = e.get("code")
                text = f"connection {e.get('state')}" + (f" (code {code})" if code else "")
                rows.append(_Note(t, over, text))
            case "server":
                rows.append(_Note(t, (SERVER,), f"server {e.get('state')}"))
            case "error":
                who = _text_or_none(e.get("who"))
                code = e.get("code")
                text = f"error{f' {code}' if code else ''}: {e.get('message')}"
                over = (who,) if who is not None and who in talkers else (SERVER,)
                rows.append(_Note(t, over, text))
            case "internal_error":
                rows.append(_Note(t, (SERVER,), f"internal error: {e.get('message')}"))
    return _Ladder(_participants(result, rows), tuple(rows))


_ENDS = ("sender", "receiver")


def _step_actor(scenario: Scenario, index: int, do: str) -> str:
    """Whom a step's note goes over: its phone, or the server for the server's verbs."""
    if 0 <= index < len(scenario.steps):
        return scenario.steps[index].action.actor or SERVER
    first = do.split(maxsplit=1)[0] if do.strip() else SERVER
    return first if first in scenario.phones else SERVER


def _participants(result: ScenarioResult, rows: Sequence[_Arrow | _Note]) -> tuple[str, ...]:
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
        for name in (row.sender, row.receiver) if isinstance(row, _Arrow) else row.over:
            order.setdefault(name)
    return tuple(order)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _text_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _seconds(t: float) -> str:
    """``3.0``, ``0.25``, ``45.0``: at least one decimal, at most three."""
    text = f"{t:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


# --- Mermaid -------------------------------------------------------------------------------------


# Mermaid ends a statement at ";" and reads "#...;" as an entity code; quotes, "<" and ">"
# upset some renderers' label handling. Each becomes the entity code that shows it.
_MERMAID_ESCAPES = str.maketrans(
    {"#": "#35;", ";": "#59;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}
)

# Words of the sequenceDiagram grammar, which a participant's id must not be.
_MERMAID_KEYWORDS = frozenset(
    {
        *("accdescr", "acctitle", "activate", "actor", "alt", "and", "as", "autonumber"),
        *("box", "break", "create", "critical", "deactivate", "destroy", "details", "else"),
        *("end", "left", "link", "links", "loop", "note", "of", "opt", "option", "over"),
        *("par", "participant", "properties", "rect", "right", "sequencediagram", "title"),
    }
)


def render_mermaid(result: ScenarioResult) -> str:
    """One run's message ladder as a Mermaid ``sequenceDiagram``.

    Participants: the phones that place calls, the server, then every other phone (even
    one that never sends a frame). Each frame is an arrow labeled with its type and the
    call id's first characters; steps, timer firings (``dial timer fired → unreachable``),
    radio changes, lost or closed connections, server restarts and errors are notes. Notes
    start with the scenario time (``t=3.0s``); an arrow at a later time than the last shown
    is preceded by a note with the new time.

    Every name and text is escaped, so any Mermaid renderer takes the output.
    """
    ladder = _ladder(result)
    ids = _mermaid_ids(ladder.participants)
    everyone = ",".join(dict.fromkeys([ids[ladder.participants[0]], ids[ladder.participants[-1]]]))
    scenario = result.scenario
    lines = [
        "sequenceDiagram",
        f"    %% {_mermaid_text(scenario.name)} ({_mermaid_text(scenario.path)}),"
        f" profile {_mermaid_text(result.profile)}, seed {result.seed}",
    ]
    lines.extend(f"    participant {ids[p]} as {_mermaid_text(p)}" for p in ladder.participants)
    shown: float | None = None  # the last time a note showed
    for row in ladder.rows:
        if isinstance(row, _Arrow):
            if row.t != shown:
                lines.append(f"    Note over {everyone}: t={_seconds(row.t)}s")
                shown = row.t
            arrow = f"{ids[row.sender]}->>{ids[row.receiver]}"
            lines.append(f"    {arrow}: {_mermaid_text(row.label)}")
        else:
            over = ",".join(ids[name] for name in row.over)
            lines.append(f"    Note over {over}: t={_seconds(row.t)}s {_mermaid_text(row.text)}")
            shown = row.t
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """``text`` on one line, with the characters Mermaid misreads escaped."""
    return " ".join(text.split()).translate(_MERMAID_ESCAPES)


def _mermaid_ids(names: Sequence[str]) -> dict[str, str]:
    """A distinct plain identifier per participant (``bob#2`` -> ``bob_2``)."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = re.sub(r"\W", "_", name, flags=re.ASCII).strip("_") or "p"
        if base[0].isdigit() or base.lower() in _MERMAID_KEYWORDS:
            base = f"p_{base}"
        candidate, n = base, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{base}_{n}"
        ids[name] = candidate
        taken.add(candidate.lower())
    return ids


def write_mermaid_files(directory: Path, results: Sequence[ScenarioResult]) -> list[Path]:
    """Writes each run's :func:`render_mermaid` ladder to ``directory``.

    A scenario run once gives ``<file stem>.mmd``; a scenario run under several profiles
    gives ``<file stem>.<profile>.mmd`` for each.

    Returns:
        The files written, in the order of ``results``.

    Raises:
        OSError: The folder cannot be made or a file cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for result, name in zip(results, _mermaid_file_names(results), strict=True):
        path = directory / name
        path.write_text(render_mermaid(result), encoding="utf-8")
        written.append(path)
    return written


def _mermaid_file_names(results: Sequence[ScenarioResult]) -> list[str]:
    groups = _by_scenario_file(results)
    stems: dict[str, str] = {}  # scenario path -> a stem no other scenario file has
    for path in groups:
        stem = re.sub(r"[^\w.-]", "_", Path(path).stem).strip(".") or "scenario"
        candidate, n = stem, 1
        while candidate in stems.values():
            n += 1
            candidate = f"{stem}-{n}"
        stems[path] = candidate
    names = []
    for result in results:
        path = result.scenario.path
        base = stems[path]
        if len(groups[path]) > 1:
            base += "." + re.sub(r"[^\w-]", "_", result.profile)
        candidate, n = base, 1
        while f"{candidate}.mmd" in names:
            n += 1
            candidate = f"{base}-{n}"
        names.append(f"{candidate}.mmd")
    return names


def _by_scenario_file(results: Iterable[ScenarioResult]) -> dict[str, list[ScenarioResult]]:
    """Results grouped by scenario file, files and runs in the order they first come."""
    groups: dict[str, list[ScenarioResult]] = {}
    for result in results:
        groups.setdefault(result.scenario.path, []).append(result)
    return groups


# --- HTML ----------------------------------------------------------------------------------------


def write_html_report(directory: Path, results: Sequence[ScenarioResult]) -> Path:
    """Writes :func:`render_html` to ``directory/index.html``, making the folder if needed.

    Returns:
        The page's path.

    Raises:
        OSError: The folder cannot be made or the page cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    page = directory / "index.html"
    page.write_text(render_html(results), encoding="utf-8")
    return page


def render_html(results: Sequence[ScenarioResult]) -> str:
    """The whole run as one self-contained HTML page.

    Per scenario file: when it ran under several profiles, a table of every phone's log
    entries with each profile's label side by side; then per run (one per profile) the
    verdict, failures, call logs, each phone's screens, the message ladder as an HTML table,
    and the Mermaid text to copy. CSS is inline; there is no script and no link to anything.
    """
    groups = _by_scenario_file(results)
    passed = sum(r.passed for r in results)
    summary = f"{passed} passed, {len(results) - passed} failed"
    virtual = sum(r.virtual_seconds for r in results)
    wall = sum(r.wall_seconds for r in results)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>voip-sandbox report: {summary}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        "<h1>voip-sandbox report</h1>",
        f'<p class="summary">{_verdict(not (len(results) - passed))} {summary}'
        f" ({virtual:.1f}s of scenario time in {wall:.2f}s wall time)</p>",
        "</header>",
        _html_index(groups),
        "<main>",
    ]
    for number, runs in enumerate(groups.values(), start=1):
        parts.append(_html_scenario(f"s{number}", runs))
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def _e(value: object) -> str:
    """Escaped for HTML text and quoted attribute values."""
    return html.escape(str(value), quote=True)


def _verdict(passed: bool) -> str:
    return '<span class="pass">PASS</span>' if passed else '<span class="fail">FAIL</span>'


def _html_index(groups: dict[str, list[ScenarioResult]]) -> str:
    rows = []
    for number, runs in enumerate(groups.values(), start=1):
        for index, result in enumerate(runs, start=1):
            rows.append(
                f"<tr><td>{_verdict(result.passed)}</td>"
                f'<td><a href="#s{number}-{index}">{_e(result.scenario.name)}</a></td>'
                f"<td><code>{_e(result.profile)}</code></td>"
                f"<td>{_e(result.scenario.path)}</td>"
                f'<td class="num">{result.virtual_seconds:.1f}s</td></tr>'
            )
    return (
        '<nav><table class="index"><thead><tr><th></th><th>scenario</th><th>profile</th>'
        '<th>file</th><th class="num">scenario time</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></nav>"
    )


def _html_scenario(anchor: str, runs: Sequence[ScenarioResult]) -> str:
    scenario = runs[0].scenario
    parts = [
        f'<section class="scenario" id="{anchor}">',
        f"<h2>{_e(scenario.name)} <small>{_e(scenario.path)}</small></h2>",
    ]
    if scenario.about:
        parts.append(f'<p class="about">{_e(scenario.about)}</p>')
    if len(runs) > 1:
        parts.append("<h3>Labels under each profile</h3>")
        parts.append(_html_profiles_side_by_side(runs))
    for index, result in enumerate(runs, start=1):
        parts.append(_html_run(f"{anchor}-{index}", result))
    parts.append("</section>")
    return "\n".join(parts)


def _label_text(profile: str, key: str | None) -> str | None:
    """What ``profile``'s app shows for the label ``key``; ``None`` when unknown."""
    if key is None:
        return None
    try:
        label = load_profile(profile).labels.get(key)
    except ProfileError:
        return None
    return None if label is None else label.text


def _html_label(profile: str, key: str | None) -> str:
    text = _label_text(profile, key)
    shown = f' <span class="shows">{_e(text)}</span>' if text is not None else ""
    return f"<code>{_e(key or 'in progress')}</code>{shown}"


def _html_profiles_side_by_side(runs: Sequence[ScenarioResult]) -> str:
    """Rows: each phone's log entries; columns: the profiles; cells: key and display text."""
    columns = [result.profile for result in runs]
    for position, name in enumerate(columns):
        if columns.count(name) > 1:
            columns[position] = f"{name} (run {position + 1})"
    phones: dict[str, None] = {}
    for result in runs:
        phones.update(dict.fromkeys(result.logs))
    head = "".join(
        f"<th>{_e(column)} {_verdict(result.passed)}</th>"
        for column, result in zip(columns, runs, strict=True)
    )
    body = []
    for phone in phones:
        logs = [result.logs.get(phone, []) for result in runs]
        if not any(logs):
            cells = "".join('<td class="none">no entry</td>' for _ in runs)
            body.append(f"<tr><th>{_e(phone)}</th><td>(none)</td>{cells}</tr>")
            continue
        for position in range(max(len(log) for log in logs)):
            entries = [log[position] if position < len(log) else None for log in logs]
            first = next(entry for entry in entries if entry is not None)
            shown = {
                (_label_text(r.profile, entry.label) or entry.label) if entry else None
                for r, entry in zip(runs, entries, strict=True)
            }
            cells = "".join(
                f"<td>{_html_label(result.profile, entry.label)}</td>"
                if entry is not None
                else '<td class="none">no entry</td>'
                for result, entry in zip(runs, entries, strict=True)
            )
            differs = ' class="differs"' if len(shown) > 1 else ""
            body.append(
                f"<tr{differs}><th>{_e(phone)}</th>"
                f"<td>#{position + 1} {_e(first.direction)} with {_e(first.with_)}</td>"
                f"{cells}</tr>"
            )
    return (
        '<table class="profiles"><thead><tr><th>phone</th><th>entry</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _html_run(anchor: str, result: ScenarioResult) -> str:
    parts = [
        f'<article class="run {"passed" if result.passed else "failed"}" id="{anchor}">',
        f"<h3>{_verdict(result.passed)} under profile <code>{_e(result.profile)}</code></h3>",
        f'<p class="meta">seed {result.seed} · {result.virtual_seconds:.1f}s of scenario time'
        f" in {result.wall_seconds:.2f}s wall time</p>",
    ]
    if result.failures:
        items = "".join(f"<li><pre>{_e(failure)}</pre></li>" for failure in result.failures)
        parts.append(f'<ul class="failures">{items}</ul>')
    parts += [
        "<h4>Call logs</h4>",
        _html_call_logs(result),
        "<h4>Screens</h4>",
        _html_screens(result),
        "<h4>Message ladder</h4>",
        _html_ladder(_ladder(result)),
        "<details><summary>Mermaid source</summary>",
        f'<pre class="mermaid-source">{_e(render_mermaid(result))}</pre>',
        "</details>",
        "</article>",
    ]
    return "\n".join(parts)


def _html_call_logs(result: ScenarioResult) -> str:
    rows = []
    for phone, entries in result.logs.items():
        if not entries:
            rows.append(f'<tr><th>{_e(phone)}</th><td colspan="7" class="none">no entry</td></tr>')
        for position, entry in enumerate(entries, start=1):
            duration = "" if entry.duration is None else f"{entry.duration:.0f}s"
            rows.append(
                f"<tr><th>{_e(phone)}</th><td>#{position}</td>"
                f"<td>{_html_label(result.profile, entry.label)}</td>"
                f"<td>{_e(entry.with_)}</td><td>{_e(entry.direction)}</td>"
                f"<td>{_e(entry.kind)}</td><td>{'yes' if entry.reached else 'no'}</td>"
                f'<td class="num">{duration}</td></tr>'
            )
    return (
        '<table class="logs"><thead><tr><th>phone</th><th></th><th>label</th><th>with</th>'
        '<th>direction</th><th>kind</th><th>reached</th><th class="num">duration</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _html_screens(result: ScenarioResult) -> str:
    """Each phone's screen, from the ``screen`` events: ``idle → calling 0.0s → …``."""
    changes: dict[str, list[dict[str, Any]]] = {name: [] for name in result.scenario.phones}
    for e in result.events:
        if e.get("event") == "screen":
            changes.setdefault(str(e.get("who")), []).append(e)
    rows = []
    for phone, screens in changes.items():
        if screens:
            steps = [f'<span class="screen">{_e(screens[0].get("previous"))}</span>']
            steps += [
                f'<span class="screen">{_e(e.get("screen"))}</span>'
                f"<small>{_seconds(_number(e.get('t')))}s</small>"
                for e in screens
            ]
            timeline = " → ".join(steps)
        else:
            timeline = '<span class="none">no change</span>'
        rows.append(f"<tr><th>{_e(phone)}</th><td>{timeline}</td></tr>")
    return f'<table class="screens"><tbody>{"".join(rows)}</tbody></table>'


def _html_ladder(ladder: _Ladder) -> str:
    """The ladder as a table: two half-columns per participant, its lifeline between them.

    An arrow from column i to column j spans from i's lifeline to j's; a note spans its
    participants' columns. Nothing but CSS draws it.
    """
    index = {name: position for position, name in enumerate(ladder.participants)}
    count = len(ladder.participants)

    def lanes(start: int, stop: int) -> str:
        return '<td class="lane"></td><td></td>' * max(0, stop - start)

    head = "".join(f'<th colspan="2">{_e(name)}</th>' for name in ladder.participants)
    rows = []
    shown: float | None = None
    for row in ladder.rows:
        time = "" if row.t == shown else _seconds(row.t)
        shown = row.t
        if isinstance(row, _Arrow):
            start, stop = sorted((index[row.sender], index[row.receiver]))
            title = f"{row.sender} → {row.receiver}: {row.kind}"
            if row.call_id:
                title += f" (call {row.call_id})"
            label = f'<div class="message">{_e(row.label)}</div>'
            if start == stop:  # to itself: drawn over its own lane
                cell = f'<td colspan="2" class="arrow self" title="{_e(title)}">{label}↺</td>'
                cells = lanes(0, start) + cell + lanes(stop + 1, count)
            else:
                way = "right" if index[row.sender] < index[row.receiver] else "left"
                span = 2 * (stop - start)
                cell = (
                    f'<td colspan="{span}" class="arrow" title="{_e(title)}">'
                    f'{label}<div class="shaft {way}"></div></td>'
                )
                cells = lanes(0, start) + '<td class="lane"></td>' + cell + "<td></td>"
                cells += lanes(stop + 1, count)
        else:
            start, stop = min(index[n] for n in row.over), max(index[n] for n in row.over)
            span = 2 * (stop - start + 1)
            cell = f'<td colspan="{span}" class="note">{_e(row.text)}</td>'
            cells = lanes(0, start) + cell + lanes(stop + 1, count)
        rows.append(f'<tr><td class="t">{time}</td>{cells}</tr>')
    return (
        '<div class="scroll"><table class="ladder"><thead><tr><th class="t">t (s)</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
  max-width: 72rem; padding: 1rem 2rem; color: #1d2329; background: #fff; line-height: 1.4; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.5rem; border-bottom: 2px solid #d8dee4; }
h2 small { font-weight: normal; font-size: .6em; color: #57606a; }
code, pre { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size: .9em; }
table { border-collapse: collapse; margin: .4rem 0 1rem; }
th, td { text-align: left; padding: .2rem .6rem; vertical-align: top; }
thead th { border-bottom: 1px solid #d8dee4; font-weight: 600; }
tbody th { font-weight: 600; }
.num { text-align: right; }
.pass, .fail { font-weight: 700; padding: 0 .35em; border-radius: .25em; color: #fff; }
.pass { background: #1a7f37; } .fail { background: #cf222e; }
.meta, .about { color: #57606a; }
article.run { border-left: 4px solid #1a7f37; padding: .1rem 0 .1rem 1rem; margin: 1.5rem 0; }
article.run.failed { border-left-color: #cf222e; }
ul.failures { color: #cf222e; padding-left: 1.2rem; }
ul.failures pre { white-space: pre-wrap; margin: .2rem 0; }
.none { color: #8c959f; font-style: italic; }
.shows { color: #57606a; }
table.profiles td, table.profiles th { border: 1px solid #d8dee4; }
table.profiles tr.differs td { background: #fff8c5; }
.screen { background: #eef1f4; border-radius: .25em; padding: 0 .3em; }
.screen + small { color: #57606a; margin-left: .2em; }
.scroll { overflow-x: auto; }
table.ladder { font-size: .85rem; }
table.ladder td { padding: .15rem 0; min-width: 3.5rem; }
table.ladder th { text-align: center; padding: .2rem .4rem; border-bottom: none; }
table.ladder td.t, table.ladder th.t { color: #57606a; text-align: right; padding-right: .8rem;
  min-width: 3rem; white-space: nowrap; }
table.ladder td.lane { border-right: 2px solid #c6ced6; }
td.arrow { border-right: 2px solid #c6ced6; text-align: center; white-space: nowrap; }
td.arrow.self { border-right: none; }
td.arrow .message { padding: 0 .5rem; }
.shaft { position: relative; border-top: 2px solid #1f4e79; margin: 0 4px; }
.shaft.right::after, .shaft.left::after { content: ""; position: absolute; top: -7px;
  border-top: 6px solid transparent; border-bottom: 6px solid transparent; }
.shaft.right::after { right: -4px; border-left: 10px solid #1f4e79; }
.shaft.left::after { left: -4px; border-right: 10px solid #1f4e79; }
td.note { background: #fff8c5; border: 1px solid #e3d38a; text-align: center; padding: .15rem .5rem;
  white-space: nowrap; }
details { margin: .5rem 0 1rem; } summary { cursor: pointer; color: #57606a; }
pre.mermaid-source { background: #f6f8fa; padding: .6rem; overflow-x: auto; }
"""


# --- JUnit XML -----------------------------------------------------------------------------------


# Characters XML 1.0 cannot carry at all, not even escaped (an error message may hold any).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_junit(results: Sequence[ScenarioResult]) -> str:
    """The run as JUnit XML: one ``testsuite``, one ``testcase`` per scenario and profile.

    A test case is named ``<scenario name> [<profile>]``, its ``classname`` is the scenario
    file's path in dotted form, its ``time`` the wall seconds; a failed one has a ``failure``
    with every failure text, and every one has its call logs as ``system-out``.
    """
    failed = sum(not r.passed for r in results)
    counts = {
        "tests": str(len(results)),
        "failures": str(failed),
        "errors": "0",
        "skipped": "0",
        "time": f"{sum(r.wall_seconds for r in results):.3f}",
    }
    root = ET.Element("testsuites", {"name": "voip-sandbox", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "voip-sandbox", **counts})
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": _xml(f"{result.scenario.name} [{result.profile}]"),
                "classname": _xml(_classname(result.scenario.path)),
                "time": f"{result.wall_seconds:.3f}",
            },
        )
        if result.failures:
            first = (result.failures[0].splitlines() or [""])[0]
            failure = ET.SubElement(
                case,
                "failure",
                {"message": _xml(first), "type": "ScenarioFailure"},
            )
            failure.text = _xml("\n\n".join(result.failures))
        out = ET.SubElement(case, "system-out")
        out.text = _xml(_plain_call_logs(result))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _classname(path: str) -> str:
    """``scenarios/library/01-cancel.yaml`` -> ``scenarios.library.01-cancel``.

    An absolute path under the working folder is taken relative to it.
    """
    file = Path(path)
    if file.is_absolute():
        with contextlib.suppress(ValueError):  # elsewhere: keep it whole
            file = file.relative_to(Path.cwd())
    parts = [part for part in file.with_suffix("").parts if part not in ("/", ".", "..")]
    return ".".join(part.strip("/\\") for part in parts) or path


def _plain_call_logs(result: ScenarioResult) -> str:
    lines = [
        f"profile {result.profile}, seed {result.seed}, "
        f"{result.virtual_seconds:.1f}s of scenario time"
    ]
    for name, entries in result.logs.items():
        log = "; ".join(entry.describe() for entry in entries) or "(no entry)"
        lines.append(f"{name}: {log}")
    return "\n".join(lines) + "\n"
