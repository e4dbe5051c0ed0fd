"""The durable store: every change round-trips, batches are all or nothing, files survive.

Most tests run against the three stores the server can be given: :class:`MemoryStore`, an
in-memory :class:`SqliteStore` and a file :class:`SqliteStore`, which must behave alike.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signaling.calls import CallState, Cause
from signaling.messages import MissedCall
from signaling.records import (
    Account,
    AccountCreated,
    BlockChanged,
    CallChanged,
    CallRecord,
    Change,
    DurableState,
    NoticeDropped,
    NoticeKept,
)
from signaling.store import (
    SCHEMA_VERSION,
    MemoryStore,
    SqliteStore,
    Store,
    StoreError,
    Synchronous,
)


ROOT = Path(__file__).resolve().parents[2]

# --- Building changes --------------------------------------------------------------------------


def created(name: str) -> AccountCreated:
    return AccountCreated(name, Account.hash_token(f"{name}-secret-token-0123456789"))


def record(
    call_id: str,
    caller: str = "alice",
    callee: str = "bob",
    *,
    placed_at: float = 1.0,
    state: CallState = CallState.DIALING,
    **fields: Any,
) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        caller=caller,
        callee=callee,
        kind="audio",
        placed_at=placed_at,
        state=state,
        blocked=False,
        **fields,
    )


def ended(
    call_id: str, caller: str = "alice", callee: str = "bob", *, placed_at: float = 1.0
) -> CallRecord:
    return record(
        call_id,
        caller,
        callee,
        placed_at=placed_at,
        state=CallState.ENDED,
        ended_at=9.5,
        cause=Cause.CANCELED,
    )


def notice(call_id: str, caller: str = "alice", reason: str = "canceled") -> MissedCall:
    return MissedCall(call_id=call_id, from_=caller, kind="audio", placed_at=1.0, reason=reason)


def kept(call_id: str, callee: str = "bob", reason: str = "canceled") -> NoticeKept:
    return NoticeKept(callee, notice(call_id, reason=reason))


PEOPLE: list[Change] = [created("alice"), created("bob"), created("carol")]


def sample_changes() -> list[Change]:
    """A bit of everything, as a server would write it over a few frames.

    Also run by the hard-kill test's child process, so both sides build the same changes.
    """
    return [
        *PEOPLE,
        BlockChanged("carol", "alice", blocked=True),
        CallChanged(record("c1", placed_at=1.0)),
        CallChanged(record("c1", placed_at=1.0, state=CallState.RINGING, reached=True)),
        CallChanged(record("c2", "bob", "alice", placed_at=2.0)),
        CallChanged(ended("c3", placed_at=3.0)),
        kept("c3"),
        CallChanged(ended("c4", "bob", "carol", placed_at=4.0)),
        NoticeKept("carol", notice("c4", caller="bob")),
    ]


# --- The stores --------------------------------------------------------------------------------

KINDS = ["memory", "sqlite-memory", "sqlite-file"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite-memory":
        made = SqliteStore(":memory:")
    else:
        made = SqliteStore(tmp_path / "server.db")
    yield made
    made.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "server.db"


def snapshot(store: Store) -> tuple[DurableState, list[CallRecord], dict[str, list[str]]]:
    """Everything a store tells, including the order of notices (dict equality ignores it)."""
    state = store.load()
    order = {callee: list(notices) for callee, notices in state.notices.items()}
    return state, store.call_records(), order


# --- Round trips -------------------------------------------------------------------------------


def test_a_new_store_is_empty(store: Store) -> None:
    assert store.load() == DurableState()
    assert store.call_records() == []


def test_an_empty_batch_changes_nothing(store: Store) -> None:
    store.apply(PEOPLE)
    before = snapshot(store)
    store.apply([])
    assert snapshot(store) == before


def test_accounts_round_trip(store: Store) -> None:
    store.apply([created("alice"), created("bob")])
    assert store.load().accounts == {
        "alice": Account("alice", created("alice").token_hash),
        "bob": Account("bob", created("bob").token_hash),
    }
    assert store.load().accounts["alice"].token_matches("alice-secret-token-0123456789")


def test_an_existing_account_is_never_created_again(store: Store) -> None:
    store.apply([created("alice")])
    with pytest.raises(ValueError, match="account 'alice' exists already"):
        store.apply([AccountCreated("alice", b"another hash")])
    with pytest.raises(ValueError, match="account 'bob' exists already"):
        store.apply([created("bob"), created("bob")])
    assert store.load().accounts == {"alice": Account("alice", created("alice").token_hash)}


def test_blocks_round_trip_and_are_idempotent(store: Store) -> None:
    store.apply(PEOPLE)
    store.apply([BlockChanged("carol", "alice", blocked=True)])
    store.apply([BlockChanged("carol", "alice", blocked=True), BlockChanged("carol", "bob", True)])
    # The blocked name needs no account: a phone may block any valid name.
    store.apply([BlockChanged("bob", "nobody-yet", blocked=True)])
    accounts = store.load().accounts
    assert accounts["carol"].blocks == {"alice", "bob"}
    assert accounts["bob"].blocks == {"nobody-yet"}
    assert accounts["alice"].blocks == set()

    store.apply([BlockChanged("carol", "alice", blocked=False)])
    store.apply([BlockChanged("carol", "alice", blocked=False)])
    store.apply([BlockChanged("alice", "bob", blocked=False)])  # never blocked: nothing to do
    accounts = store.load().accounts
    assert accounts["carol"].blocks == {"bob"}
    assert accounts["alice"].blocks == set()


def test_a_call_record_round_trips_with_every_field(store: Store) -> None:
    store.apply(PEOPLE)
    full = CallRecord(
        call_id="call-1_X",
        caller="alice",
        callee="bob",
        kind="video",
        placed_at=0.1 + 0.2,  # not a round number: floats must come back bit for bit
        state=CallState.RECONNECTING,
        blocked=True,
        reached=True,
        answered_at=12.345678901234567,
        ended_at=None,
        cause=Cause.LINK_LOST,
    )
    store.apply([CallChanged(full)])
    assert store.load().calls == [full]
    assert store.call_records() == [full]


def test_a_call_record_is_replaced_whole(store: Store) -> None:
    store.apply(PEOPLE)
    store.apply([CallChanged(record("c1", answered_at=5.0, reached=True))])
    # Every field is overwritten, including back to None: the record is kept as it is now.
    final = ended("c1", placed_at=1.0)
    store.apply([CallChanged(final)])
    assert store.call_records() == [final]


def test_ended_calls_are_not_loaded_but_stay_in_the_cdr(store: Store) -> None:
    store.apply(PEOPLE)
    store.apply(
        [
            CallChanged(record("live")),
            CallChanged(record("answered", state=CallState.ANSWERED, answered_at=2.0)),
            CallChanged(ended("over")),
        ]
    )
    assert [r.call_id for r in store.load().calls] == ["answered", "live"]
    assert [r.call_id for r in store.call_records()] == ["answered", "live", "over"]
    store.apply([CallChanged(ended("live"))])
    assert [r.call_id for r in store.load().calls] == ["answered"]
    assert all(r.is_over for r in store.call_records() if r.call_id != "answered")


def test_calls_are_listed_oldest_placed_first(store: Store) -> None:
    store.apply(PEOPLE)
    # Recorded out of order; equal placing times are ordered by call id.
    store.apply(
        [
            CallChanged(record("late", placed_at=30.0)),
            CallChanged(record("b-tie", placed_at=10.0)),
            CallChanged(ended("early", placed_at=5.0)),
            CallChanged(record("a-tie", placed_at=10.0)),
        ]
    )
    assert [r.call_id for r in store.call_records()] == ["early", "a-tie", "b-tie", "late"]
    assert [r.call_id for r in store.load().calls] == ["a-tie", "b-tie", "late"]


def test_notices_round_trip_oldest_kept_first(store: Store) -> None:
    store.apply(PEOPLE)
    store.apply([CallChanged(ended(call_id)) for call_id in ("c1", "c2", "c3")])
    # Kept in another order than the call ids or placing times: that order is kept.
    store.apply([kept("c3"), kept("c1")])
    store.apply([kept("c2"), kept("c1", callee="carol")])
    notices = store.load().notices
    assert notices == {
        "bob": {"c3": notice("c3"), "c1": notice("c1"), "c2": notice("c2")},
        "carol": {"c1": notice("c1")},
    }
    assert list(notices["bob"]) == ["c3", "c1", "c2"]


def test_keeping_a_notice_again_changes_nothing(store: Store) -> None:
    store.apply(PEOPLE)
    store.apply([CallChanged(ended("c1")), CallChanged(ended("c2")), kept("c1"), kept("c2")])
    store.apply([kept("c1", reason="something else")])
    notices = store.load().notices["bob"]
    assert list(notices) == ["c1", "c2"]
    assert notices["c1"].reason == "canceled"


def test_dropping_notices_is_idempotent(store: Store) -> None:
    store.apply(PEOPLE)
    store.apply([CallChanged(ended("c1")), CallChanged(ended("c2")), kept("c1"), kept("c2")])
    store.apply([NoticeDropped("bob", "c1")])
    store.apply([NoticeDropped("bob", "c1"), NoticeDropped("bob", "unknown")])
    store.apply([NoticeDropped("nobody", "c2")])  # not bob's: nothing to do
    assert list(store.load().notices["bob"]) == ["c2"]
    store.apply([NoticeDropped("bob", "c2")])
    # A callee with no notice left is not listed at all.
    assert store.load().notices == {}


def test_a_notice_kept_after_drops_comes_after_those_still_kept(store: Store) -> None:
    store.apply(PEOPLE)
    store.apply([CallChanged(ended(f"c{i}")) for i in range(1, 5)])
    store.apply([kept("c1"), kept("c2")])
    store.apply([NoticeDropped("bob", "c2")])
    store.apply([kept("c3")])
    store.apply([NoticeDropped("bob", "c1"), kept("c1")])  # dropped, then kept anew: now last
    store.apply([kept("c4")])
    assert list(store.load().notices["bob"]) == ["c3", "c1", "c4"]


def test_the_sample_round_trips(store: Store) -> None:
    store.apply(sample_changes())
    state = store.load()
    assert state == DurableState(
        accounts={
            "alice": Account("alice", created("alice").token_hash),
            "bob": Account("bob", created("bob").token_hash),
            "carol": Account("carol", created("carol").token_hash, {"alice"}),
        },
        notices={"bob": {"c3": notice("c3")}, "carol": {"c4": notice("c4", caller="bob")}},
        calls=[
            record("c1", placed_at=1.0, state=CallState.RINGING, reached=True),
            record("c2", "bob", "alice", placed_at=2.0),
        ],
    )
    assert [r.call_id for r in store.call_records()] == ["c1", "c2", "c3", "c4"]


def test_what_is_loaded_is_a_copy(store: Store) -> None:
    store.apply(sample_changes())
    before = snapshot(store)
    state = store.load()
    state.accounts["carol"].blocks.add("bob")
    state.accounts.pop("alice")
    state.notices["bob"].clear()
    state.calls.clear()
    store.call_records().clear()
    assert snapshot(store) == before


def test_a_closed_store_refuses_to_be_used(store: Store) -> None:
    store.close()
    store.close()  # harmless
    with pytest.raises(StoreError, match="closed"):
        store.load()
    with pytest.raises(StoreError, match="closed"):
        store.apply(PEOPLE)
    with pytest.raises(StoreError, match="closed"):
        store.call_records()


# --- All or nothing ----------------------------------------------------------------------------


def test_a_failing_change_leaves_nothing_of_its_batch(store: Store) -> None:
    store.apply(sample_changes())
    store.apply([CallChanged(ended("c5")), kept("c5")])
    before = snapshot(store)
    assert before[2]["bob"] == ["c3", "c5"]
    # The same things changed more than once, so that undoing in the wrong order shows.
    batch: list[Change] = [
        created("dave"),
        BlockChanged("carol", "alice", blocked=False),
        BlockChanged("bob", "carol", blocked=True),
        BlockChanged("carol", "alice", blocked=True),
        CallChanged(record("c1", state=CallState.ANSWERED, answered_at=2.0)),  # replaced...
        CallChanged(ended("c1")),  # ... twice
        CallChanged(record("c6", "dave", "bob", placed_at=6.0)),  # a new one...
        CallChanged(ended("c6", "dave", "bob", placed_at=6.0)),  # ... replaced
        NoticeDropped("bob", "c3"),  # the oldest: it must come back first, not last
        kept("c1"),
        NoticeDropped("bob", "c1"),
        kept("c1"),
        created("alice"),  # fails: alice exists
        created("erin"),
    ]
    with pytest.raises(ValueError, match="account 'alice' exists already"):
        store.apply(batch)
    assert snapshot(store) == before
    # And the store is still usable: the same batch without the bad change goes in whole.
    store.apply([change for change in batch if change != created("alice")])
    state = store.load()
    assert set(state.accounts) == {"alice", "bob", "carol", "dave", "erin"}
    assert list(state.notices["bob"]) == ["c5", "c1"]
    assert [r.call_id for r in state.calls] == ["c2"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            BlockChanged("zed", "alice", blocked=True),
            "no account 'zed' (referenced by blocks.name)",
        ),
        (
            CallChanged(record("c9", "alice", "zed")),
            "no account 'zed' (referenced by calls.callee)",
        ),
        (CallChanged(record("c9", "zed", "bob")), "no account 'zed' (referenced by calls.caller)"),
        (kept("c3", callee="zed"), "no account 'zed' (referenced by notices.callee)"),
        (kept("c9"), "no call 'c9' (referenced by notices.call_id)"),
    ],
)
def test_a_reference_to_nothing_is_refused_and_leaves_nothing(
    store: Store, change: Change, message: str
) -> None:
    store.apply(sample_changes())
    before = snapshot(store)
    with pytest.raises(ValueError) as raised:
        store.apply([created("dave"), change, NoticeDropped("bob", "c3")])
    assert str(raised.value) == message
    assert snapshot(store) == before


def test_a_batch_may_name_an_account_before_creating_it(store: Store) -> None:
    # References are checked once the whole batch is in, like deferred foreign keys.
    store.apply(
        [
            CallChanged(ended("c1", "alice", "bob")),
            kept("c1"),
            BlockChanged("alice", "bob", blocked=True),
            created("alice"),
            created("bob"),
        ]
    )
    state = store.load()
    assert list(state.notices["bob"]) == ["c1"]
    assert state.accounts["alice"].blocks == {"bob"}


def test_a_reference_to_nothing_removed_again_in_the_batch_is_fine(store: Store) -> None:
    # What counts is the state the batch leaves, as with SQL's deferred foreign keys.
    store.apply(sample_changes())
    before = snapshot(store)
    store.apply(
        [
            BlockChanged("zed", "alice", blocked=True),
            kept("c9"),
            kept("c3", callee="zed"),
            BlockChanged("zed", "alice", blocked=False),
            NoticeDropped("bob", "c9"),
            NoticeDropped("zed", "c3"),
        ]
    )
    assert snapshot(store) == before


def test_memory_and_sqlite_agree_on_a_long_run() -> None:
    # A deterministic jumble of every change, applied in batches of varying size to both.
    changes: list[Change] = [created(f"p{i}") for i in range(6)]
    for n in range(60):
        a, b = f"p{n % 6}", f"p{(n * 5 + 1) % 6}"
        changes.append(BlockChanged(a, b, blocked=n % 3 != 0))
        changes.append(CallChanged(record(f"c{n}", a, b, placed_at=float(n % 7))))
        if n % 2:
            changes.append(CallChanged(ended(f"c{n}", a, b, placed_at=float(n % 7))))
            changes.append(kept(f"c{n}", callee=b))
        if n % 5 == 4:
            changes.append(NoticeDropped(f"p{(n * 5 - 3) % 6}", f"c{n - 2}"))
    memory, sqlite = MemoryStore(), SqliteStore()
    with memory, sqlite:
        start = 0
        for size in [1, 2, 3, 1, 7] * 100:
            batch = changes[start : start + size]
            memory.apply(batch)
            sqlite.apply(batch)
            start += size
        assert start >= len(changes)
        assert snapshot(memory) == snapshot(sqlite)
        assert memory.load().notices  # the run did leave some of everything
        assert memory.load().calls


# --- Files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_reopening_a_file_gives_the_same_state(db_path: Path, synchronous: Synchronous) -> None:
    with SqliteStore(db_path, synchronous=synchronous) as first:
        first.apply(sample_changes())
        first.apply([NoticeDropped("bob", "c3"), kept("c1")])
        before = snapshot(first)
    with SqliteStore(str(db_path), synchronous=synchronous) as second:
        assert snapshot(second) == before


def test_a_file_store_is_in_wal_mode(db_path: Path) -> None:
    with SqliteStore(db_path):
        db = sqlite3.connect(db_path)
        try:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        finally:
            db.close()


# The child applies the sample in two frames and dies without closing anything: no
# checkpoint, no cleanup, no finalizer. Whatever it committed must be in the WAL file.
HARD_KILL = """
import os, signal, sys
from signaling.store import SqliteStore
from tests.signaling.test_store import sample_changes

