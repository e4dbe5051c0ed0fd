"""Durable server state: accounts, block lists, call records and missed-call notices.

The switchboard produces the changes to keep (:data:`~signaling.records.Change`); the driver
hands each frame's changes to :meth:`Store.apply` and sends nothing before it returns, so
whatever a phone is told is stored first. After a restart, :meth:`Store.load` gives back the
:class:`~signaling.records.DurableState` a new switchboard starts from.

Two stores behave the same:

- :class:`SqliteStore`, the default: one SQLite file (stdlib :mod:`sqlite3`, no server).
- :class:`MemoryStore`: the same rules in dictionaries, for virtual-time runs and tests,
  where a "crash" is simulated and nothing has to outlive the process.

Each :meth:`~Store.apply` is all or nothing. A change that contradicts the store raises
:exc:`ValueError` and leaves it as it was, other changes of the batch included:

- :class:`~signaling.records.AccountCreated` for a name that has an account already;
- a block, call or notice naming an account that does not exist, or a notice for a call
  that was never recorded, once the whole batch is applied (so a batch may create an account
  and use it in any order, like SQL's deferred foreign keys, which is how SQLite checks it).

Durability of :class:`SqliteStore` (a file, always in WAL journal mode):

- ``synchronous="NORMAL"`` (the default): :meth:`~SqliteStore.apply` returns once its
  transaction is appended to the write-ahead log (``<path>-wal``) with a ``write()``, but
  without an ``fsync``. The data is then in the operating system's page cache, so it
  survives the server *process* dying in any way, ``SIGKILL`` included: the next open
  reads the log. It does not necessarily survive the *machine* stopping (power loss,
  kernel panic): the transactions committed since the last checkpoint (SQLite's automatic
  one, when the log passes 1000 pages, is where the log gets its ``fsync``) may be lost.
  The database is not corrupted either way: it comes back as it was after some earlier
  commit, never with half a batch.
- ``synchronous="FULL"``: the log is also ``fsync``-ed at every commit, so a committed
  transaction survives a power loss too (if the disk honours flushes), at the cost of one
  ``fsync`` per :meth:`~SqliteStore.apply`.
- ``":memory:"`` (or ``""``) keeps everything in a private database that dies with the
  store: useful in tests, durable not at all.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Never, Protocol, Self, TypeAlias, cast

from .calls import CallState, Cause
from .messages import Kind, MissedCall
from .records import (
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


__all__ = [
    "SCHEMA_VERSION",
    "MemoryStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "Synchronous",
]

SCHEMA_VERSION: Final = 1
"""The version of the SQLite schema this module writes, kept in ``PRAGMA user_version``."""

APPLICATION_ID: Final = 0x766F6970
"""``PRAGMA application_id`` of a store file ("voip" in ASCII): marks the file as ours."""

Synchronous: TypeAlias = Literal["NORMAL", "FULL"]
"""How hard :class:`SqliteStore` flushes a commit: see the module docstring."""


class StoreError(ValueError):
    """A store cannot be opened or used.

    The path's folder is missing, the file is not a voip-sandbox store, it was written with
    a schema this version does not know, or the store was closed. Every SQLite error met
    while opening is turned into one, with the path in its message. A :exc:`ValueError`,
    because what is wrong is the path or the file given (DESIGN.md rule 5: a clear error
    at the edge), so a command line can report it like any other bad input.
    """


class Store(Protocol):
    """What the server driver needs from durable state."""

    def load(self) -> DurableState:
        """Rebuilds what survives a restart.

        Returns:
            Every account with its block list; each callee's unacknowledged notices,
            oldest kept first; the records of the calls not ended, oldest placed first
            (ties by call id). The result is the caller's own: changing it does not change
            the store.
        """
        ...

    def apply(self, changes: Sequence[Change]) -> None:
        """Keeps a batch of changes, all or nothing; stored when this returns.

        Args:
            changes: The changes, in the order they happened. An empty batch does nothing.

        Raises:
            ValueError: A change contradicts the store (see the module docstring); nothing
                of the batch was kept.
            TypeError: Something in the batch is not a change; nothing was kept.
        """
        ...

    def call_records(self) -> list[CallRecord]:
        """Every call ever recorded, ended or not, oldest placed first (ties by call id).

        The final records are the CDR, for reports and invariant checks.
        """
        ...

    def close(self) -> None:
        """Releases the store. Closing twice is harmless; using it afterwards is an error."""
        ...


def _not_a_change(change: Never) -> Never:
    # Typed Never so that mypy proves every Change is handled; at run time, a clear error.
    raise TypeError(f"not a change: {change!r}")


def _missing_account(name: str, where: str) -> str:
    # One wording for both stores, so callers and tests see the same error from either.
    return f"no account {name!r} (referenced by {where})"


def _missing_call(call_id: str, where: str) -> str:
    return f"no call {call_id!r} (referenced by {where})"


def _duplicate_account(name: str) -> str:
    return f"account {name!r} exists already"


# --- In memory ---------------------------------------------------------------------------------


class MemoryStore:
    """A store in dictionaries: the rules of :class:`SqliteStore`, without a file.

    Records and notices are immutable, so they are kept as given; everything mutable that
    goes out (accounts, their block sets, the dictionaries and lists) is a fresh copy.
    :meth:`apply` costs in proportion to its batch, whatever the size of the store.
    """

    def __init__(self) -> None:
        self._accounts: dict[str, bytes] = {}
        self._blocks: dict[str, set[str]] = {}
        """Each blocker's blocked names; a blocker with none has no entry."""
        self._calls: dict[str, CallRecord] = {}
        self._notices: dict[str, dict[str, tuple[int, MissedCall]]] = {}
        """Per callee, each notice with its number in the order kept (SQLite's ``seq``).

        Numbers rather than the dictionary's own order, so that a failed batch can put a
        dropped notice back in its place in constant time. A callee with none has no entry.
        """
        self._next_seq = 1
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def load(self) -> DurableState:
        """See :meth:`Store.load`."""
        self._check_open()
        accounts = {
            name: Account(name, token_hash, set(self._blocks.get(name, ())))
            for name, token_hash in self._accounts.items()
        }
        notices = {
            callee: {call_id: notice for call_id, (_, notice) in sorted(kept.items(), key=_seq)}
            for callee, kept in self._notices.items()
        }
        calls = [record for record in self._sorted_calls() if not record.is_over]
        return DurableState(accounts, notices, calls)

    def apply(self, changes: Sequence[Change]) -> None:
        """See :meth:`Store.apply`."""
        self._check_open()
        # All or nothing without copying the state: each change that alters something
        # leaves the step that undoes it; on any failure the steps run in reverse.
        undo: list[Callable[[], object]] = []
        try:
            for change in changes:
                self._apply_one(change, undo)
            self._check_references(changes)
        except BaseException:
            for step in reversed(undo):
                step()
            raise

    def call_records(self) -> list[CallRecord]:
        """See :meth:`Store.call_records`."""
        self._check_open()
        return self._sorted_calls()

    def close(self) -> None:
        """See :meth:`Store.close`."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _sorted_calls(self) -> list[CallRecord]:
        # Ties broken by call id, as SQLite's ORDER BY does, so both stores list the same.
        return sorted(self._calls.values(), key=lambda record: (record.placed_at, record.call_id))

    def _apply_one(self, change: Change, undo: list[Callable[[], object]]) -> None:
        match change:
            case AccountCreated(name=name, token_hash=token_hash):
                if name in self._accounts:
                    raise ValueError(_duplicate_account(name))
                self._accounts[name] = bytes(token_hash)
                undo.append(lambda: self._accounts.pop(name))
            case BlockChanged(name=name, other=other, blocked=blocked):
                if blocked == (other in self._blocks.get(name, ())):
                    return  # already so
                if blocked:
                    self._block(name, other)
                    undo.append(lambda: self._unblock(name, other))
                else:
                    self._unblock(name, other)
                    undo.append(lambda: self._block(name, other))
            case CallChanged(record=record):
                before = self._calls.get(record.call_id)
                self._calls[record.call_id] = record
                if before is None:
                    undo.append(lambda: self._calls.pop(record.call_id))
                else:
                    undo.append(lambda: self._calls.__setitem__(record.call_id, before))
            case NoticeKept(callee=callee, notice=notice):
                if notice.call_id in self._notices.get(callee, ()):
                    return  # kept already: neither its content nor its place changes
                self._notices.setdefault(callee, {})[notice.call_id] = (self._next_seq, notice)
                # The counter is not wound back on failure: a gap in the numbers is harmless.
                self._next_seq += 1
                undo.append(lambda: self._forget_notice(callee, notice.call_id))
            case NoticeDropped(callee=callee, call_id=call_id):
                if call_id not in self._notices.get(callee, ()):
                    return
                entry = self._forget_notice(callee, call_id)
                undo.append(
                    lambda: self._notices.setdefault(callee, {}).__setitem__(call_id, entry)
                )
            case _:
                _not_a_change(change)

    def _block(self, name: str, other: str) -> None:
        self._blocks.setdefault(name, set()).add(other)

    def _unblock(self, name: str, other: str) -> None:
        blocked = self._blocks[name]
        blocked.discard(other)
        if not blocked:
            del self._blocks[name]

    def _forget_notice(self, callee: str, call_id: str) -> tuple[int, MissedCall]:
        kept = self._notices[callee]
        entry = kept.pop(call_id)
        if not kept:
            del self._notices[callee]
        return entry

    def _check_references(self, changes: Sequence[Change]) -> None:
        # Checked on the state the whole batch leaves, like deferred foreign keys, and only
        # where the batch added something: nothing ever removes an account or a call, so
        # what was valid before the batch still is.
        for change in changes:
            match change:
                case BlockChanged(name=name, other=other, blocked=True):
                    if name not in self._accounts and other in self._blocks.get(name, ()):
                        raise ValueError(_missing_account(name, "blocks.name"))
                case CallChanged(record=CallRecord(call_id=call_id)):
                    record = self._calls[call_id]  # as the batch leaves it
                    for party, column in ((record.caller, "caller"), (record.callee, "callee")):
                        if party not in self._accounts:
                            raise ValueError(_missing_account(party, f"calls.{column}"))
                case NoticeKept(callee=callee, notice=MissedCall(call_id=call_id)):
                    if call_id not in self._notices.get(callee, ()):
                        continue  # dropped again later in the batch
                    if callee not in self._accounts:
                        raise ValueError(_missing_account(callee, "notices.callee"))
                    if call_id not in self._calls:
                        raise ValueError(_missing_call(call_id, "notices.call_id"))


def _seq(item: tuple[str, tuple[int, MissedCall]]) -> int:
    return item[1][0]


# --- SQLite ------------------------------------------------------------------------------------

_ENDED: Final = CallState.ENDED.value

# Foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at COMMIT, so a batch may record a
# call before the account it names is created, in the same transaction. The partial index
# keeps load() from reading the whole CDR, which only grows, to find the calls in progress.
_SCHEMA: Final = (
    """
    CREATE TABLE accounts (
        name TEXT NOT NULL PRIMARY KEY,
        token_hash BLOB NOT NULL
    )
    """,
    """
    CREATE TABLE blocks (
        name TEXT NOT NULL REFERENCES accounts (name) DEFERRABLE INITIALLY DEFERRED,
        other TEXT NOT NULL,
        PRIMARY KEY (name, other)
    )
    """,
    """
    CREATE TABLE calls (
        call_id TEXT NOT NULL PRIMARY KEY,
        caller TEXT NOT NULL REFERENCES accounts (name) DEFERRABLE INITIALLY DEFERRED,
        callee TEXT NOT NULL REFERENCES accounts (name) DEFERRABLE INITIALLY DEFERRED,
        kind TEXT NOT NULL,
        placed_at REAL NOT NULL,
        state TEXT NOT NULL,
        blocked INTEGER NOT NULL CHECK (blocked IN (0, 1)),
        reached INTEGER NOT NULL CHECK (reached IN (0, 1)),
        answered_at REAL,
        ended_at REAL,
        cause TEXT
    )
    """,
    f"CREATE INDEX calls_in_progress ON calls (placed_at, call_id) WHERE state <> '{_ENDED}'",
    """
    CREATE TABLE notices (
        callee TEXT NOT NULL REFERENCES accounts (name) DEFERRABLE INITIALLY DEFERRED,
        call_id TEXT NOT NULL REFERENCES calls (call_id) DEFERRABLE INITIALLY DEFERRED,
        caller TEXT NOT NULL,
        kind TEXT NOT NULL,
        placed_at REAL NOT NULL,
        reason TEXT NOT NULL,
        seq INTEGER NOT NULL UNIQUE,
        PRIMARY KEY (callee, call_id)
    )
    """,
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_INSERT_ACCOUNT: Final = """
    INSERT INTO accounts (name, token_hash) VALUES (?, ?)
    ON CONFLICT (name) DO NOTHING
