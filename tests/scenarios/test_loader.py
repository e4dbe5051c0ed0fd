import pickle
import textwrap
from typing import Any

import pytest

from scenarios.loader import ScenarioError, discover, load_scenario, load_scenario_text
from scenarios.model import (
    Action,
    Event,
    EventKind,
    ExpectedEntry,
    Fault,
    PhoneSpec,
    Scenario,
    Settings,
    Verb,
)


# The example of DESIGN.md's "Scenario format (the contract)", verbatim.
DESIGN_EXAMPLE = """\
name: caller cancels while ringing
about: Alice calls Bob and hangs up before Bob picks up.
profile: whatsapp               # optional; default whatsapp
settings:                       # optional; durations like "45s", "500ms", "2m"
  ring_timeout: 45s             # ringing with no answer ends as no_answer / missed
  dial_timeout: 30s             # callee never reached ends as canceled / (missed later)
  reconnect_grace: 10s          # how long a call waits for a phone whose link died
  heartbeat_interval: 5s        # and heartbeat_timeout: how a dead link is noticed
phones:                         # every phone, with its starting state
  alice: {}
  bob: {}
  carol: {power: off, blocks: [alice]}   # power: on|off, signal: on|off, blocks: [...]
steps:
  - at: 0s                      # absolute virtual time, or
    do: alice calls bob
  - when: bob rings             # an event, optionally with `after: 2s`
    after: 3s
    do: alice hangs up
expect:
  alice: canceled               # the phone's whole call log is exactly this one entry
  bob: missed
  carol: []                     # or a list, oldest first by the time each call was placed;
                                # [] means no entry at all
"""

WHATSAPP_LABELS = {"canceled", "missed", "declined", "no_answer", "busy", "outgoing", "incoming"}
SIGNAL_LABELS = {"unanswered", "missed", "declined", "outgoing", "incoming"}


def known_labels(profile: str) -> set[str] | None:
    return {"whatsapp": WHATSAPP_LABELS, "signal": SIGNAL_LABELS}.get(profile)


def load(text: str, **kwargs: Any) -> Scenario:
    return load_scenario_text(textwrap.dedent(text), "s.yaml", **kwargs)


def load_error(text: str, **kwargs: Any) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load(text, **kwargs)
    assert info.value.path == "s.yaml"
    return info.value


PHONES = """\
name: test
phones: {alice: {}, bob: {}, carol: {}}
"""


def steps_error(steps: str) -> ScenarioError:
    """Load PHONES plus a steps section; the first step starts at line 4."""
    return load_error(PHONES + "steps:\n" + textwrap.dedent(steps))


# The contract's example


def test_design_example_loads_with_its_values():
    scenario = load_scenario_text(DESIGN_EXAMPLE, "example.yaml")

    assert scenario.path == "example.yaml"
    assert scenario.name == "caller cancels while ringing"
    assert scenario.about == "Alice calls Bob and hangs up before Bob picks up."
    assert scenario.profile == "whatsapp"
    assert scenario.settings == Settings(
        ring_timeout=45.0, dial_timeout=30.0, reconnect_grace=10.0, heartbeat_interval=5.0
    )
    assert list(scenario.phones) == ["alice", "bob", "carol"]
    assert scenario.phones["alice"] == PhoneSpec("alice")
    assert scenario.phones["carol"] == PhoneSpec("carol", power=False, blocks=("alice",))

    first, second = scenario.steps
    assert (first.index, first.line, first.at, first.when, first.after) == (0, 14, 0.0, None, 0.0)
    assert first.action == Action(Verb.CALLS, "alice", "bob", "alice calls bob")
    assert (second.index, second.line, second.at, second.after) == (1, 16, None, 3.0)
    assert second.when == Event(EventKind.RINGS, "bob", "bob rings")
    assert second.action == Action(Verb.HANGS_UP, "alice", None, "alice hangs up")

    assert scenario.expect == {
        "alice": (ExpectedEntry(label="canceled"),),
        "bob": (ExpectedEntry(label="missed"),),
        "carol": (),
    }


def test_design_example_passes_label_and_profile_checks():
    scenario = load_scenario_text(DESIGN_EXAMPLE, known_labels=known_labels)
    assert scenario.profile == "whatsapp"


def test_expect_list_entries_may_be_labels_or_mappings():
    scenario = load(
        """\
        name: answered video call
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice video-calls bob
        expect:
          alice:
            - canceled
            - {label: outgoing, with: bob, kind: video, reached: true, duration: 10s}
          bob:
            - label: incoming
              direction: incoming
              reached: false
        """
    )
    assert scenario.expect == {
        "alice": (
            ExpectedEntry(label="canceled"),
            ExpectedEntry(label="outgoing", with_="bob", kind="video", reached=True, duration=10.0),
        ),
        "bob": (ExpectedEntry(label="incoming", direction="incoming", reached=False),),
    }
    assert scenario.steps[0].action.kind == "video"


