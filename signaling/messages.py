"""The wire schema: every frame a phone and the server exchange, and the only JSON code.

Each frame is one JSON object whose ``"type"`` names the message. Messages are frozen
:mod:`msgspec` structs (dataclass-like, slotted, immutable); ``parse_*`` validates a frame
at the edge and ``serialize_message`` renders one. Nothing else in the project touches JSON
for the wire.

The schema is split by direction, because the server stamps identity: a phone never names
itself as a sender, and the ``from`` of an :class:`Incoming` or a :class:`MissedCall` is
always written by the server. A frame of a type that is valid only in the other direction is
rejected as an unknown type. Unknown fields are rejected too, so a phone cannot smuggle a
``from`` into an offer.

``docs/protocol.md`` documents every message, field and error code listed here.
"""

from __future__ import annotations

import enum
from typing import Annotated, Final, Literal, TypeAlias

import msgspec


__all__ = [
    "CALL_ID_PATTERN",
    "DEVICE_PATTERN",
    "NAME_PATTERN",
    "Answer",
    "Block",
    "Busy",
    "CallEnded",
    "CallId",
    "Candidate",
    "Decline",
    "Device",
    "Error",
    "ErrorCode",
    "Hangup",
    "Incoming",
    "InvalidMessage",
    "Kind",
    "MissedCall",
    "MissedCallAck",
    "Name",
    "Offer",
    "PhoneMessage",
    "Reconnecting",
    "Register",
    "Registered",
    "Resumed",
    "Ringing",
    "ServerMessage",
    "Unblock",
    "parse_phone_message",
    "parse_server_message",
    "serialize_message",
]

NAME_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,31}\Z"
"""A phone's name: lowercase ASCII, starting with a letter, at most 32 characters."""

CALL_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}\Z"
"""A call id, chosen by the caller's phone: URL-safe ASCII, at most 64 characters."""

DEVICE_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,15}\Z"
"""A device id, unique among the devices of one name: lowercase ASCII, at most 16 characters."""

Name: TypeAlias = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
"""A validated phone name."""

CallId: TypeAlias = Annotated[str, msgspec.Meta(pattern=CALL_ID_PATTERN)]
"""A validated call id."""

Device: TypeAlias = Annotated[str, msgspec.Meta(pattern=DEVICE_PATTERN)]
"""A validated device id (``"1"``, ``"laptop"``)."""

Token: TypeAlias = Annotated[str, msgspec.Meta(min_length=16, max_length=256)]
"""A registration secret chosen by the phone the first time it registers a name."""

Sdp: TypeAlias = Annotated[str, msgspec.Meta(min_length=1)]
"""A session description (RFC 8866 text), as produced by aiortc or a browser."""

Kind: TypeAlias = Literal["audio", "video"]
"""What a call carries."""

Seconds: TypeAlias = Annotated[float, msgspec.Meta(ge=0)]
"""A point on the server's clock, in seconds."""


class ErrorCode(enum.StrEnum):
    """Why the server refused a frame. Every code is documented in ``docs/protocol.md``."""

    BAD_FRAME = "bad_frame"
    """The frame is not a JSON object in UTF-8 text."""
    UNKNOWN_TYPE = "unknown_type"
    """The ``type`` is missing, or names no message a phone may send."""
    INVALID_FIELD = "invalid_field"
    """A field is missing, unknown, of the wrong type or out of range."""
    NOT_REGISTERED = "not_registered"
    """Only ``register`` is allowed before registration."""
    ALREADY_REGISTERED = "already_registered"
    """This connection is registered already."""
    BAD_TOKEN = "bad_token"
    """The name is registered with another token."""
    UNKNOWN_PHONE = "unknown_phone"
    """No phone of that name exists."""
    SELF_CALL = "self_call"
    """A phone cannot call itself."""
    DUPLICATE_CALL = "duplicate_call"
    """A call with this id exists already."""
    UNKNOWN_CALL = "unknown_call"
    """No call with this id exists, or it has ended."""
    NOT_YOUR_CALL = "not_your_call"
    """The call exists, but this phone is not the party that may do this."""
    ILLEGAL_TRANSITION = "illegal_transition"
    """The call's state does not allow this (for example answering an answered call)."""
    RATE_LIMITED = "rate_limited"
    """The connection sent frames faster than its rate limit; this one was dropped."""
    TOO_MANY_CALLS = "too_many_calls"
    """The phone is party to as many calls as the limit allows."""


