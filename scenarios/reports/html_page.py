"""One self-contained HTML page for a whole run.

No script, no stylesheet, font or image from elsewhere, so the page reads the same offline,
attached to a CI job, or mailed to someone. Each run's ladder is drawn as an HTML table,
with its Mermaid source to copy.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scenarios.profiles import ProfileError, load_profile
from scenarios.runner import ScenarioResult

from .ladder import Arrow, Ladder, as_number, by_scenario_file, format_seconds, ladder_of
from .mermaid import render_mermaid


__all__ = ["render_html", "write_html_report"]


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
    groups = by_scenario_file(results)
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
        _html_ladder(ladder_of(result)),
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
                f"<small>{format_seconds(as_number(e.get('t')))}s</small>"
                for e in screens
            ]
            timeline = " → ".join(steps)
        else:
            timeline = '<span class="none">no change</span>'
        rows.append(f"<tr><th>{_e(phone)}</th><td>{timeline}</td></tr>")
    return f'<table class="screens"><tbody>{"".join(rows)}</tbody></table>'


def _html_ladder(ladder: Ladder) -> str:
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
        time = "" if row.t == shown else format_seconds(row.t)
        shown = row.t
        if isinstance(row, Arrow):
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