def test_expected_entry_describes_only_the_keys_that_are_set():
    assert ExpectedEntry(label="canceled").describe() == "canceled"
    entry = ExpectedEntry(label="canceled", with_="bob", reached=True, duration=10.0)
    assert entry.describe() == "canceled with bob (reached, 10s)"
    entry = ExpectedEntry(label="outgoing", kind="video", direction="outgoing", duration=90.0)
    assert entry.describe() == "outgoing (video, outgoing, 1m30s)"
    assert (
        ExpectedEntry(with_="bob", reached=False).describe() == "any entry with bob (not reached)"
    )


def test_defaults_when_optional_sections_are_left_out():
    scenario = load(PHONES)
    assert scenario.about == ""
    assert scenario.profile == "whatsapp"
    assert scenario.settings == Settings()
    assert scenario.steps == ()
    assert scenario.expect is None


def test_phone_switches_accept_yaml_booleans_and_quoted_words():
    scenario = load(
        """\
        name: test
        phones:
          alice: {power: off, signal: "off", online: 'off'}
          bob: {power: on, signal: "on", online: true}
          carol:
        """
    )
    assert scenario.phones["alice"] == PhoneSpec("alice", power=False, signal=False, online=False)
    assert scenario.phones["bob"] == PhoneSpec("bob")
    assert scenario.phones["carol"] == PhoneSpec("carol")


def test_every_verb_and_event_form_is_understood():
    scenario = load(
        PHONES
        + textwrap.dedent(
            """\
        steps:
          - {at: 0s, do: alice calls bob}
          - {at: 0s, do: alice video-calls bob}
          - {when: bob rings, do: bob answers}
          - {when: alice hears ringing, do: bob declines}
          - {when: alice is in call, after: 500ms, do: alice hangs up}
          - {when: "alice's call ends", do: alice blocks carol}
          - {at: 1m, do: alice unblocks carol}
          - {at: 1m, do: bob powers off}
          - {at: 1m, do: bob powers on}
          - {at: 1m, do: bob loses signal}
          - {at: 1m, do: bob regains signal}
          - {at: 1m, do: bob goes offline}
          - {at: 1m, do: bob goes online}
          - {at: 1m, do: server restarts}
          - {at: 1m, do: server crashes}
        """
        )
    )
    actions = [(s.action.verb, s.action.actor, s.action.target) for s in scenario.steps]
    assert actions == [
        (Verb.CALLS, "alice", "bob"),
        (Verb.VIDEO_CALLS, "alice", "bob"),
        (Verb.ANSWERS, "bob", None),
        (Verb.DECLINES, "bob", None),
        (Verb.HANGS_UP, "alice", None),
        (Verb.BLOCKS, "alice", "carol"),
        (Verb.UNBLOCKS, "alice", "carol"),
        (Verb.POWERS_OFF, "bob", None),
        (Verb.POWERS_ON, "bob", None),
        (Verb.LOSES_SIGNAL, "bob", None),
        (Verb.REGAINS_SIGNAL, "bob", None),
        (Verb.GOES_OFFLINE, "bob", None),
        (Verb.GOES_ONLINE, "bob", None),
        (Verb.SERVER_RESTARTS, None, None),
        (Verb.SERVER_CRASHES, None, None),
    ]
    events = [(s.when.kind, s.when.phone) for s in scenario.steps if s.when is not None]
    assert events == [
        (EventKind.RINGS, "bob"),
        (EventKind.HEARS_RINGING, "alice"),
        (EventKind.IS_IN_CALL, "alice"),
        (EventKind.CALL_ENDS, "alice"),
    ]
    assert scenario.steps[4].after == 0.5
    assert [s.action.kind for s in scenario.steps[:2]] == ["audio", "video"]


def test_action_whitespace_is_normalised_but_the_text_is_kept():
    scenario = load(PHONES + "steps:\n  - {at: 0s, do: '  alice   calls  bob '}\n")
    action = scenario.steps[0].action
    assert (action.verb, action.actor, action.target) == (Verb.CALLS, "alice", "bob")
    assert action.text == "  alice   calls  bob "


def test_equal_at_times_and_when_steps_in_between_are_fine():
    scenario = load(
        PHONES
        + textwrap.dedent(
            """\
        steps:
          - {at: 5s, do: alice calls bob}
          - {when: bob rings, do: bob answers}
          - {at: 5s, do: carol powers off}
          - {at: 6s, do: carol powers on}
        """
        )
    )
    assert [s.at for s in scenario.steps] == [5.0, None, 5.0, 6.0]