# --- Messages a phone sends -------------------------------------------------------------
# Don't subclass these: the tag (the JSON "type") is derived from the class, and the parse
# unions below must list every concrete class.


class Register(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="register"):
    """Claims a name for this connection (the first time) or proves it again.

    The first registration of a name stores its token; later ones must present the same
    token. A registration with the right token replaces a stale connection of the same
    name and device; connections of other devices of the name are left alone.
    """

    name: Name
    token: Token
    calls: list[CallId] = []
    """Calls this phone still holds from an earlier connection and wants to resume."""
    device: Device | None = None
    """Which of the name's devices this is; ``None`` for a name's only device."""


class Offer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="offer"):
    """Places a call: the caller's SDP offer for the callee."""

    call_id: CallId
    to: Name
    kind: Kind
    sdp: Sdp


class Ringing(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="ringing"):
    """The callee's device is alerting.

    Sent by the callee's device when an offer reaches it, and relayed to the caller, whose
    screen turns from Calling… to Ringing….
    """

    call_id: CallId


class Answer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="answer"):
    """The callee picked up: its SDP answer, relayed to the caller."""

    call_id: CallId
    sdp: Sdp


class Decline(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="decline"):
    """The callee refuses the call."""

    call_id: CallId


class Busy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="busy"):
    """The callee's device refuses the call because it is in another one."""

    call_id: CallId


class Hangup(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag="hangup"
):
    """A party ends the call: the caller before the answer (cancel) or either one after."""

    call_id: CallId
    reason: Literal["canceled", "no_answer", "failed", "dropped", "glare"] | None = None
    """What the sender saw when it hung up: ``canceled`` from a caller whose call was not
    answered yet (so a cancel that crosses the answer is recognised as one), ``no_answer``
    from the phone that owns the ring timer (profiles where an app owns that timer), and
    nothing after the answer, except from a media call's phone: ``failed`` when its media
    never connected, ``dropped`` when its media stopped for longer than the grace.
    ``glare`` from a caller that foresaw its call losing glare and ended it, when the server
    carries on with it all the same (the rival had ended there first)."""


class Candidate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="candidate"):
    """A trickled ICE candidate, relayed to the other party of the call.

    An empty ``candidate`` means end of candidates, as in the browser API.
    """

    call_id: CallId
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Block(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="block"):
    """Adds a name to this phone's block list, kept by the server."""

    name: Name


class Unblock(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="unblock"):
    """Removes a name from this phone's block list."""

    name: Name


class MissedCallAck(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="missed_call_ack"):
    """The phone has logged a missed-call notice; the server may forget it."""

    call_id: CallId


# --- Messages the server sends -------------------------------------------------------------


class Registered(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="registered"):
    """The registration succeeded."""

    name: Name
    blocks: list[Name]
    """The phone's block list as the server keeps it."""
    calls: list[CallId]
    """The calls from ``Register.calls`` that the server still holds: they resume."""


class Incoming(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="incoming"):
    """An offer delivered to the callee. ``from`` is stamped by the server."""

    call_id: CallId
    from_: Name = msgspec.field(name="from")
    kind: Kind
    sdp: Sdp
    placed_at: Seconds
    """When the caller placed the call, on the server's clock."""


class CallEnded(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="call_ended"):
    """The call is over; ``reason`` is one of the end causes in ``signaling.calls.Cause``."""

    call_id: CallId
    reason: str


class Reconnecting(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="reconnecting"):
    """The other party's link died; the call waits for it for the reconnect grace."""

    call_id: CallId


class Resumed(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="resumed"):
    """The other party came back within the reconnect grace; the call goes on."""

    call_id: CallId


class MissedCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="missed_call"):
    """A call this phone was not reached for, or could not be told the end of.

    Kept by the server until the phone acknowledges it with :class:`MissedCallAck`, and sent
    again on every registration until then; phones ignore a notice for a call they have
    logged already, so each missed call is logged exactly once.
    """

    call_id: CallId
    from_: Name = msgspec.field(name="from")
    kind: Kind
    placed_at: Seconds
    reason: str


class Error(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="error"):
    """The server refused a frame. Nothing else changed."""

    code: ErrorCode
    message: str
    """What was wrong, for a person."""
    call_id: str | None = None
    """The call the refused frame was about, when it named one."""


PhoneMessage: TypeAlias = (
    Register
    | Offer
    | Ringing
    | Answer
    | Decline
    | Busy
    | Hangup
    | Candidate
    | Block
    | Unblock
    | MissedCallAck
)
"""Every message a phone may send."""

