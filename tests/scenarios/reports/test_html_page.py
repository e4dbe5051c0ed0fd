"""The HTML report: self-contained, escaped, well formed, and with what a reader needs."""

from __future__ import annotations

import functools
import html
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

import scenarios.reports.html_page as html_page
from scenarios.loader import load_scenario
from scenarios.model import PhoneSpec, Scenario
from scenarios.observers import LogEntry
from scenarios.profiles import ProfileError
from scenarios.reports.html_page import render_html, write_html_report
from scenarios.reports.mermaid import render_mermaid
from scenarios.runner import ScenarioResult, run_scenario


LIBRARY = Path(__file__).resolve().parents[3] / "scenarios" / "library"

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr"}


@functools.cache
def library_run(stem: str) -> ScenarioResult:
    return run_scenario(load_scenario(LIBRARY / f"{stem}.yaml"))


def entry(label: str, other: str, direction: str, **overrides: object) -> LogEntry:
    fields: dict[str, object] = {
        "label": label,
        "with_": other,
        "direction": direction,
        "kind": "audio",
        "reached": True,
        "duration": None,
        "call_id": "c1",
        "placed_at": 0.0,
    }
    fields.update(overrides)
    return LogEntry(**fields)  # type: ignore[arg-type]


def result(
    profile: str,
    logs: dict[str, list[LogEntry]],
    *,
    name: str = "cancel",
    path: str = "library/cancel.yaml",
    failures: list[str] | None = None,
    events: list[dict[str, object]] | None = None,
) -> ScenarioResult:
    scenario = Scenario(path=path, name=name, phones={n: PhoneSpec(n) for n in logs})
    return ScenarioResult(
        scenario=scenario,
        profile=profile,
        seed=0,
        failures=failures or [],
        logs=logs,
        events=events or [],
    )


TEXTS = {
    "whatsapp": {"canceled": "Canceled call", "missed": "Missed call"},
    "fakeapp": {"unanswered": "Unanswered call", "missed": "Missed call"},
}


@pytest.fixture
def fake_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two profiles with known texts, whatever the shipped profile files say today."""

    def load(name: str) -> SimpleNamespace:
        if name not in TEXTS:
            raise ProfileError(f"unknown profile {name!r}")
        return SimpleNamespace(
            labels={key: SimpleNamespace(text=text) for key, text in TEXTS[name].items()}
        )

    monkeypatch.setattr(html_page, "load_profile", load)


class Checker(HTMLParser):
    """Checks that every element closes in order, and collects the ladder tables' rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ladders: list[list[list[dict[str, str | None]]]] = []  # table > row > cell
        self.in_ladder = False
        self.in_body = False
        self.pre: list[str] = []
        self.in_pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "table" and attributes.get("class") == "ladder":
            self.in_ladder = True
            self.ladders.append([])
        elif self.in_ladder and tag == "tbody":
            self.in_body = True
        elif self.in_body and tag == "tr":
            self.ladders[-1].append([])
        elif self.in_body and tag == "td":
            self.ladders[-1][-1].append(attributes)
        elif tag == "pre" and attributes.get("class") == "mermaid-source":
            self.in_pre = True
            self.pre.append("")

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag == "table" and self.in_ladder:
            self.in_ladder = self.in_body = False
        elif tag == "pre":
            self.in_pre = False

    def handle_data(self, data: str) -> None:
        if self.in_pre:
            self.pre[-1] += data


def check(page: str) -> Checker:
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == [], f"unclosed: {checker.stack}"
    return checker


# --- Self-contained -------------------------------------------------------------------------


def test_the_page_loads_nothing_from_anywhere() -> None:
    runs = [
        library_run(stem)
        for stem in ("01-cancel-while-ringing", "12-caller-loses-signal-while-ringing")
    ]
    page = render_html(runs)
    assert page.startswith("<!DOCTYPE html>")
    for reference in ("<script", "http://", "https://", "<link", "@import", "url(", "src="):
        assert reference not in page.lower(), reference
    checker = check(page)
    assert [tag for tag, _ in checker.tags].count("style") == 1  # the CSS is inline


def test_write_html_report_makes_the_folder_and_one_page(tmp_path: Path) -> None:
    run = library_run("01-cancel-while-ringing")
    page = write_html_report(tmp_path / "deep" / "report", [run])
    assert page == tmp_path / "deep" / "report" / "index.html"
    assert [p.name for p in page.parent.iterdir()] == ["index.html"]
    assert page.read_text(encoding="utf-8") == render_html([run])


# --- Escaped ----------------------------------------------------------------------------------


def test_every_text_is_escaped() -> None:
    hostile = result(
        "whatsapp",
        {
            "<img src=x onerror=alert(1)>": [entry("canceled", "<b>bob</b>", "outgoing")],
            "bob & co": [],
        },
        name='<script>alert("x")</script>',
        path="<string>",
        failures=["<i>broken</i> & 'quoted'"],
        events=[
            {
                "event": "frame",
                "t": 0.0,
                "sender": "<img src=x onerror=alert(1)>",
                "receiver": "server",
                "type": "<offer>",
                "call_id": None,
            },
            {
                "event": "screen",
                "t": 0.0,
                "who": "bob & co",
                "previous": "<idle>",
                "screen": "calling",
            },
        ],
    )
    page = render_html([hostile])
    assert "<script" not in page and "<img" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;i&gt;broken&lt;/i&gt; &amp; &#x27;quoted&#x27;" in page
    assert "bob &amp; co" in page and "&lt;idle&gt;" in page and "&lt;offer&gt;" in page
    check(page)