def test_labels_are_not_checked_without_known_labels():
    scenario = load(PHONES + "profile: nonesuch\nexpect: {alice: whatever}\n")
    assert scenario.profile == "nonesuch"
    assert scenario.expect == {"alice": (ExpectedEntry(label="whatever"),)}


def test_labels_are_checked_against_the_scenario_profile():
    scenario = load(
        PHONES + "profile: signal\nexpect: {alice: unanswered}\n", known_labels=known_labels
    )
    assert scenario.expect == {"alice": (ExpectedEntry(label="unanswered"),)}


def test_scenarios_and_errors_survive_pickling():
    scenario = load_scenario_text(DESIGN_EXAMPLE)
    assert pickle.loads(pickle.dumps(scenario)) == scenario
    error = ScenarioError("s.yaml", 3, "boom")
    assert str(pickle.loads(pickle.dumps(error))) == "s.yaml:3: boom"


# Errors: each names the line and what is wrong


def test_error_str_has_path_line_and_message():
    assert str(ScenarioError("s.yaml", 3, "name: empty")) == "s.yaml:3: name: empty"
    assert str(ScenarioError("s.yaml", None, "no such file or folder")) == (
        "s.yaml: no such file or folder"
    )


def test_bad_yaml_syntax():
    error = load_error(
        """\
        name: test
        phones:
          alice: {}
          bob: [alice
        """
    )
    # Noticed at the end of the stream, reported at the last line there is.
    assert error.line == 4
    assert error.message.startswith("invalid YAML: expected ',' or ']'")
    assert "(while parsing a flow sequence at line 4)" in error.message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name: test\n  about: x\nphones: {a: {}}\n", 2, "mapping values are not allowed here"),
        ("name: 'test\nphones: {a: {}}\n", 2, "while scanning a quoted scalar at line 1"),
        ("name: test\nphones: {a: {}}\n---\nname: again\n", 3, "holds one document"),
        ("name: *nope\nphones: {a: {}}\n", 1, "found undefined alias 'nope'"),
    ],
)
def test_more_bad_yaml_syntax(text, line, message):
    error = load_error(text)
    assert error.line == line
    assert message in error.message


def test_bad_yaml_syntax_with_a_tab():
    error = load_error("name: test\nphones:\n\talice: {}\n")
    assert error.line == 3
    assert "tabs" in error.message


def test_empty_file():
    error = load_error("")
    assert error.line is None
    assert "empty" in error.message


def test_duplicate_key_names_the_key_and_both_lines():
    error = load_error(
        """\
        name: test
        phones:
          alice: {}
          bob: {}
          alice: {power: off}
        """
    )
    assert error.line == 5
    assert "duplicate key 'alice'" in error.message
    assert "line 3" in error.message and "line 5" in error.message


def test_duplicate_key_inside_a_step():
    error = steps_error(
        """\
          - at: 0s
            do: alice calls bob
            do: bob calls alice
        """
    )
    assert error.line == 6
    assert error.message.startswith("steps[0]: duplicate key 'do'")


def test_unknown_top_level_key_with_suggestion():
    error = load_error(PHONES + "step: []\n")
    assert error.line == 3
    assert "unknown top-level key 'step'" in error.message
    assert "did you mean 'steps'?" in error.message


def test_missing_name():
    error = load_error("about: nothing\nphones: {alice: {}}\n")
    assert error.line == 1
    assert "missing 'name'" in error.message


def test_name_must_be_text():
    error = load_error("name: [a]\nphones: {alice: {}}\n")
    assert error.line == 1
    assert error.message == "name: expected text, got a list"


@pytest.mark.parametrize("phones", ["", "{}", "[alice, bob]"])
def test_phones_must_be_a_non_empty_mapping(phones):
    error = load_error(f"name: test\nphones: {phones}\n")
    assert error.line == 2
    assert error.message.startswith("phones: expected a mapping of phone names")


def test_missing_phones():
    error = load_error("name: test\n")
    assert error.line == 1
    assert "missing 'phones'" in error.message


@pytest.mark.parametrize("name", ["Bob", "9lives", "bob#2", "a" * 33, "'al ice'"])
def test_bad_phone_name(name):
    error = load_error(f"name: test\nphones:\n  alice: {{}}\n  {name}: {{}}\n")
    assert error.line == 4
    assert "is not a valid phone name" in error.message
    assert "starting with a lowercase letter" in error.message