store = SqliteStore(sys.argv[1], synchronous=sys.argv[2])
changes = sample_changes()
store.apply(changes[:4])
store.apply(changes[4:])
if hasattr(signal, "SIGKILL"):
    os.kill(os.getpid(), signal.SIGKILL)
os._exit(1)
"""


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_a_file_store_survives_a_hard_kill(db_path: Path, synchronous: Synchronous) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", HARD_KILL, str(db_path), synchronous],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    expected_code = -signal.SIGKILL if hasattr(signal, "SIGKILL") else 1
    assert killed.returncode == expected_code, killed.stderr
    # The commits are in the log, not yet checkpointed into the database file.
    assert Path(f"{db_path}-wal").stat().st_size > 0

    reference = MemoryStore()
    reference.apply(sample_changes())
    with SqliteStore(db_path) as reopened:
        assert snapshot(reopened) == snapshot(reference)


# --- Files that cannot be used -----------------------------------------------------------------


def test_a_newer_schema_is_refused_and_left_alone(db_path: Path) -> None:
    with SqliteStore(db_path) as store:
        store.apply(PEOPLE)
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match=r"schema version 99, written by a newer voip-sandbox"):
        SqliteStore(db_path)
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (99,)
        assert db.execute("SELECT count(*) FROM accounts").fetchone() == (3,)
    finally:
        db.close()


def test_an_unknown_schema_version_is_refused(db_path: Path) -> None:
    SqliteStore(db_path).close()
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA user_version = -3")
    db.close()
    with pytest.raises(StoreError, match="unknown schema version -3"):
        SqliteStore(db_path)


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "CREATE TABLE things (x)",
            "not a voip-sandbox store (it has tables but no schema version)",
        ),
        (
            "PRAGMA user_version = 1",
            "not a voip-sandbox store (application_id 0x0, expected 0x766f6970)",
        ),
    ],
    ids=["tables-but-no-version", "a-version-but-not-ours"],
)
def test_another_sqlite_database_is_refused(db_path: Path, statement: str, message: str) -> None:
    db = sqlite3.connect(db_path)
    db.execute(statement)
    db.commit()
    db.close()
    with pytest.raises(StoreError) as raised:
        SqliteStore(db_path)
    assert str(db_path) in str(raised.value)
    assert message in str(raised.value)


def test_a_file_that_is_not_a_database_is_refused_by_name(db_path: Path) -> None:
    db_path.write_text("hello, I am a text file\n" * 100, encoding="utf-8")
    with pytest.raises(StoreError) as raised:
        SqliteStore(db_path)
    assert str(db_path) in str(raised.value)
    assert "not a database" in str(raised.value)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no-such-folder" / "server.db"
    with pytest.raises(StoreError) as raised:
        SqliteStore(path)
    assert str(path) in str(raised.value)
    assert "does not exist" in str(raised.value)
    assert not path.parent.exists()


def test_synchronous_is_normal_or_full() -> None:
    with pytest.raises(ValueError, match="synchronous must be 'NORMAL' or 'FULL', not 'OFF'"):
        SqliteStore(synchronous="OFF")  # type: ignore[arg-type]


def test_in_memory_sqlite_stores_are_separate() -> None:
    with SqliteStore() as one, SqliteStore(":memory:") as two:
        one.apply(PEOPLE)
        assert two.load() == DurableState()


def test_the_changes_a_store_does_not_know_are_refused(store: Store) -> None:
    with pytest.raises(TypeError, match="not a change: 'not a change'"):
        store.apply(["not a change"])  # type: ignore[list-item]
    assert store.load() == DurableState()
