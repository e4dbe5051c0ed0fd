"""The six non-default label profiles, checked as data against shared/reference/labels.md.

Each file is read with ``yaml.safe_load`` directly rather than through the loader, so these
checks stand on their own: the shape of the file, that its sources are whole, that its
policies are valid, that its rules give a label to every way a call can end for each end
(first match wins, as :meth:`scenarios.profiles.LabelRule.matches` does it), and spot
checks of labels.md's table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import scenarios.profiles
from scenarios.durations import parse_duration
from signaling.calls import Cause


PROFILES = ["signal", "telegram", "element", "sip", "twilio", "asterisk"]
FOLDER = Path(scenarios.profiles.__file__).parent

TOP_LEVEL_KEYS = {"name", "app", "about", "timers", "policies", "labels", "rules"}
TIMER_KEYS = {
    "dial_timeout",
    "ring_timeout",
    "reconnect_grace",
    "heartbeat_interval",
    "heartbeat_timeout",
}
RULE_KEYS = {"direction", "answered", "reached", "causes", "label"}
POLICY_KEYS = {"block_revealed", "decline_as_busy", "missed_after_reconnect", "ring_timer"}
RING_TIMERS = {"server", "caller", "callee"}
DIRECTIONS = ("outgoing", "incoming")

UNANSWERED = {"canceled", "declined", "busy", "no_answer", "unreachable", "dropped"}
AFTER_ANSWER = {"hung_up", "dropped", "failed"}  # failed: media calls only


def read(name: str) -> dict[str, Any]:
    data = yaml.safe_load((FOLDER / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name}.yaml is not a mapping"
    return data


def possible_causes(policies: dict[str, Any], direction: str, answered: bool) -> set[str]:
    """The end causes one end can know, under the profile's policies."""
    if answered:
        return set(AFTER_ANSWER)
    causes = set(UNANSWERED)
    if direction == "incoming":
        # Another device of the callee's name answered or declined (a glare loser is not
        # a log entry at all, so it needs no label).
        causes |= {"answered_elsewhere", "declined_elsewhere"}
    if direction == "outgoing":
        # The caller hears the server's reason: busy for a hidden decline, blocked if revealed.
        if policies["decline_as_busy"]:
            causes.discard("declined")
        if policies["block_revealed"]:
            causes.add("blocked")
    return causes


def matches(
    rule: dict[str, Any], direction: str, answered: bool, reached: bool, cause: str
) -> bool:
    """Mirrors LabelRule.matches: a key left out matches anything."""
    return (
        (rule.get("direction") is None or rule["direction"] == direction)
        and (rule.get("answered") is None or rule["answered"] == answered)
        and (rule.get("reached") is None or rule["reached"] == reached)
        and (rule.get("causes") is None or cause in rule["causes"])
    )


def label_for(
    profile: dict[str, Any], direction: str, answered: bool, reached: bool, cause: str
) -> str | None:
    """The label key of the first rule that matches, or None."""
    for rule in profile["rules"]:
        if matches(rule, direction, answered, reached, cause):
            return str(rule["label"])
    return None


def every_case(profile: dict[str, Any]) -> list[tuple[str, bool, bool, str]]:
    """Every (direction, answered, reached, cause) one end can know at the end of a call."""
    cases = []
    for direction in DIRECTIONS:
        for answered in (False, True):
            # An answered call was reached; an unanswered one may or may not have been.
            for reached in (True,) if answered else (False, True):
                for cause in sorted(possible_causes(profile["policies"], direction, answered)):
                    cases.append((direction, answered, reached, cause))
    return cases


# --- The shape of each file ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_the_file_has_exactly_the_profile_keys_and_its_own_name(name: str) -> None:
    profile = read(name)
    assert set(profile) == TOP_LEVEL_KEYS
    assert profile["name"] == name
    assert isinstance(profile["app"], str) and profile["app"].strip()
    assert isinstance(profile["about"], str) and profile["about"].strip()


@pytest.mark.parametrize("name", PROFILES)
def test_the_timers_are_the_five_durations(name: str) -> None:
    timers = read(name)["timers"]
    assert set(timers) == TIMER_KEYS
    for key, value in timers.items():
        assert parse_duration(value) > 0, key