def test_server_is_not_a_phone_name():
    error = load_error("name: test\nphones:\n  server: {}\n")
    assert error.line == 3
    assert "'server' is reserved" in error.message


def test_phone_switch_must_be_on_or_off():
    error = load_error("name: test\nphones:\n  alice: {}\n  bob:\n    signal: weak\n")
    assert error.line == 5
    assert error.message == "phones.bob.signal: expected on or off, got 'weak'"


def test_unknown_phone_key_with_suggestion():
    error = load_error("name: test\nphones:\n  alice:\n    pwer: off\n")
    assert error.line == 4
    assert "unknown key 'pwer' (did you mean 'power'?)" in error.message


def test_blocks_must_name_declared_phones():
    error = load_error(
        "name: test\nphones:\n  alice:\n    blocks:\n      - bob\n      - dave\n  bob: {}\n"
    )
    assert error.line == 6
    assert "phones.alice.blocks[1]: 'dave' is not a declared phone" in error.message
    assert "declared phones: alice, bob" in error.message


def test_blocks_may_name_a_phone_declared_further_down():
    scenario = load("name: test\nphones:\n  alice: {blocks: [bob]}\n  bob: {}\n")
    assert scenario.phones["alice"].blocks == ("bob",)


def test_a_phone_cannot_block_itself_at_the_start():
    error = load_error("name: test\nphones:\n  alice: {}\n  bob: {blocks: [bob]}\n")
    assert error.line == 4
    assert "cannot block itself" in error.message


def test_unknown_verb_with_suggestion():
    error = steps_error(
        """\
          - at: 0s
            do: alice cals bob
        """
    )
    assert error.line == 5
    assert error.message == (
        "steps[0].do: unknown action 'alice cals bob' (did you mean 'alice calls bob'?)"
    )


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("alice hang up", "alice hangs up"),
        ("alice video calls bob", "alice video-calls bob"),
        ("alice power off", "alice powers off"),
        ("server restart", "server restarts"),
    ],
)
def test_unknown_verb_suggestions(text, suggestion):
    error = steps_error(f"  - at: 0s\n    do: {text}\n")
    assert f"did you mean '{suggestion}'?" in error.message


def test_unknown_verb_without_close_match_lists_the_verbs():
    error = steps_error("  - at: 0s\n    do: alice teleports\n")
    assert error.line == 5
    assert "unknown action 'alice teleports'" in error.message
    assert "video-calls <phone>" in error.message and "server crashes" in error.message


def test_server_verb_written_for_a_phone():
    error = steps_error("  - at: 0s\n    do: alice crashes\n")
    assert error.message == "steps[0].do: only the server crashes: write 'server crashes'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice calls", "'calls' needs a phone after it"),
        ("alice calls bob carol", "'calls' needs one phone after it"),
        ("alice answers bob", "'answers' takes nothing after it"),
    ],
)
def test_verb_arity(text, expected):
    error = steps_error(f"  - at: 0s\n    do: {text}\n")
    assert error.line == 5
    assert expected in error.message


@pytest.mark.parametrize("text", ["dave calls bob", "alice calls dave", "dave hangs up"])
def test_undeclared_phone_in_an_action(text):
    error = steps_error(f"  - at: 0s\n    do: {text}\n")
    assert error.line == 5
    assert "'dave' is not a declared phone" in error.message
    assert "declared phones: alice, bob, carol" in error.message


def test_undeclared_phone_suggests_the_closest_name():
    error = steps_error("  - at: 0s\n    do: Alice calls bob\n")
    assert "'Alice' is not a declared phone (did you mean 'alice'?)" in error.message


def test_undeclared_phone_in_an_event():
    error = steps_error("  - when: dave rings\n    do: alice hangs up\n")
    assert error.line == 4
    assert error.message.startswith("steps[0].when: 'dave' is not a declared phone")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice calls alice", "a phone cannot call itself"),
        ("alice video-calls alice", "a phone cannot call itself"),
        ("alice blocks alice", "a phone cannot block itself"),
    ],
)
def test_self_call_and_self_block(text, message):
    error = steps_error(
        f"""\
          - at: 0s
            do: bob answers
          - at: 1s
            do: {text}
        """
    )
    assert error.line == 7
    assert error.message.startswith(f"steps[1].do: {message}")


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("bob ring", "bob rings"),
        ("bob call ends", "bob's call ends"),
        ("alice hears rining", "alice hears ringing"),
    ],
)
def test_unknown_event_with_suggestion(text, suggestion):
    error = steps_error(f"  - when: {text}\n    do: alice hangs up\n")
    assert error.line == 4
    assert error.message == f"steps[0].when: unknown event '{text}' (did you mean '{suggestion}'?)"


