"""What the server keeps, and the changes to it: accounts, calls, missed-call notices.

The switchboard is sans-I/O, so it cannot write to a database. Instead, with every input
it also produces the changes to keep (:data:`Change`), drained by
``Switchboard.changes_to_keep()``. The driver commits them to a store
(:mod:`signaling.store`) *before* it sends any frame, so whatever a phone is told (a
notice accepted, a call placed) is on disk first: write-ahead of acknowledgement.

After a crash, the store gives back a :class:`DurableState`: every account with its token
hash and block list, every notice not yet acknowledged, and every call that was still in
progress. A new switchboard starts from it and ends those calls (see
``Switchboard.recover``).

This module does no I/O and imports no clock (DESIGN.md rule 1).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TypeAlias

from .calls import CallState, Cause
from .messages import MissedCall


__all__ = [
    "Account",
    "AccountCreated",
    "BlockChanged",
    "CallChanged",
    "CallRecord",
    "Change",
    "DurableState",
    "NoticeDropped",
    "NoticeKept",
]


@dataclass(slots=True)
class Account:
    """A registered name: its token's hash and its block list."""

    name: str
    token_hash: bytes
    blocks: set[str] = field(default_factory=set)

    @staticmethod
    def hash_token(token: str) -> bytes:
        """The stored form of a token: never the token itself.

        Tokens are random secrets of at least 16 characters chosen by phones, not
        passwords a person picks, so a plain SHA-256 is enough: there is nothing to
        guess from a leaked hash.
        """
        return hashlib.sha256(token.encode()).digest()

    def token_matches(self, token: str) -> bool:
        """Compares in constant time, so timing does not leak how much of it matched."""
        return hmac.compare_digest(self.token_hash, self.hash_token(token))


@dataclass(frozen=True, slots=True)
class CallRecord:
    """The server's record of one call: kept up to date while it runs, final once it ends.

    A final record is the call's CDR (call detail record). Unlike each phone's view, it is
    the server's private truth (it knows of blocks): observers use it to check
    invariants, never to label a phone's call log.
    """

    call_id: str
    caller: str
    callee: str
    kind: str
    placed_at: float
    state: CallState
    blocked: bool
    reached: bool = False
    answered_at: float | None = None
    ended_at: float | None = None
    cause: Cause | None = None

    @property
    def is_over(self) -> bool:
        """Whether the call has ended."""
        return self.state is CallState.ENDED

    def as_event(self) -> dict[str, object]:
        """The record as a flat mapping, for the event stream."""
        return {
            "call_id": self.call_id,
            "caller": self.caller,
            "callee": self.callee,
            "kind": self.kind,
            "placed_at": self.placed_at,
            "state": str(self.state),
            "blocked": self.blocked,
            "reached": self.reached,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "cause": None if self.cause is None else str(self.cause),
        }


@dataclass(frozen=True, slots=True)
class AccountCreated:
    """A name was registered for the first time (or provisioned)."""

    name: str
    token_hash: bytes


@dataclass(frozen=True, slots=True)
class BlockChanged:
    """``name`` blocked (``blocked=True``) or unblocked ``other``."""

    name: str
    other: str
    blocked: bool


@dataclass(frozen=True, slots=True)
class CallChanged:
    """A call was placed or changed state: keep its record as it is now."""

    record: CallRecord


@dataclass(frozen=True, slots=True)
class NoticeKept:
    """A missed-call notice waits for ``callee`` until it acknowledges it."""

    callee: str
    notice: MissedCall


@dataclass(frozen=True, slots=True)
class NoticeDropped:
    """``callee`` acknowledged the notice for ``call_id`` (or it was dropped by a limit)."""

    callee: str
    call_id: str


Change: TypeAlias = AccountCreated | BlockChanged | CallChanged | NoticeKept | NoticeDropped
"""One change to what the server keeps."""


@dataclass(slots=True)
class DurableState:
    """What survives a crash of the server: read back from the store at start-up.

    Attributes:
        accounts: Every account, with its token hash and block list.
        notices: Each callee's unacknowledged missed-call notices, oldest first.
        calls: The records of calls that were in progress when the server stopped.
    """

    accounts: dict[str, Account] = field(default_factory=dict)
    notices: dict[str, dict[str, MissedCall]] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)
