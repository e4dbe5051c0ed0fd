"""The scenario catalogue: every file passes, and together they cover the whole profile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scenarios.loader import load_scenario
from scenarios.model import ExpectedEntry
from scenarios.profiles import ProfileError, load_profile, profile_names
from scenarios.runner import run_scenario


LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"
FILES = sorted(LIBRARY.glob("*.yaml"))

# The labels of DESIGN.md's behaviour table, which the catalogue must show on the expected side.
TABLE_LABELS = {
    "canceled",
    "missed",
    "declined",
    "no_answer",
    "busy",
    "outgoing",
    "incoming",
    "dropped",
}


def _known_labels(profile: str) -> list[str] | None:
    try:
        return list(load_profile(profile).labels)
    except ProfileError:
        return None


def _expected_entries() -> Iterator[tuple[str, str, ExpectedEntry]]:
    """Every (file, phone, expected entry) of the catalogue."""
    for path in FILES:
        scenario = load_scenario(path, known_labels=_known_labels)
        for phone, entries in (scenario.expect or {}).items():
            for entry in entries:
                yield path.name, phone, entry


def test_the_catalogue_has_at_least_15_scenarios() -> None:
    assert len(FILES) >= 15, [path.name for path in FILES]


@pytest.mark.parametrize("profile", profile_names())
@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_scenario_passes_under_every_profile(path: Path, profile: str) -> None:
    # Judged by its expectations where it has some for this profile, and by the
    # invariant checker always (as `voip-sandbox run --profiles all` does).
    scenario = load_scenario(path, known_labels=_known_labels)
    result = run_scenario(scenario, profile=profile)
    assert result.passed, f"{path.name} [{profile}] failed:\n" + "\n".join(result.failures)


def test_every_scenario_has_expectations_under_every_profile() -> None:
    missing = [
        f"{path.name}: {profile}"
        for path in FILES
        for profile in profile_names()
        if load_scenario(path, known_labels=_known_labels).expectations_for(profile) is None
    ]
    assert not missing, missing


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_scenario_says_what_it_expects(path: Path) -> None:
    # A catalogue entry documents a behaviour: it must say what both logs show.
    scenario = load_scenario(path, known_labels=_known_labels)
    assert scenario.expect, f"{path.name} has no 'expect'"
    assert scenario.about, f"{path.name} has no 'about'"


def test_every_whatsapp_label_is_expected_somewhere() -> None:
    expected = {entry.label for _, _, entry in _expected_entries()}
    profile_labels = set(load_profile("whatsapp").labels)
    missing = (profile_labels | TABLE_LABELS) - expected
    assert not missing, f"no scenario expects: {sorted(missing)}"


@pytest.mark.parametrize("reached", [True, False])
def test_canceled_is_expected_both_reached_and_not_reached(reached: bool) -> None:
    found = [
        (name, phone)
        for name, phone, entry in _expected_entries()
        if entry.label == "canceled" and entry.reached is reached
    ]
    assert found, f"no scenario expects canceled with reached: {str(reached).lower()}"


def test_a_phone_with_no_entry_at_all_is_expected_somewhere() -> None:
    # The block row of the table: "nothing, ever" on the callee's side.
    empty = [
        (path.name, phone)
        for path in FILES
        for phone, entries in (load_scenario(path, known_labels=_known_labels).expect or {}).items()
        if entries == ()
    ]
    assert empty