def test_at_and_when_together():
    error = steps_error(
        """\
          - at: 0s
            do: alice calls bob
          - at: 1s
            when: bob rings
            do: alice hangs up
        """
    )
    assert error.line == 7
    assert error.message == "steps[1]: use either 'at' or 'when', not both"


def test_neither_at_nor_when():
    error = steps_error(
        """\
          - at: 0s
            do: alice calls bob
          - do: alice hangs up
        """
    )
    assert error.line == 6
    assert error.message.startswith("steps[1]: missing 'at' or 'when'")


def test_after_without_when():
    error = steps_error(
        """\
          - at: 0s
            after: 2s
            do: alice calls bob
        """
    )
    assert error.line == 5
    assert error.message.startswith("steps[0]: 'after' only goes with 'when'")


def test_missing_do():
    error = steps_error("  - at: 0s\n  - at: 1s\n    do: alice calls bob\n")
    assert error.line == 4
    assert error.message.startswith("steps[0]: missing 'do'")


def test_unknown_step_key_with_suggestion():
    error = steps_error("  - at: 0s\n    doo: alice calls bob\n")
    assert error.line == 5
    assert "steps[0]: unknown key 'doo' (did you mean 'do'?)" in error.message


def test_steps_must_be_a_list_of_mappings():
    error = steps_error("  - alice calls bob\n")
    assert error.line == 4
    assert error.message.startswith("steps[0]: expected a step such as")


def test_decreasing_at_names_both_steps():
    error = steps_error(
        """\
          - at: 10s
            do: alice calls bob
          - when: bob rings
            do: bob answers
          - at: 5s
            do: alice hangs up
        """
    )
    assert error.line == 8
    assert error.message == (
        "steps[2].at: 5s is earlier than 10s at steps[0] (line 4); 'at' times must not decrease"
    )


def test_bad_duration_in_a_step():
    error = steps_error("  - at: 5 sec\n    do: alice calls bob\n")
    assert error.line == 4
    assert error.message == (
        "steps[0].at: invalid duration '5 sec': "
        "use a number of seconds or forms like 45s, 500ms, 2m, 1m30s"
    )


def test_bad_duration_in_after():
    error = steps_error("  - when: bob rings\n    after: -2s\n    do: alice hangs up\n")
    assert error.line == 5
    assert "steps[0].after: invalid duration '-2s'" in error.message


def test_bad_duration_in_settings():
    error = load_error(PHONES + "settings:\n  ring_timeout: 45s\n  dial_timeout: soon\n")
    assert error.line == 5
    assert "settings.dial_timeout: invalid duration 'soon'" in error.message


def test_zero_timer_in_settings():
    error = load_error(PHONES + "settings:\n  heartbeat_interval: 0s\n")
    assert error.line == 4
    assert error.message == "settings.heartbeat_interval: must be longer than 0s"


def test_unknown_settings_key_with_suggestion():
    error = load_error(PHONES + "settings:\n  ring_timout: 45s\n")
    assert error.line == 4
    assert "unknown key 'ring_timout' (did you mean 'ring_timeout'?)" in error.message


def test_unknown_profile():
    error = load_error(PHONES + "profile: whatsap\n", known_labels=known_labels)
    assert error.line == 3
    assert error.message == "profile: unknown profile 'whatsap'"


def test_unknown_label_with_known_labels():
    error = load_error(
        PHONES + "expect:\n  alice: canceled\n  bob: [cancelled]\n", known_labels=known_labels
    )
    assert error.line == 5
    assert "expect.bob[0]: unknown label 'cancelled' for profile 'whatsapp'" in error.message
    assert "(did you mean 'canceled'?)" in error.message
    assert "known labels: busy, canceled, declined, incoming, missed, no_answer, outgoing" in (
        error.message
    )


def test_unknown_label_in_a_mapping_entry():
    error = load_error(
        PHONES + "expect:\n  alice:\n    - label: outgoin\n      with: bob\n",
        known_labels=known_labels,
    )
    assert error.line == 5
    assert "expect.alice[0].label: unknown label 'outgoin'" in error.message


def test_labels_follow_the_profile():
    error = load_error(
        PHONES + "profile: signal\nexpect: {alice: canceled}\n", known_labels=known_labels
    )
    assert error.line == 4
    assert "unknown label 'canceled' for profile 'signal'" in error.message


def test_expect_entry_null():
    error = load_error(PHONES + "expect:\n  alice: canceled\n  bob:\n")
    assert error.line == 5
    assert error.message.startswith("expect.bob: expected a label")


def test_expect_itself_null():
    error = load_error(PHONES + "expect:\n")
    assert error.line == 3
    assert error.message.startswith("expect: empty")


