"""The reports package: its public names, each the one its format's module defines.

Each format has its own tests, in tests/scenarios/reports/ (one file per module).
"""

from __future__ import annotations

import scenarios.reports as reports
from scenarios.reports import (
    html_page,
    json_document,
    junit,
    mermaid,
    render_html,
    render_json,
    render_junit,
    render_mermaid,
    render_scenario,
    render_summary,
    render_timeline,
    terminal,
    write_html_report,
    write_mermaid_files,
)


def test_the_package_exports_every_format() -> None:
    assert reports.__all__ == [
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


def test_each_export_is_its_modules_own() -> None:
    assert (render_scenario, render_summary, render_timeline) == (
        terminal.render_scenario,
        terminal.render_summary,
        terminal.render_timeline,
    )
    assert render_json is json_document.render_json
    assert (render_mermaid, write_mermaid_files) == (
        mermaid.render_mermaid,
        mermaid.write_mermaid_files,
    )
    assert (render_html, write_html_report) == (html_page.render_html, html_page.write_html_report)
    assert render_junit is junit.render_junit