# --- Content ------------------------------------------------------------------------------------


def test_a_run_shows_verdict_failures_logs_screens_ladder_and_mermaid() -> None:
    run = library_run("01-cancel-while-ringing")
    failing = ScenarioResult(
        scenario=run.scenario,
        profile=run.profile,
        seed=run.seed,
        failures=["alice: expected [missed], got [canceled]\n    !! 1. expected missed"],
        logs=run.logs,
        events=run.events,
    )
    page = render_html([failing])
    checker = check(page)
    assert '<span class="fail">FAIL</span>' in page
    assert "alice: expected [missed], got [canceled]\n    !! 1. expected missed" in page
    assert "<code>canceled</code>" in page and "<code>missed</code>" in page
    # The screens, in order, with their times.
    screens = re.search(r"<th>alice</th><td>(<span class=\"screen\">.*?)</td>", page)
    assert screens is not None
    words = re.sub(r"<[^>]+>", " ", screens[1]).split()
    assert " ".join(words) == "idle → calling 0.0s → ringing 0.0s → ended 3.0s"
    # The Mermaid text, to copy: exactly render_mermaid's, once unescaped.
    assert checker.pre == [render_mermaid(failing)]


def test_the_ladder_has_a_row_per_frame_and_every_row_spans_every_lane() -> None:
    run = library_run("12-caller-loses-signal-while-ringing")
    checker = check(render_html([run]))
    (ladder,) = checker.ladders
    lanes = 3  # alice, server, bob
    for row in ladder:
        assert sum(int(cell.get("colspan") or 1) for cell in row) == 1 + 2 * lanes
    arrows = [cell for row in ladder for cell in row if cell.get("class") == "arrow"]
    frames = [e for e in run.events if e["event"] == "frame"]
    assert len(arrows) == len(frames)
    assert [html.unescape(cell["title"] or "").split(":")[0] for cell in arrows] == [
        f"{e['sender']} → {e['receiver']}" for e in frames
    ]
    notes = [cell for row in ladder for cell in row if cell.get("class") == "note"]
    assert len(notes) >= 6  # 3 steps, signal lost and back, the lost connection, the timer


def test_several_runs_of_one_file_are_grouped_under_it() -> None:
    runs = [library_run("01-cancel-while-ringing"), library_run("11-busy")]
    again = ScenarioResult(
        scenario=runs[0].scenario, profile="whatsapp", seed=1, logs=runs[0].logs, events=[]
    )
    page = render_html([runs[0], runs[1], again])
    sections = page.split('<section class="scenario"')[1:]
    assert len(sections) == 2
    assert sections[0].count('<article class="run') == 2
    assert sections[1].count('<article class="run') == 1
    assert "2 passed, 0 failed" not in page and "3 passed, 0 failed" in page


# --- Labels under each profile -------------------------------------------------------------


def test_two_profiles_get_their_labels_side_by_side(fake_profiles: None) -> None:
    whatsapp = result(
        "whatsapp",
        {
            "alice": [entry("canceled", "bob", "outgoing")],
            "bob": [entry("missed", "alice", "incoming")],
            "carol": [],
        },
    )
    fakeapp = result(
        "fakeapp",
        {
            "alice": [entry("unanswered", "bob", "outgoing")],
            "bob": [entry("missed", "alice", "incoming"), entry("missed", "alice", "incoming")],
            "carol": [],
        },
    )
    page = render_html([whatsapp, fakeapp])
    check(page)
    table = re.search(r'<table class="profiles">.*?</table>', page, re.S)
    assert table is not None
    rows = re.findall(r"<tr(?: class=\"(\w+)\")?>(.*?)</tr>", table[0], re.S)
    cells = [
        (
            css,
            [
                re.sub(r"<[^>]+>", "", cell).strip()
                for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
            ],
        )
        for css, row in rows
    ]
    assert cells == [
        ("", ["phone", "entry", "whatsapp PASS", "fakeapp PASS"]),
        (
            "differs",
            [
                "alice",
                "#1 outgoing with bob",
                "canceled Canceled call",
                "unanswered Unanswered call",
            ],
        ),
        ("", ["bob", "#1 incoming with alice", "missed Missed call", "missed Missed call"]),
        ("differs", ["bob", "#2 incoming with alice", "no entry", "missed Missed call"]),
        ("", ["carol", "(none)", "no entry", "no entry"]),
    ]


def test_one_profile_gets_no_side_by_side_table(fake_profiles: None) -> None:
    page = render_html([result("whatsapp", {"alice": [entry("canceled", "bob", "outgoing")]})])
    assert '<table class="profiles">' not in page
    assert "Canceled call" in page  # the log still shows the app's text


def test_a_label_of_an_unknown_profile_shows_its_key_alone(fake_profiles: None) -> None:
    page = render_html([result("nosuchapp", {"alice": [entry("canceled", "bob", "outgoing")]})])
    assert "<code>canceled</code></td>" in page