def test_expect_names_an_undeclared_phone():
    error = load_error(PHONES + "expect:\n  alice: canceled\n  dave: missed\n")
    assert error.line == 5
    assert "expect: 'dave' is not a declared phone" in error.message


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{with: dave}", "expect.alice[0].with: 'dave' is not a declared phone"),
        ("{with: alice}", "expect.alice[0].with: 'alice' cannot be in a call with itself"),
        ("{kind: voice}", "expect.alice[0].kind: expected audio or video, got 'voice'"),
        ("{direction: out}", "expect.alice[0].direction: expected outgoing or incoming"),
        ("{reached: maybe}", "expect.alice[0].reached: expected true or false, got 'maybe'"),
        ("{duration: long}", "expect.alice[0].duration: invalid duration 'long'"),
        ("{lable: missed}", "unknown key 'lable' (did you mean 'label'?)"),
        ("42", "expect.alice[0]: expected a label or a mapping"),
    ],
)
def test_bad_expect_entries(entry, message):
    error = load_error(PHONES + f"expect:\n  alice:\n    - {entry}\n")
    assert error.line == 5
    assert message in error.message


def test_unknown_yaml_tag():
    error = load_error("name: !!python/name:os.system x\nphones: {alice: {}}\n")
    assert error.line == 1
    assert "cannot read this value" in error.message


# Files and folders