@pytest.mark.parametrize("name", PROFILES)
def test_the_policies_are_exactly_the_four_keys_with_valid_values(name: str) -> None:
    policies = read(name)["policies"]
    assert isinstance(policies, dict)
    assert set(policies) == POLICY_KEYS
    for key in ("block_revealed", "decline_as_busy", "missed_after_reconnect"):
        assert isinstance(policies[key], bool), key
    assert policies["ring_timer"] in RING_TIMERS


@pytest.mark.parametrize("name", PROFILES)
def test_every_label_has_a_snake_case_key_a_text_and_a_source(name: str) -> None:
    labels = read(name)["labels"]
    assert labels
    for key, label in labels.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", key), key
        assert set(label) == {"text", "source"}, key
        assert isinstance(label["text"], str) and label["text"].strip(), key
        assert isinstance(label["source"], str) and label["source"].strip(), key


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.parametrize("name", PROFILES)
def test_every_source_is_whole_and_cites_labels_md_or_says_inferred(name: str) -> None:
    # An unquoted source is cut at its first " #": "labels.md §1 #4 (...)" would load as
    # "labels.md §1", losing its row and leaving its parenthesis open.
    for key, label in read(name)["labels"].items():
        source = label["source"]
        where = f"{name}.{key}: {source!r}"
        assert source == source.strip(), where
        assert _balanced(source), where
        assert source.count('"') % 2 == 0, where
        assert not re.search(r"[(,;:§#]$", source), where
        assert not re.search(r"§1(?! #\d)", source), f"{where} names §1 without its row"
        assert "labels.md §" in source or source.startswith("inferred ("), where


# --- The rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_every_rule_is_well_formed_and_gives_a_defined_label(name: str) -> None:
    profile = read(name)
    assert profile["rules"]
    known_causes = {str(cause) for cause in Cause}
    for rule in profile["rules"]:
        assert set(rule) <= RULE_KEYS and "label" in rule, rule
        assert rule["label"] in profile["labels"], rule
        assert rule.get("direction", "outgoing") in DIRECTIONS, rule
        assert isinstance(rule.get("answered", True), bool), rule
        assert isinstance(rule.get("reached", True), bool), rule
        causes = rule.get("causes", [])
        assert isinstance(causes, list), rule
        assert set(causes) <= known_causes, rule


@pytest.mark.parametrize("name", PROFILES)
def test_every_label_is_given_by_some_rule(name: str) -> None:
    profile = read(name)
    given = {rule["label"] for rule in profile["rules"]}
    assert set(profile["labels"]) == given


@pytest.mark.parametrize("name", PROFILES)
def test_every_way_a_call_can_end_gets_a_label_by_first_match(name: str) -> None:
    profile = read(name)
    unlabeled = [case for case in every_case(profile) if label_for(profile, *case) is None]
    assert not unlabeled, f"{name}: no rule for (direction, answered, reached, cause) {unlabeled}"


@pytest.mark.parametrize("name", PROFILES)
def test_every_rule_can_match_something(name: str) -> None:
    # A rule that never wins for any possible case is dead (shadowed, or names no cause
    # that can reach it).
    profile = read(name)
    winners = set()
    for case in every_case(profile):
        for index, rule in enumerate(profile["rules"]):
            if matches(rule, *case):
                winners.add(index)
                break
    dead = [rule for index, rule in enumerate(profile["rules"]) if index not in winners]
    assert not dead, f"{name}: rules that never win: {dead}"


def test_a_blocked_caller_gets_a_label_only_where_the_block_is_revealed() -> None:
    for name in PROFILES:
        profile = read(name)
        revealed = profile["policies"]["block_revealed"]
        assert ("blocked" in possible_causes(profile["policies"], "outgoing", False)) is revealed
    assert read("telegram")["policies"]["block_revealed"] is True


# --- Policies and timers that labels.md states --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "policy", "value"),
    [
        ("telegram", "block_revealed", True),  # USER_IS_BLOCKED (§1 #9)
        ("telegram", "decline_as_busy", True),  # DISCARD_REASON_LINE_BUSY (§1 #3)
        ("twilio", "decline_as_busy", True),  # callInvite.reject() gives busy (§1 #3)
        ("sip", "missed_after_reconnect", False),  # no missed call reaches a SIP phone (§1 #6)
        ("signal", "ring_timer", "caller"),  # §1 #4
        ("element", "ring_timer", "caller"),
        ("telegram", "ring_timer", "caller"),
        ("signal", "block_revealed", False),
        ("element", "block_revealed", False),
        ("sip", "block_revealed", False),
        ("twilio", "block_revealed", False),
        ("asterisk", "block_revealed", False),
    ],
)
def test_policies_follow_labels_md(name: str, policy: str, value: object) -> None:
    assert read(name)["policies"][policy] == value


