"""The terminal report: a block per scenario and the closing line.

:func:`render_scenario` gives one scenario's block (verdict, each phone's call log as a
table, failures, and with ``verbose`` the :func:`render_timeline`); :func:`render_summary`
the closing line. Styled with ANSI codes, which ``click.echo`` drops when not on a terminal.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scenarios.observers import LogEntry
from scenarios.runner import ScenarioResult


__all__ = ["render_scenario", "render_summary", "render_timeline"]


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