def test_load_scenario_reads_a_file_and_reports_its_path(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(DESIGN_EXAMPLE, encoding="utf-8")
    assert load_scenario(good).path == str(good)

    bad = tmp_path / "bad.yaml"
    bad.write_text(PHONES + "steps:\n  - at: 0s\n    do: alice calls dave\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    assert str(info.value).startswith(f"{bad}:5: steps[0].do: 'dave' is not a declared phone")


def test_load_scenario_missing_file(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.yaml")
    assert info.value.line is None
    assert info.value.message == "no such file or folder"


def test_load_scenario_rejects_non_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\nphones: {alice: {}}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.line == 1
    assert "not UTF-8" in info.value.message


def test_discover_expands_folders_and_keeps_files_as_given(tmp_path):
    library = tmp_path / "library"
    (library / "nested").mkdir(parents=True)
    (library / ".hidden").mkdir()
    for name in ["b.yaml", "a.yml", "notes.txt", ".draft.yaml", "nested/c.yaml", ".hidden/d.yaml"]:
        (library / name).write_text("", encoding="utf-8")
    single = tmp_path / "single.txt"
    single.write_text("", encoding="utf-8")

    found = discover([single, str(library), library / "b.yaml"])

    assert found == [
        single,
        library / "a.yml",
        library / "b.yaml",
        library / "nested" / "c.yaml",
    ]


def test_discover_missing_path(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(ScenarioError) as info:
        discover([tmp_path, missing])
    assert info.value.path == str(missing)
    assert info.value.line is None
    assert info.value.message == "no such file or folder"


# --- expect_profiles ---------------------------------------------------------------------------


def _labels_of(profile: str) -> list[str] | None:
    return {
        "whatsapp": ["canceled", "missed"],
        "signal": ["unanswered", "missed"],
    }.get(profile)


def test_expect_profiles_are_checked_against_each_profiles_own_labels():
    scenario = load_scenario_text(
        PHONES
        + "expect: {alice: canceled}\n"
        + "expect_profiles:\n  signal: {alice: unanswered, bob: [missed]}\n",
        known_labels=_labels_of,
    )
    assert scenario.expect_profiles["signal"]["alice"] == (ExpectedEntry(label="unanswered"),)
    assert scenario.expectations_for("signal")["bob"] == (ExpectedEntry(label="missed"),)
    assert scenario.expectations_for("whatsapp") == {"alice": (ExpectedEntry(label="canceled"),)}
    assert scenario.expectations_for("telegram") is None


def test_a_label_of_the_scenarios_profile_is_refused_under_another_profile():
    with pytest.raises(ScenarioError) as error:
        load_scenario_text(
            PHONES + "expect_profiles:\n  signal:\n    alice: canceled\n",
            known_labels=_labels_of,
        )
    assert error.value.line == 5
    assert "unknown label 'canceled' for profile 'signal'" in error.value.message


def test_an_unknown_profile_in_expect_profiles_is_named():
    with pytest.raises(ScenarioError) as error:
        load_scenario_text(
            PHONES + "expect_profiles:\n  sgnal: {alice: missed}\n", known_labels=_labels_of
        )
    assert error.value.line == 4
    assert "unknown profile 'sgnal'" in error.value.message


# --- Contract extension: fault steps and media ---------------------------------------------------

# The fault steps of DESIGN.md's "Extensions of the contract", verbatim.
DESIGN_FAULTS = """\
steps:
  - at: 5s                            # faults on a phone's link (and media path)
    fault: {phone: alice, delay: 300ms, jitter: 50ms}
  - at: 6s
    fault: {phone: bob, drop: answer, direction: to_phone, count: 1}
  - at: 9s
    fault: {phone: alice, media_loss: 30%}
  - at: 20s
    fault: {phone: alice, clear: true}
"""


def test_the_design_fault_steps_load():
    scenario = load(PHONES + DESIGN_FAULTS)
    faults = [step.fault for step in scenario.steps]
    assert faults == [
        Fault("alice", delay=0.3, jitter=0.05),
        Fault("bob", direction="to_phone", drop=("answer",), count=1),
        Fault("alice", media_loss=0.3),
        Fault("alice", clear=True),
    ]
    assert [step.action.verb for step in scenario.steps] == [Verb.FAULT] * 4
    assert scenario.steps[1].action.text == "fault on bob: drop answer to_phone (1)"
    assert scenario.steps[1].action.actor == "bob"
    assert scenario.extensions == ("fault",)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            "{phone: bob, drop: [ringing, answer], probability: 0.25}",
            Fault("bob", drop=("ringing", "answer"), probability=0.25),
        ),
        (
            "{phone: bob, drop: any, direction: to_server}",
            Fault("bob", direction="to_server", drop=("any",)),
        ),
        (
            "{phone: bob, black_hole: true, direction: to_phone}",
            Fault("bob", direction="to_phone", black_hole=True),
        ),
        ("{phone: bob, reset: true}", Fault("bob", reset=True)),
        ("{phone: bob, slow_close: 2s}", Fault("bob", slow_close=2.0)),
        ("{phone: bob, media_loss: 1}", Fault("bob", media_loss=1.0)),
        ("{phone: bob, media_black_hole: true}", Fault("bob", media_black_hole=True)),
    ],
)
def test_every_fault_kind_loads(fault, expected):
    scenario = load(PHONES + f"steps:\n  - at: 1s\n    fault: {fault}\n")
    assert scenario.steps[0].fault == expected


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("{delay: 1s}", "steps[0].fault: missing 'phone'"),
        ("{phone: dave, delay: 1s}", "steps[0].fault.phone: 'dave' is not a declared phone"),
        ("{phone: bob}", "steps[0].fault: say which fault: one of delay, drop"),
        ("{phone: bob, delay: 1s, reset: true}", "one fault per step: 'delay' and 'reset'"),
        ("{phone: bob, reset: true, jitter: 1s}", "'jitter' goes with delay, not with 'reset'"),
        ("{phone: bob, delay: 1s, count: 2}", "'count' goes with drop, not with 'delay'"),
        ("{phone: bob, drop: anser}", "unknown message type 'anser' (did you mean 'answer'?)"),
        (
            "{phone: bob, drop: incoming, direction: to_server}",
            "'incoming' never goes to_server; it goes to_phone",
        ),
        ("{phone: bob, drop: answer, direction: up}", "expected one of to_server, to_phone, both"),
        ("{phone: bob, drop: answer, count: 0}", "expected a whole number of 1 or more, got 0"),
        ("{phone: bob, drop: answer, probability: 150%}", "expected a share such as 30% or 0.3"),
        ("{phone: bob, media_loss: lots}", "expected a share such as 30% or 0.3, got 'lots'"),
        (
            "{phone: bob, black_hole: false}",
            "expected true, got false (to undo a fault, use 'clear",
        ),
        ("{phone: bob, delay: soon}", "steps[0].fault.delay: invalid duration 'soon'"),
        ("{phone: bob, delay: 1s, colour: red}", "unknown key 'colour'"),
        ("delay", "steps[0].fault: expected a mapping such as {phone: alice, delay: 300ms}"),
    ],
)
def test_bad_fault_steps_name_the_line_and_the_field(fault, message):
    error = load_error(PHONES + f"steps:\n  - at: 1s\n    fault: {fault}\n")
    assert error.line == 5, error
    assert message in error.message, error.message


def test_a_step_cannot_both_do_and_fault():
    error = load_error(
        PHONES
        + "steps:\n  - at: 1s\n    do: alice calls bob\n    fault: {phone: bob, reset: true}\n"
    )
    assert error.line == 6
    assert "use either 'do' or 'fault', not both" in error.message


def test_a_fault_step_can_wait_for_an_event():
    scenario = load(
        PHONES + "steps:\n  - {at: 0s, do: alice calls bob}\n"
        "  - {when: bob rings, fault: {phone: bob, drop: answer, count: 1}}\n"
    )
    step = scenario.steps[1]
    assert step.when is not None and step.fault == Fault("bob", drop=("answer",), count=1)


