"""The scenario model: verbs, actions and the compact description of expectations."""

from __future__ import annotations

import pickle

import pytest

from scenarios.model import Action, ExpectedEntry, Scenario, Verb


@pytest.mark.parametrize(
    ("verb", "needs_target"),
    [
        (Verb.CALLS, True),
        (Verb.VIDEO_CALLS, True),
        (Verb.BLOCKS, True),
        (Verb.UNBLOCKS, True),
        (Verb.ANSWERS, False),
        (Verb.HANGS_UP, False),
        (Verb.LOSES_SIGNAL, False),
        (Verb.SERVER_CRASHES, False),
    ],
)
def test_verbs_that_name_a_second_phone(verb, needs_target):
    assert verb.needs_target is needs_target


def test_only_server_verbs_are_server_verbs():
    assert {v for v in Verb if v.is_server} == {Verb.SERVER_RESTARTS, Verb.SERVER_CRASHES}


def test_an_action_knows_its_call_kind():
    video = Action(Verb.VIDEO_CALLS, "alice", "bob", "alice video-calls bob")
    audio = Action(Verb.CALLS, "alice", "bob", "alice calls bob")
    assert (video.kind, audio.kind) == ("video", "audio")


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        (ExpectedEntry(), "any entry"),
        (ExpectedEntry(label="missed"), "missed"),
        (ExpectedEntry(label="canceled", with_="bob", reached=True), "canceled with bob (reached)"),
        (ExpectedEntry(label="outgoing", kind="video", duration=90.0), "outgoing (video, 1m30s)"),
        (ExpectedEntry(label="canceled", reached=False), "canceled (not reached)"),
    ],
)
def test_expected_entries_describe_only_what_they_check(entry, text):
    assert entry.describe() == text


def test_scenarios_pickle_for_worker_processes():
    scenario = Scenario(path="x.yaml", name="x", expect={"bob": (ExpectedEntry(label="missed"),)})
    assert pickle.loads(pickle.dumps(scenario)) == scenario