"""
_INSERT_BLOCK: Final = """
    INSERT INTO blocks (name, other) VALUES (?, ?)
    ON CONFLICT (name, other) DO NOTHING
"""
_DELETE_BLOCK: Final = "DELETE FROM blocks WHERE name = ? AND other = ?"
_UPSERT_CALL: Final = """
    INSERT INTO calls (call_id, caller, callee, kind, placed_at, state, blocked, reached,
                       answered_at, ended_at, cause)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (call_id) DO UPDATE SET
        caller = excluded.caller, callee = excluded.callee, kind = excluded.kind,
        placed_at = excluded.placed_at, state = excluded.state, blocked = excluded.blocked,
        reached = excluded.reached, answered_at = excluded.answered_at,
        ended_at = excluded.ended_at, cause = excluded.cause
"""
# seq is one past the largest kept: larger than every notice still there, which is all the
# order needs (a reused number of a dropped notice is harmless). The UNIQUE index on seq
# makes MAX(seq) one lookup, and BEGIN IMMEDIATE means no other writer can race for it.
_INSERT_NOTICE: Final = """
    INSERT INTO notices (callee, call_id, caller, kind, placed_at, reason, seq)
    VALUES (?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM notices))
    ON CONFLICT (callee, call_id) DO NOTHING