@pytest.mark.parametrize(
    ("name", "dial", "ring"),
    [
        ("signal", 60.0, 60.0),  # RingRTC TIME_OUT_PERIOD
        ("telegram", 20.0, 90.0),  # receive 20 s, ring 90 s
        ("element", 60.0, 60.0),  # matrix-js-sdk CALL_TIMEOUT_MS
        ("sip", 32.0, 181.0),  # Timer B; Timer C > 3 min
        ("twilio", 30.0, 30.0),  # <Dial> no-answer timeout
    ],
)
def test_timers_follow_labels_md(name: str, dial: float, ring: float) -> None:
    timers = read(name)["timers"]
    assert parse_duration(timers["dial_timeout"]) == dial
    assert parse_duration(timers["ring_timeout"]) == ring


# --- Spot checks of labels.md's table -----------------------------------------------------------

# (profile, direction, answered, reached, cause, expected key or None, expected text)
SPOT_CHECKS = [
    # Signal: every outgoing call not accepted is "Unanswered" (§5.5); the callee misses it.
    ("signal", "outgoing", False, True, "no_answer", "unanswered", "Unanswered voice call"),
    ("signal", "outgoing", False, True, "declined", "unanswered", "Unanswered voice call"),
    ("signal", "outgoing", False, False, "unreachable", "unanswered", "Unanswered voice call"),
    ("signal", "incoming", False, True, "busy", "missed", "Missed voice call"),
    ("signal", "incoming", False, True, "declined", "declined", "You declined a voice call"),
    ("signal", "outgoing", True, True, "dropped", "outgoing", "Outgoing voice call"),
    # Telegram: blocks revealed, declines look busy, British "Cancelled".
    ("telegram", "outgoing", False, True, "canceled", "canceled", "Cancelled Call"),
    ("telegram", "incoming", False, True, "canceled", "missed", "Missed Call"),
    ("telegram", "incoming", False, False, "unreachable", "missed", "Missed Call"),
    ("telegram", "outgoing", False, True, "busy", "outgoing", "Outgoing Call"),
    ("telegram", "incoming", False, True, "declined", "declined", "Declined Call"),
    ("telegram", "outgoing", False, False, "blocked", "blocked", None),
    ("telegram", "outgoing", True, True, "hung_up", "outgoing", "Outgoing Call"),
    # Element: a cancel is "Call ended"; an unreachable callee is "No answer".
    ("element", "outgoing", False, False, "canceled", "call_ended", "Call ended"),
    ("element", "outgoing", False, True, "canceled", "call_ended", "Call ended"),
    ("element", "outgoing", False, True, "no_answer", "no_answer", "No answer"),
    ("element", "outgoing", False, False, "unreachable", "no_answer", "No answer"),
    ("element", "outgoing", False, False, "busy", "busy", "Connection failed"),
    ("element", "incoming", False, True, "declined", "declined", "Call declined"),
    ("element", "outgoing", False, True, "declined", "declined", "Call declined"),
    ("element", "incoming", False, True, "canceled", "missed", "Missed call"),
    ("element", "outgoing", True, True, "dropped", "connection_failed", "Connection failed"),
    ("element", "incoming", True, True, "hung_up", "call_ended", "Call ended"),
    # SIP: the responses each end saw.
    ("sip", "outgoing", False, True, "canceled", "request_terminated", "487 Request Terminated"),
    ("sip", "outgoing", False, True, "declined", "decline", "603 Decline"),
    ("sip", "outgoing", False, False, "busy", "busy_here", "486 Busy Here"),
    ("sip", "outgoing", False, True, "no_answer", None, "480 Temporarily Unavailable"),
    ("sip", "outgoing", False, False, "unreachable", None, "408 Request Timeout"),
    ("sip", "incoming", False, False, "canceled", "no_entry", "(no entry)"),
    ("sip", "incoming", False, True, "canceled", "request_terminated", "487 Request Terminated"),
    # Twilio: the call status, on both ends.
    ("twilio", "incoming", False, True, "canceled", "canceled", "canceled"),
    ("twilio", "outgoing", False, True, "canceled", "canceled", "canceled"),
    ("twilio", "outgoing", False, True, "busy", "busy", "busy"),
    ("twilio", "incoming", False, True, "declined", "busy", "busy"),
    ("twilio", "outgoing", False, True, "no_answer", "no_answer", "no-answer"),
    ("twilio", "outgoing", False, False, "unreachable", "no_answer", "no-answer"),
    ("twilio", "outgoing", True, True, "dropped", "completed", "completed"),
    # Asterisk: DIALSTATUS for the caller, CDR disposition for the callee.
    ("asterisk", "outgoing", False, False, "unreachable", "chanunavail", "CHANUNAVAIL"),
    ("asterisk", "outgoing", False, True, "declined", "chanunavail", "CHANUNAVAIL"),
    ("asterisk", "outgoing", False, True, "canceled", "cancel", "CANCEL"),
    ("asterisk", "outgoing", False, True, "no_answer", "noanswer", "NOANSWER"),
    ("asterisk", "incoming", False, True, "canceled", "no_answer", "NO ANSWER"),
    ("asterisk", "incoming", False, True, "busy", "busy", "BUSY"),
    ("asterisk", "outgoing", True, True, "hung_up", "answer", "ANSWER"),
    ("asterisk", "incoming", True, True, "dropped", "answered", "ANSWERED"),
]


