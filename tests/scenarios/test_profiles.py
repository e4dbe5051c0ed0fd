"""Label profiles: data files that turn what one end knows of a call into its label."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import scenarios.profiles as profiles
from scenarios.profiles import (
    DEFAULT_PROFILE,
    Profile,
    ProfileError,
    Timers,
    load_profile,
    profile_names,
    switchboard_settings,
)
from signaling.calls import CallInfo, CallSummary, Cause
from signaling.switchboard import SwitchboardSettings


def test_whatsapp_is_shipped_and_is_the_default() -> None:
    assert "whatsapp" in profile_names()
    assert DEFAULT_PROFILE == "whatsapp"
    assert profile_names() == sorted(profile_names())


def test_whatsapp_loads() -> None:
    profile = load_profile("whatsapp")
    assert profile.name == "whatsapp"
    assert profile.app == "WhatsApp"
    assert profile.about
    assert profile.timers == Timers(
        dial_timeout=30.0,
        ring_timeout=45.0,
        reconnect_grace=10.0,
        heartbeat_interval=5.0,
        heartbeat_timeout=5.0,
    )
    assert set(profile.labels) == {
        "outgoing",
        "incoming",
        "canceled",
        "missed",
        "declined",
        "no_answer",
        "busy",
        "dropped",
        "failed",
        "answered_elsewhere",
    }


def test_an_unknown_profile_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile("nosuchapp")
    message = str(caught.value)
    assert "'nosuchapp'" in message
    for name in profile_names():
        assert name in message


@pytest.mark.parametrize("name", profile_names())
def test_every_rule_gives_a_label_the_profile_defines(name: str) -> None:
    profile = load_profile(name)
    assert profile.rules
    for rule in profile.rules:
        assert rule.label in profile.labels, rule


@pytest.mark.parametrize("name", profile_names())
def test_every_label_has_a_text_and_a_source(name: str) -> None:
    for key, label in load_profile(name).labels.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", key), key
        assert label.text.strip(), key
        assert label.source.strip(), key


@pytest.mark.parametrize("name", profile_names())
def test_label_sources_are_kept_whole(name: str) -> None:
    # The profile files cite "LM §1 #2" (its table, row 2). In plain YAML, " #" starts a
    # comment, so an unquoted source is cut there: "LM §1 #13 (answered calls; ...)" would
    # load as "LM §1". A cut source loses its row and leaves its parenthesis open.
    for key, label in load_profile(name).labels.items():
        source = label.source
        assert source.count("(") == source.count(")"), f"{key}: {source!r}"
        assert not re.search(r"LM §1(?! #\d)", source), f"{key}: {source!r} lost its row"


# --- label() against DESIGN.md's behaviour table -----------------------------------------------


def summary(
    direction: str,
    cause: str | None,
    *,
    reached: bool,
    answered: bool = False,
    lost: bool = False,
) -> CallSummary:
    info = CallInfo("c1", "alice", "bob", "audio", 0.0)
    return CallSummary(
        who="alice" if direction == "outgoing" else "bob",
        info=info,
        direction=direction,  # type: ignore[arg-type]
        reached=reached,
        answered_at=2.0 if answered else None,
        lost_at=12.0 if lost else None,
        ended_at=None if cause is None else 20.0,
        end_cause=None if cause is None else Cause(cause),
    )


# (what happens, caller's summary, caller's label, callee's summary, callee's label)
TABLE = [
    (
        "caller hangs up while ringing",
        summary("outgoing", "canceled", reached=True),
        "canceled",
        summary("incoming", "canceled", reached=True),
        "missed",
    ),
    (
        "caller hangs up before the callee is reached",
        summary("outgoing", "canceled", reached=False),
        "canceled",
        summary("incoming", "canceled", reached=False),
        "missed",
    ),
    (
        "callee has no signal, the dial timer fires",
        summary("outgoing", "unreachable", reached=False),
        "canceled",
        summary("incoming", "unreachable", reached=False),
        "missed",
    ),
    (
        "callee's phone is switched off",
        summary("outgoing", "unreachable", reached=False),
        "canceled",
        summary("incoming", "unreachable", reached=False),
        "missed",
    ),
    (
        "callee loses signal while ringing, the caller gives up",
        summary("outgoing", "canceled", reached=True),
        "canceled",
        summary("incoming", "dropped", reached=True),
        "missed",
    ),
    (
        "callee declines",
        summary("outgoing", "declined", reached=True),
        "declined",
        summary("incoming", "declined", reached=True),
        "declined",
    ),
    (
        "nobody answers before the ring timer",
        summary("outgoing", "no_answer", reached=True),
        "no_answer",
        summary("incoming", "no_answer", reached=True),
        "missed",
    ),
    (
        "callee is busy in another call",
        summary("outgoing", "busy", reached=False),
        "busy",
        summary("incoming", "busy", reached=False),
        "missed",
    ),
    (
        "caller loses signal before the callee answers",
        summary("outgoing", "dropped", reached=True),
        "canceled",
        summary("incoming", "dropped", reached=True),
        "missed",
    ),
    (
        "answered, then a side hangs up",
        summary("outgoing", "hung_up", reached=True, answered=True),
        "outgoing",
        summary("incoming", "hung_up", reached=True, answered=True),
        "incoming",
    ),
    (
        "answered, then a side loses signal past the grace",
        summary("outgoing", "dropped", reached=True, answered=True, lost=True),
        "dropped",
        summary("incoming", "dropped", reached=True, answered=True, lost=True),
        "dropped",
    ),
]


@pytest.mark.parametrize(
    ("caller", "caller_label", "callee", "callee_label"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_whatsapp_labels_each_row_of_the_behaviour_table(
    caller: CallSummary, caller_label: str, callee: CallSummary, callee_label: str
) -> None:
    profile = load_profile("whatsapp")
    assert profile.label(caller) == caller_label
    assert profile.label(callee) == callee_label


def test_a_block_looks_like_a_switched_off_phone_to_the_caller() -> None:
    profile = load_profile("whatsapp")
    # The blocked caller knows only that the call was never reached and timed out.
    blocked = summary("outgoing", "unreachable", reached=False)
    assert profile.label(blocked) == "canceled"
    assert profile.label(blocked) == profile.label(summary("outgoing", "canceled", reached=False))


@pytest.mark.parametrize("direction", ["outgoing", "incoming"])
def test_a_call_in_progress_has_no_label(direction: str) -> None:
    profile = load_profile("whatsapp")
    assert profile.label(summary(direction, None, reached=True, answered=True)) is None


def test_a_profile_without_a_matching_rule_says_so() -> None:
    whatsapp = load_profile("whatsapp")
    empty = Profile(
        name="empty",
        app="Empty",
        about="",
        timers=whatsapp.timers,
        policies=whatsapp.policies,
        labels=whatsapp.labels,
        rules=(),
    )
    with pytest.raises(ProfileError, match=r"'empty' has no label for a outgoing call"):
        empty.label(summary("outgoing", "busy", reached=False))


# --- Broken profile files -------------------------------------------------------------------------


VALID = """\
    name: broken
    app: Broken
    about: A profile for the tests.
    timers:
      dial_timeout: 30s
      ring_timeout: 45s
      reconnect_grace: 10s
      heartbeat_interval: 5s
      heartbeat_timeout: 5s
    policies:
      block_revealed: false
      decline_as_busy: false
      missed_after_reconnect: true
      ring_timer: server
    labels:
      canceled: {text: Canceled call, source: inferred}
      missed: {text: Missed call, source: inferred}
    rules:
      - {direction: outgoing, label: canceled}
      - {direction: incoming, label: missed}
