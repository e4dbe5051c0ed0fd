"""One run's message ladder as a Mermaid ``sequenceDiagram``, and the ``.mmd`` files of a run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from scenarios.runner import ScenarioResult

from .ladder import Arrow, by_scenario_file, format_seconds, ladder_of


__all__ = ["render_mermaid", "write_mermaid_files"]


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
    ladder = ladder_of(result)
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
        if isinstance(row, Arrow):
            if row.t != shown:
                lines.append(f"    Note over {everyone}: t={format_seconds(row.t)}s")
                shown = row.t
            arrow = f"{ids[row.sender]}->>{ids[row.receiver]}"
            lines.append(f"    {arrow}: {_mermaid_text(row.label)}")
        else:
            over = ",".join(ids[name] for name in row.over)
            lines.append(
                f"    Note over {over}: t={format_seconds(row.t)}s {_mermaid_text(row.text)}"
            )
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
    groups = by_scenario_file(results)
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
