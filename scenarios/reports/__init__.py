"""Reports of a run, for people and for tools.

- The terminal (:mod:`.terminal`): a block per scenario (:func:`render_scenario`, with an
  optional :func:`render_timeline`) and the closing line (:func:`render_summary`).
- The JSON document of DESIGN.md (:mod:`.json_document`: :func:`render_json`).
- One run's message ladder as a Mermaid ``sequenceDiagram`` (:mod:`.mermaid`:
  :func:`render_mermaid`, :func:`write_mermaid_files`).
- One self-contained HTML page for a whole run (:mod:`.html_page`: :func:`render_html`,
  :func:`write_html_report`): no script, no stylesheet, font or image from elsewhere, so it
  reads the same offline, attached to a CI job, or mailed to someone.
- JUnit XML for CI (:mod:`.junit`: :func:`render_junit`).

A report reads :class:`~scenarios.runner.ScenarioResult` objects (their call logs and event
stream) and nothing else: it never re-runs or re-judges anything. Text from outside (scenario
names, phone names, frame types, error messages; a registering phone may claim any name) is
escaped for the format it goes into.

The ladder (Mermaid and HTML) is built once per run, by :func:`.ladder.ladder_of`, as rows of
two kinds: an arrow for every frame, and a note for every step, timer firing, radio change,
lost or closed connection, server restart and error.
"""

from __future__ import annotations

from .html_page import render_html, write_html_report
from .json_document import render_json
from .junit import render_junit
from .mermaid import render_mermaid, write_mermaid_files
from .terminal import render_scenario, render_summary, render_timeline


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