"""


@pytest.fixture
def profile_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Profiles load from ``tmp_path`` instead of the package folder."""
    monkeypatch.setattr(profiles, "resources", SimpleNamespace(files=lambda _package: tmp_path))
    load_profile.cache_clear()
    yield tmp_path
    load_profile.cache_clear()


def write(folder: Path, text: str, name: str = "broken") -> None:
    (folder / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


def test_the_test_profile_folder_works(profile_folder: Path) -> None:
    write(profile_folder, VALID)
    assert profile_names() == ["broken"]
    profile = load_profile("broken")
    assert profile.label(summary("outgoing", "busy", reached=False)) == "canceled"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("rules:", "rules:\n  - {direction: outgoing, label: hung_up}"),
            "unknown label 'hung_up'",
        ),
        (("dial_timeout: 30s", "dial_timeout: soon"), "invalid duration 'soon'"),
        (("dial_timeout: 30s", "dial_timeout: -5s"), "cannot be negative"),
        (("  heartbeat_timeout: 5s\n", ""), "heartbeat_timeout"),
        (("  heartbeat_timeout: 5s\n", "  heartbeat_timeout: 5s\n  nap: 1s\n"), "nap"),
        (("app: Broken", "app: Broken\ncolour: red"), "colour"),
        (("source: inferred}", "}"), "source"),
        (("{direction: incoming,", "{direction: sideways,"), "sideways"),
        (("{direction: incoming,", "{causes: [hangup],"), "hangup"),
        (("rules:", "rules: [\n"), "line 20"),
    ],
    ids=[
        "rule-with-unknown-label",
        "bad-duration",
        "negative-duration",
        "missing-timer",
        "unknown-timer",
        "unknown-key",
        "label-without-source",
        "bad-direction",
        "bad-cause",
        "invalid-yaml",
    ],
)
def test_a_broken_profile_file_is_a_profile_error_naming_the_problem(
    profile_folder: Path, change: tuple[str, str], problem: str
) -> None:
    old, new = change
    text = textwrap.dedent(VALID)
    assert old in text
    write(profile_folder, text.replace(old, new, 1))
    with pytest.raises(ProfileError) as caught:
        load_profile("broken")
    message = str(caught.value)
    assert message.startswith("profile 'broken' ("), message
    assert problem in message, message


def test_an_empty_profile_file_is_a_profile_error(profile_folder: Path) -> None:
    write(profile_folder, "")
    with pytest.raises(ProfileError, match="profile 'broken'"):
        load_profile("broken")


def test_the_server_takes_the_timers_in_force_and_the_profiles_policies() -> None:
    telegram = load_profile("telegram")
    timers = dataclasses.replace(telegram.timers, ring_timeout=7.0)  # a scenario's own
    assert switchboard_settings(timers, telegram) == SwitchboardSettings(
        dial_timeout=telegram.timers.dial_timeout,
        ring_timeout=7.0,
        reconnect_grace=telegram.timers.reconnect_grace,
        block_revealed=True,
        decline_as_busy=True,
        missed_after_reconnect=telegram.policies.missed_after_reconnect,
        ring_timer="caller",
    )
