"""Reports of a run: the terminal text (with an optional timeline) and the JSON document."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import click

from scenarios.runner import ScenarioResult


__all__ = ["render_json", "render_scenario", "render_summary", "render_timeline"]


def render_scenario(result: ScenarioResult, *, verbose: bool = False) -> str:
    """One scenario's block: verdict, each phone's call log, failures, and the timeline."""
    scenario = result.scenario
    verdict = click.style("PASS", fg="green") if result.passed else click.style("FAIL", fg="red")
    lines = [
        f"{verdict}  {click.style(scenario.name, bold=True)}  ({scenario.path})"
        f"  {result.virtual_seconds:.1f}s scenario time in {result.wall_seconds:.2f}s"
    ]
    if verbose:
        lines.extend(render_timeline(result.events))
    width = max((len(name) for name in result.logs), default=0)
    for name, entries in result.logs.items():
        log = "; ".join(entry.describe() for entry in entries) or "(no entry)"
        lines.append(f"      {name:<{width}}  {log}")
    for failure in result.failures:
        first, *rest = failure.splitlines()
        lines.append(click.style(f"      ✗ {first}", fg="red"))
        lines.extend(f"        {line}" for line in rest)
    return "\n".join(lines)


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


def render_json(results: Sequence[ScenarioResult]) -> str:
    """The JSON document of DESIGN.md."""
    passed = sum(r.passed for r in results)
    document = {
        "passed": passed,
        "failed": len(results) - passed,
        "scenarios": [r.as_json() for r in results],
    }
    return json.dumps(document, indent=2)