@pytest.mark.parametrize(
    ("name", "direction", "answered", "reached", "cause", "key", "text"),
    SPOT_CHECKS,
    ids=[f"{row[0]}-{row[1]}-{row[4]}-reached={row[3]}" for row in SPOT_CHECKS],
)
def test_spot_checks_of_the_labels_md_table(
    name: str,
    direction: str,
    answered: bool,
    reached: bool,
    cause: str,
    key: str | None,
    text: str | None,
) -> None:
    profile = read(name)
    label = label_for(profile, direction, answered, reached, cause)
    assert label is not None
    if key is not None:
        assert label == key
    if text is not None:
        assert profile["labels"][label]["text"] == text


def test_a_revealed_block_says_the_app_writes_no_entry() -> None:
    blocked = read("telegram")["labels"]["blocked"]
    assert blocked["text"].startswith("(no entry")
    assert "USER_IS_BLOCKED" in blocked["source"]


# --- The loader agrees ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_the_loader_labels_every_case_as_this_file_does(name: str) -> None:
    # Every cause the file's rules are checked against is one the core knows.
    known = {str(cause) for cause in Cause}
    assert all(case[3] in known for case in every_case(read(name)))
    from scenarios.profiles import load_profile
    from signaling.calls import CallInfo, CallSummary

    profile = read(name)
    loaded = load_profile(name)
    assert loaded.policies.block_revealed is profile["policies"]["block_revealed"]
    assert loaded.policies.ring_timer == profile["policies"]["ring_timer"]
    info = CallInfo("c1", "alice", "bob", "audio", 0.0)
    for direction, answered, reached, cause in every_case(profile):
        summary = CallSummary(
            who="alice" if direction == "outgoing" else "bob",
            info=info,
            direction=direction,  # type: ignore[arg-type]
            reached=reached,
            answered_at=2.0 if answered else None,
            lost_at=None,
            ended_at=20.0,
            end_cause=Cause(cause),
        )
        assert loaded.label(summary) == label_for(profile, direction, answered, reached, cause)


# --- Several devices per name ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["whatsapp", *PROFILES])
def test_a_device_that_did_not_answer_never_logs_a_missed_call(name: str) -> None:
    # labels.md §4: a call answered (or declined) on one device and logged as missed on
    # another is the most common real-world call-log bug; no profile may make it.
    profile = read(name)
    missed_like = {"missed", "no_answer", "request_timeout"}
    for cause in ("answered_elsewhere", "declined_elsewhere"):
        for reached in (False, True):
            label = label_for(profile, "incoming", False, reached, cause)
            assert label is not None and label not in missed_like, (cause, reached, label)
    assert (
        label_for(profile, "incoming", False, True, "answered_elsewhere")
        != label_for(profile, "incoming", False, True, "canceled")
        or name == "twilio"
    )  # Twilio's cancel carries no reason (labels.md §4, #435)