ServerMessage: TypeAlias = (
    Registered
    | Incoming
    | Ringing
    | Answer
    | Candidate
    | CallEnded
    | Reconnecting
    | Resumed
    | MissedCall
    | Error
)
"""Every message the server may send."""


class InvalidMessage(ValueError):
    """A frame that does not parse as a message of the expected direction.

    Attributes:
        code: The error code to report.
        message: What was wrong, for a person.
        call_id: The ``call_id`` the frame named, when one could be read.
    """

    def __init__(self, code: ErrorCode, message: str, call_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.call_id = call_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


_PHONE_TYPES: Final = frozenset(str(cls.__struct_config__.tag) for cls in PhoneMessage.__args__)
_SERVER_TYPES: Final = frozenset(str(cls.__struct_config__.tag) for cls in ServerMessage.__args__)
_phone_decoder: Final[msgspec.json.Decoder[PhoneMessage]] = msgspec.json.Decoder(PhoneMessage)
_server_decoder: Final[msgspec.json.Decoder[ServerMessage]] = msgspec.json.Decoder(ServerMessage)
_peek_decoder: Final = msgspec.json.Decoder(dict[str, object])
_encoder: Final = msgspec.json.Encoder()


def _explain(frame: str | bytes, known: frozenset[str], exc: Exception) -> InvalidMessage:
    """Turns a decoder failure into the most helpful :class:`InvalidMessage`."""
    try:
        peek = _peek_decoder.decode(frame)
    except RecursionError:
        return InvalidMessage(ErrorCode.BAD_FRAME, "JSON nested too deeply")
    except (msgspec.DecodeError, UnicodeDecodeError):
        # Not a JSON object at all (or not UTF-8): nothing more specific can be said.
        return InvalidMessage(ErrorCode.BAD_FRAME, f"not a JSON object: {exc}")
    call_id = peek.get("call_id")
    call_id = call_id if isinstance(call_id, str) else None
    kind = peek.get("type")
    if not isinstance(kind, str) or kind not in known:
        expected = ", ".join(sorted(known))
        return InvalidMessage(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {kind!r}; expected one of: {expected}",
            call_id,
        )
    # msgspec says e.g. "Expected `str`, got `int` - at `$.to`": precise, keep it.
    return InvalidMessage(ErrorCode.INVALID_FIELD, f"{kind}: {exc}", call_id)


def parse_phone_message(frame: str | bytes) -> PhoneMessage:
    """Validates a frame received from a phone.

    Args:
        frame: The frame's payload, text or UTF-8 bytes.

    Returns:
        The message.

    Raises:
        InvalidMessage: The frame is not a valid phone message; its ``code`` and
            ``message`` say why.
    """
    try:
        return _phone_decoder.decode(frame)
    except RecursionError:  # nesting deep enough to exhaust the stack, in any field
        raise InvalidMessage(ErrorCode.BAD_FRAME, "JSON nested too deeply") from None
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise _explain(frame, _PHONE_TYPES, exc) from None
    except UnicodeDecodeError as exc:  # msgspec's error for bad UTF-8 inside a string
        raise InvalidMessage(ErrorCode.BAD_FRAME, f"not UTF-8 text: {exc.reason}") from None


def parse_server_message(frame: str | bytes) -> ServerMessage:
    """Validates a frame received from the server.

    Args:
        frame: The frame's payload, text or UTF-8 bytes.

    Returns:
        The message.

    Raises:
        InvalidMessage: The frame is not a valid server message.
    """
    try:
        return _server_decoder.decode(frame)
    except RecursionError:  # nesting deep enough to exhaust the stack, in any field
        raise InvalidMessage(ErrorCode.BAD_FRAME, "JSON nested too deeply") from None
    except msgspec.DecodeError as exc:
        raise _explain(frame, _SERVER_TYPES, exc) from None
    except UnicodeDecodeError as exc:
        raise InvalidMessage(ErrorCode.BAD_FRAME, f"not UTF-8 text: {exc.reason}") from None


def serialize_message(message: PhoneMessage | ServerMessage) -> str:
    """Renders a message as the JSON text of one frame."""
    return _encoder.encode(message).decode()


def message_type(message: PhoneMessage | ServerMessage) -> str:
    """The wire ``type`` of a message, for logs and ladders."""
    return str(message.__struct_config__.tag)
