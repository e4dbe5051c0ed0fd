"""Judging a run: each phone's whole call log against what the scenario expects."""

from __future__ import annotations

import pytest

from scenarios.expectations import compare_logs, entry_matches
from scenarios.model import ExpectedEntry
from scenarios.observers import LogEntry


def actual(**overrides: object) -> LogEntry:
    fields: dict[str, object] = {
        "label": "outgoing",
        "with_": "bob",
        "direction": "outgoing",
        "kind": "audio",
        "reached": True,
        "duration": 10.0,
        "call_id": "c1",
        "placed_at": 0.0,
    }
    fields.update(overrides)
    return LogEntry(**fields)  # type: ignore[arg-type]


def canceled(**overrides: object) -> LogEntry:
    return actual(**{"label": "canceled", "reached": False, "duration": None, **overrides})


# --- entry_matches ----------------------------------------------------------------------------


def test_an_entry_that_sets_nothing_matches_anything() -> None:
    assert entry_matches(ExpectedEntry(), actual())
    assert entry_matches(ExpectedEntry(), canceled())


@pytest.mark.parametrize(
    ("key", "same", "other"),
    [
        ("label", "outgoing", "canceled"),
        ("with_", "bob", "carol"),
        ("kind", "audio", "video"),
        ("reached", True, False),
        ("direction", "outgoing", "incoming"),
        ("duration", 10.0, 20.0),
    ],
)
def test_each_key_is_checked_when_set(key: str, same: object, other: object) -> None:
    assert entry_matches(ExpectedEntry(**{key: same}), actual())  # type: ignore[arg-type]
    assert not entry_matches(ExpectedEntry(**{key: other}), actual())  # type: ignore[arg-type]


def test_reached_false_is_checked_not_taken_as_unset() -> None:
    assert not entry_matches(ExpectedEntry(reached=False), actual(reached=True))
    assert entry_matches(ExpectedEntry(reached=False), actual(reached=False))


def test_every_set_key_must_match() -> None:
    expected = ExpectedEntry(label="outgoing", with_="bob", kind="video")
    assert not entry_matches(expected, actual())
    assert entry_matches(expected, actual(kind="video"))


@pytest.mark.parametrize(
    ("measured", "matches"),
    [(9.6, True), (10.0, True), (10.4, True), (10.6, False), (9.4, False), (0.0, False)],
)
def test_duration_matches_to_the_nearest_second(measured: float, matches: bool) -> None:
    assert entry_matches(ExpectedEntry(duration=10.0), actual(duration=measured)) is matches


def test_an_expected_duration_does_not_match_a_call_without_one() -> None:
    assert not entry_matches(ExpectedEntry(duration=0.0), canceled())


# --- compare_logs -----------------------------------------------------------------------------


def test_matching_logs_give_no_failure() -> None:
    expect = {"alice": (ExpectedEntry(label="outgoing"),), "bob": ()}
    assert compare_logs(expect, {"alice": [actual()], "bob": []}) == []


def test_phones_not_in_expect_are_not_checked() -> None:
    assert compare_logs({}, {"alice": [actual()]}) == []


def test_a_phone_expected_but_without_a_log_counts_as_empty() -> None:
    assert compare_logs({"carol": ()}, {}) == []
    (failure,) = compare_logs({"carol": (ExpectedEntry(label="missed"),)}, {})
    assert failure.splitlines()[0] == "carol: expected [missed], got [no entry]"


def test_a_longer_log_fails_even_when_its_first_entries_match() -> None:
    (failure,) = compare_logs(
        {"alice": (ExpectedEntry(label="canceled"),)},
        {"alice": [canceled(), canceled(with_="carol")]},
    )
    lines = failure.splitlines()
    assert lines[0] == "alice: expected [canceled], got [canceled, canceled]"
    assert len(lines) == 3
    assert lines[1].split()[:2] == ["ok", "1."]
    assert lines[2].split()[:2] == ["!!", "2."]
    assert "expected (nothing)" in lines[2]
    assert lines[2].endswith("got canceled with carol (not reached)")


def test_a_shorter_log_fails_and_shows_what_is_missing() -> None:
    (failure,) = compare_logs(
        {"bob": (ExpectedEntry(label="missed"), ExpectedEntry(label="missed", with_="carol"))},
        {"bob": [canceled(label="missed", with_="alice", direction="incoming")]},
    )
    lines = failure.splitlines()
    assert lines[0] == "bob: expected [missed, missed], got [missed]"
    assert lines[2].split()[:2] == ["!!", "2."]
    assert "expected missed with carol" in lines[2]
    assert lines[2].endswith("got (nothing)")


def test_the_diff_marks_the_entry_that_differs() -> None:
    expect = {
        "alice": (
            ExpectedEntry(label="outgoing", duration=10.0),
            ExpectedEntry(label="canceled", with_="carol", reached=True),
        )
    }
    logs = {"alice": [actual(), canceled(with_="carol")]}
    (failure,) = compare_logs(expect, logs)
    lines = failure.splitlines()
    assert lines[0] == "alice: expected [outgoing, canceled], got [outgoing, canceled]"
    assert lines[1].split()[:2] == ["ok", "1."]
    assert lines[2].split()[:2] == ["!!", "2."]
    assert "expected canceled with carol (reached)" in lines[2]
    assert lines[2].endswith("got canceled with carol (not reached)")


def test_one_failure_per_phone_that_differs() -> None:
    expect = {
        "alice": (ExpectedEntry(label="missed"),),
        "bob": (ExpectedEntry(label="outgoing"),),
        "carol": (ExpectedEntry(label="busy"),),
    }
    logs = {"alice": [actual()], "bob": [actual()], "carol": [actual()]}
    failures = compare_logs(expect, logs)
    assert [f.split(":")[0] for f in failures] == ["alice", "carol"]


def test_an_entry_without_a_label_is_shown_as_any() -> None:
    (failure,) = compare_logs({"alice": (ExpectedEntry(with_="carol"),)}, {"alice": [actual()]})
    assert failure.splitlines()[0] == "alice: expected [any], got [outgoing]"