def test_media_settings_load():
    scenario = load(PHONES + "settings: {media: true, media_timeout: 2s}\n")
    assert scenario.media is True
    assert scenario.settings == Settings(media_timeout=2.0)
    assert scenario.extensions == ("media",)
    assert load(PHONES).media is False
    assert load(PHONES).extensions == ()


def test_media_must_be_true_or_false():
    error = load_error(PHONES + "settings:\n  media: yes please\n")
    assert error.line == 4
    assert "settings.media: expected true or false, got 'yes please'" in error.message


# --- Several devices per name ---------------------------------------------------------------------

DEVICES = "name: test\nphones:\n  alice: {}\n  bob: {devices: 2}\n"


def test_devices_load_and_name_each_end():
    scenario = load(
        DEVICES
        + "steps:\n"
        + "  - {at: 0s, do: alice calls bob}\n"
        + "  - {when: 'bob#2 rings', do: 'bob#2 answers'}\n"
        + "expect:\n  alice: outgoing\n  'bob#1': answered_elsewhere\n  'bob#2': incoming\n"
    )
    assert scenario.phones["bob"].devices == 2
    assert scenario.phones["alice"].devices == 1
    assert scenario.ends == ["alice", "bob#1", "bob#2"]
    assert scenario.has_devices
    assert scenario.steps[0].action.target == "bob"
    assert scenario.steps[1].when is not None and scenario.steps[1].when.phone == "bob#2"
    assert scenario.steps[1].action.actor == "bob#2"
    assert scenario.expect is not None and set(scenario.expect) == {"alice", "bob#1", "bob#2"}


def test_one_device_is_the_plain_phone():
    scenario = load("name: test\nphones:\n  alice: {devices: 1}\n  bob: {}\n")
    assert scenario.ends == ["alice", "bob"]
    assert not scenario.has_devices


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "phones.bob.devices: expected 1 to 8 devices, got 0"),
        ("9", "phones.bob.devices: expected 1 to 8 devices, got 9"),
        ("two", "phones.bob.devices: expected a number of devices such as 2, got 'two'"),
        ("yes", "phones.bob.devices: expected a number of devices such as 2, got true"),
        ("1.5", "phones.bob.devices: expected a number of devices such as 2, got 1.5"),
    ],
)
def test_bad_device_counts(value, message):
    error = load_error(f"name: test\nphones:\n  alice: {{}}\n  bob: {{devices: {value}}}\n")
    assert error.line == 4
    assert error.message == message


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            "{at: 0s, do: bob answers}",
            "steps[0].do: 'bob' has 2 devices: say which one, bob#1 or bob#2",
        ),
        (
            "{at: 0s, do: bob calls alice}",
            "steps[0].do: 'bob' has 2 devices: say which one, bob#1 or bob#2",
        ),
        (
            "{at: 0s, do: 'bob#3 answers'}",
            "steps[0].do: 'bob#3' is not a device of 'bob', which has 2: bob#1, bob#2",
        ),
        (
            "{at: 0s, do: 'alice#1 hangs up'}",
            "steps[0].do: 'alice' has one device: write 'alice', not 'alice#1'",
        ),
        (
            "{at: 0s, do: 'alice calls bob#2'}",
            "steps[0].do: 'bob#2' is a device; write the phone's name 'bob' here",
        ),
        ("{at: 0s, do: 'bob#1 calls bob'}", "steps[0].do: a phone cannot call itself"),
        (
            "{when: bob rings, do: alice hangs up}",
            "steps[0].when: 'bob' has 2 devices: say which one, bob#1 or bob#2",
        ),
    ],
)
def test_a_phone_with_devices_is_named_by_device_where_one_acts(step, message):
    error = load_error(DEVICES + f"steps:\n  - {step}\n")
    assert error.line == 6
    assert error.message.startswith(message)


def test_expect_names_each_device():
    error = load_error(DEVICES + "expect:\n  bob: missed\n")
    assert error.line == 6
    assert error.message == "expect: 'bob' has 2 devices: say which one, bob#1 or bob#2"


def test_with_names_the_phone_not_a_device():
    error = load_error(DEVICES + "expect:\n  alice:\n    - {with: 'bob#1'}\n")
    assert error.line == 7
    assert "'bob#1' is a device; write the phone's name 'bob' here" in error.message
    error = load_error(DEVICES + "expect:\n  'bob#1':\n    - {with: bob}\n")
    assert "'bob#1' cannot be in a call with itself" in error.message
