"""What the server keeps: accounts and call records."""

from __future__ import annotations

from signaling.calls import CallState, Cause
from signaling.records import Account, CallRecord


def test_a_token_is_kept_as_a_hash_and_checked_in_full():
    account = Account("alice", Account.hash_token("a" * 32))
    assert account.token_hash != b"a" * 32
    assert len(account.token_hash) == 32
    assert account.token_matches("a" * 32)
    assert not account.token_matches("a" * 31 + "b")
    assert not account.token_matches("")


def test_a_call_record_is_over_only_once_ended_and_renders_flat():
    record = CallRecord("c1", "alice", "bob", "audio", 1.0, CallState.RINGING, blocked=False)
    assert not record.is_over
    ended = CallRecord(
        "c1",
        "alice",
        "bob",
        "audio",
        1.0,
        CallState.ENDED,
        False,
        True,
        None,
        9.0,
        Cause.CANCELED,
    )
    assert ended.is_over
    assert ended.as_event() == {
        "call_id": "c1",
        "caller": "alice",
        "callee": "bob",
        "kind": "audio",
        "placed_at": 1.0,
        "state": "ended",
        "blocked": False,
        "reached": True,
        "answered_at": None,
        "ended_at": 9.0,
        "cause": "canceled",
    }