"""
_DELETE_NOTICE: Final = "DELETE FROM notices WHERE callee = ? AND call_id = ?"
_CALL_COLUMNS: Final = (
    "call_id, caller, callee, kind, placed_at, state, blocked, reached, "
    "answered_at, ended_at, cause"
)
_SELECT_CALLS: Final = f"SELECT {_CALL_COLUMNS} FROM calls ORDER BY placed_at, call_id"
# The WHERE clause is written exactly as the partial index's, so SQLite can use the index.
_SELECT_CALLS_IN_PROGRESS: Final = (
    f"SELECT {_CALL_COLUMNS} FROM calls WHERE state <> '{_ENDED}' ORDER BY placed_at, call_id"
)


class SqliteStore:
    """A store in one SQLite file (or in memory): see the module docstring for durability.

    Args:
        path: The database file, created if missing (its folder must exist); ``":memory:"``
            for a private in-memory database.
        synchronous: ``"NORMAL"`` survives the process being killed; ``"FULL"`` survives
            a power loss too, at one ``fsync`` per commit.

    Raises:
        StoreError: The folder is missing, the file is not a voip-sandbox store, or it was
            written with a schema version this one does not know.
        ValueError: ``synchronous`` is neither ``"NORMAL"`` nor ``"FULL"``.
    """

    def __init__(
        self, path: str | os.PathLike[str] = ":memory:", *, synchronous: Synchronous = "NORMAL"
    ) -> None:
        # Checked even though the type says so: the value goes into a PRAGMA's text.
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        self.path = os.fspath(path)
        """Where the database is, as given."""
        self.is_file = self.path not in (":memory:", "")
        """Whether it is a file (``""`` is SQLite's private temporary database)."""
        if self.is_file and not Path(self.path).parent.is_dir():
            # SQLite would only say "unable to open database file", without the path.
            raise StoreError(
                f"cannot open the store {self.path!r}: "
                f"the folder {str(Path(self.path).parent)!r} does not exist"
            )
        try:
            # isolation_level=None: no implicit transactions; apply() writes its own
            # BEGIN IMMEDIATE ... COMMIT, and PRAGMAs run outside any transaction.
            db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path!r}: {exc}") from exc
        try:
            self._check_schema(db)
            self._configure(db, synchronous)
            self._create_schema(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            # Typically "file is not a database", which does not say which file.
            raise StoreError(f"cannot use the store {self.path!r}: {exc}") from exc
        except BaseException:
            db.close()
            raise
        self._db: sqlite3.Connection | None = db

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- Opening -------------------------------------------------------------------------------

    def _check_schema(self, db: sqlite3.Connection) -> None:
        # Before anything writes to the file (switching it to WAL is a write): a file that is
        # not ours, or is from a newer version, must be left exactly as it was.
        version = _pragma(db, "user_version")
        application_id = _pragma(db, "application_id")
        if version == 0:
            (objects,) = db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if objects:
                raise StoreError(
                    f"{self.path!r} is an SQLite database but not a voip-sandbox store "
                    f"(it has tables but no schema version)"
                )
            return
        if application_id != APPLICATION_ID:
            raise StoreError(
                f"{self.path!r} is an SQLite database but not a voip-sandbox store "
                f"(application_id {application_id:#x}, expected {APPLICATION_ID:#x})"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path!r} has schema version {version}, written by a newer "
                f"voip-sandbox; this one knows versions up to {SCHEMA_VERSION}: upgrade it"
            )
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path!r} has unknown schema version {version} "
                f"(this voip-sandbox reads version {SCHEMA_VERSION})"
            )

    def _configure(self, db: sqlite3.Connection, synchronous: Synchronous) -> None:
        if self.is_file:
            (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
            # The durability promise is written for WAL; a filesystem that cannot do it
            # (no shared memory, for example) must not silently get another one.
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"cannot use the store {self.path!r}: SQLite refused WAL mode "
                    f"(journal mode is {mode!r})"
                )
        db.execute(f"PRAGMA synchronous = {synchronous}")
        # Off by default in SQLite, per connection: the references checked by apply() need it.
        db.execute("PRAGMA foreign_keys = ON")
        if _pragma(db, "foreign_keys") != 1:
            raise StoreError("this SQLite library was built without foreign key support")

    def _create_schema(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have created it since.
            if _pragma(db, "user_version") == 0:
                for statement in _SCHEMA:
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    # --- The Store protocol --------------------------------------------------------------------

    def load(self) -> DurableState:
        """See :meth:`Store.load`."""
        db = self._connection()
        state = DurableState()
        # One read transaction, so the four queries see the same commit.
        db.execute("BEGIN")
        try:
            for name, token_hash in db.execute("SELECT name, token_hash FROM accounts"):
                state.accounts[name] = Account(name, bytes(token_hash))
            for name, other in db.execute("SELECT name, other FROM blocks"):
                state.accounts[name].blocks.add(other)
            notices = db.execute(
                "SELECT callee, call_id, caller, kind, placed_at, reason FROM notices ORDER BY seq"
            )
            for callee, call_id, caller, kind, placed_at, reason in notices:
                state.notices.setdefault(callee, {})[call_id] = MissedCall(
                    call_id=call_id,
                    from_=caller,
                    kind=cast(Kind, kind),
                    placed_at=placed_at,
                    reason=reason,
                )
            state.calls = [_record(row) for row in db.execute(_SELECT_CALLS_IN_PROGRESS)]
        finally:
            db.execute("COMMIT")
        return state

    def apply(self, changes: Sequence[Change]) -> None:
        """See :meth:`Store.apply`."""
        db = self._connection()
        if not changes:
            return
        # IMMEDIATE takes the write lock now rather than at the first write, so the batch
        # cannot fail half-way because another connection started writing meanwhile.
        db.execute("BEGIN IMMEDIATE")
        try:
            for change in changes:
                _apply_one(db, change)
            try:
                db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                # Only deferred foreign keys fail at COMMIT, and the transaction is still
                # open then: find which reference is missing before rolling back.
                raise ValueError(_explain_violation(db)) from exc
        except BaseException:
            _rollback(db)
            raise

    def call_records(self) -> list[CallRecord]:
        """See :meth:`Store.call_records`."""
        return [_record(row) for row in self._connection().execute(_SELECT_CALLS)]

    def close(self) -> None:
        """See :meth:`Store.close`."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"the store {self.path!r} is closed")
        return self._db


def _pragma(db: sqlite3.Connection, name: str) -> int:
    (value,) = db.execute(f"PRAGMA {name}").fetchone()
    return int(value)


def _rollback(db: sqlite3.Connection) -> None:
    # SQLite rolls back by itself after some errors (a full disk, an I/O error); a second
    # ROLLBACK would then fail and hide the first error.
    if db.in_transaction:
        db.execute("ROLLBACK")


def _apply_one(db: sqlite3.Connection, change: Change) -> None:
    match change:
        case AccountCreated(name=name, token_hash=token_hash):
            if db.execute(_INSERT_ACCOUNT, (name, bytes(token_hash))).rowcount == 0:
                raise ValueError(_duplicate_account(name))
        case BlockChanged(name=name, other=other, blocked=blocked):
            db.execute(_INSERT_BLOCK if blocked else _DELETE_BLOCK, (name, other))
        case CallChanged(record=r):
            db.execute(
                _UPSERT_CALL,
                (
                    r.call_id,
                    r.caller,
                    r.callee,
                    r.kind,
                    r.placed_at,
                    r.state.value,
                    int(r.blocked),
                    int(r.reached),
                    r.answered_at,
                    r.ended_at,
                    None if r.cause is None else r.cause.value,
                ),
            )
        case NoticeKept(callee=callee, notice=n):
            db.execute(_INSERT_NOTICE, (callee, n.call_id, n.from_, n.kind, n.placed_at, n.reason))
        case NoticeDropped(callee=callee, call_id=call_id):
            db.execute(_DELETE_NOTICE, (callee, call_id))
        case _:
            _not_a_change(change)


def _explain_violation(db: sqlite3.Connection) -> str:
    """Names the first missing reference, in the words :class:`MemoryStore` uses."""
    for table, rowid, parent, key_id in db.execute("PRAGMA foreign_key_check").fetchall():
        # Table and column names come from our own schema, never from the changes.
        column = next(
            key[3] for key in db.execute(f'PRAGMA foreign_key_list("{table}")') if key[0] == key_id
        )
        (value,) = db.execute(
            f'SELECT "{column}" FROM "{table}" WHERE rowid = ?', (rowid,)
        ).fetchone()
        where = f"{table}.{column}"
        if parent == "calls":
            return _missing_call(value, where)
        return _missing_account(value, where)
    return "a reference to a missing account or call"


def _record(row: tuple[Any, ...]) -> CallRecord:
    # Rows come from our own schema; CallState() and Cause() reject a value that is not one.
    call_id, caller, callee, kind, placed_at, state, blocked, reached, answered, ended, cause = row
    return CallRecord(
        call_id=call_id,
        caller=caller,
        callee=callee,
        kind=kind,
        placed_at=placed_at,
        state=CallState(state),
        blocked=bool(blocked),
        reached=bool(reached),
        answered_at=answered,
        ended_at=ended,
        cause=None if cause is None else Cause(cause),
    )
