"""The wire schema: every message round-trips, and every bad frame gets the right code."""

import json
from collections.abc import Callable

import pytest

from signaling.messages import (
    Answer,
    Block,
    Busy,
    CallEnded,
    Candidate,
    Decline,
    Error,
    ErrorCode,
    Hangup,
    Incoming,
    InvalidMessage,
    MissedCall,
    MissedCallAck,
    Offer,
    PhoneMessage,
    Reconnecting,
    Register,
    Registered,
    Resumed,
    Ringing,
    ServerMessage,
    Unblock,
    message_type,
    parse_phone_message,
    parse_server_message,
    serialize_message,
)


TOKEN = "0123456789abcdef"

PHONE_MESSAGES: list[tuple[PhoneMessage, dict[str, object]]] = [
    (
        Register(name="alice", token=TOKEN),
        {"type": "register", "name": "alice", "token": TOKEN, "calls": [], "device": None},
    ),
    (
        Register(name="alice", token=TOKEN, calls=["c1", "c-2"]),
        {
            "type": "register",
            "name": "alice",
            "token": TOKEN,
            "calls": ["c1", "c-2"],
            "device": None,
        },
    ),
    (
        Register(name="bob", token=TOKEN, device="2"),
        {"type": "register", "name": "bob", "token": TOKEN, "calls": [], "device": "2"},
    ),
    (
        Offer(call_id="c1", to="bob", kind="video", sdp="v=0"),
        {"type": "offer", "call_id": "c1", "to": "bob", "kind": "video", "sdp": "v=0"},
    ),
    (Ringing(call_id="c1"), {"type": "ringing", "call_id": "c1"}),
    (Answer(call_id="c1", sdp="v=0"), {"type": "answer", "call_id": "c1", "sdp": "v=0"}),
    (Decline(call_id="c1"), {"type": "decline", "call_id": "c1"}),
    (Busy(call_id="c1"), {"type": "busy", "call_id": "c1"}),
    (Hangup(call_id="c1"), {"type": "hangup", "call_id": "c1"}),
    (
        Candidate(call_id="c1", candidate="candidate:1 1 UDP 1 127.0.0.1 5000 typ host"),
        {
            "type": "candidate",
            "call_id": "c1",
            "candidate": "candidate:1 1 UDP 1 127.0.0.1 5000 typ host",
            "sdp_mid": None,
            "sdp_mline_index": None,
        },
    ),
    (
        Candidate(call_id="c1", candidate="", sdp_mid="0", sdp_mline_index=0),
        {
            "type": "candidate",
            "call_id": "c1",
            "candidate": "",
            "sdp_mid": "0",
            "sdp_mline_index": 0,
        },
    ),
    (Block(name="bob"), {"type": "block", "name": "bob"}),
    (Unblock(name="bob"), {"type": "unblock", "name": "bob"}),
    (MissedCallAck(call_id="c1"), {"type": "missed_call_ack", "call_id": "c1"}),
]

SERVER_MESSAGES: list[tuple[ServerMessage, dict[str, object]]] = [
    (
        Registered(name="bob", blocks=["eve"], calls=["c1"]),
        {"type": "registered", "name": "bob", "blocks": ["eve"], "calls": ["c1"]},
    ),
    (
        Incoming(call_id="c1", from_="alice", kind="audio", sdp="v=0", placed_at=1.5),
        {
            "type": "incoming",
            "call_id": "c1",
            "from": "alice",
            "kind": "audio",
            "sdp": "v=0",
            "placed_at": 1.5,
        },
    ),
    (Ringing(call_id="c1"), {"type": "ringing", "call_id": "c1"}),
    (Answer(call_id="c1", sdp="v=0"), {"type": "answer", "call_id": "c1", "sdp": "v=0"}),
    (
        Candidate(call_id="c1", candidate="", sdp_mid="0", sdp_mline_index=1),
        {
            "type": "candidate",
            "call_id": "c1",
            "candidate": "",
            "sdp_mid": "0",
            "sdp_mline_index": 1,
        },
    ),
    (
        CallEnded(call_id="c1", reason="no_answer"),
        {"type": "call_ended", "call_id": "c1", "reason": "no_answer"},
    ),
    (Reconnecting(call_id="c1"), {"type": "reconnecting", "call_id": "c1"}),
    (Resumed(call_id="c1"), {"type": "resumed", "call_id": "c1"}),
    (
        MissedCall(call_id="c1", from_="alice", kind="video", placed_at=0.0, reason="canceled"),
        {
            "type": "missed_call",
            "call_id": "c1",
            "from": "alice",
            "kind": "video",
            "placed_at": 0.0,
            "reason": "canceled",
        },
    ),
    (
        Error(code=ErrorCode.UNKNOWN_CALL, message="call c1 has ended", call_id="c1"),
        {"type": "error", "code": "unknown_call", "message": "call c1 has ended", "call_id": "c1"},
    ),
    (
        Error(code=ErrorCode.NOT_REGISTERED, message="register first"),
        {"type": "error", "code": "not_registered", "message": "register first", "call_id": None},
    ),
]


def _ids(
    cases: list[tuple[PhoneMessage, dict[str, object]]]
    | list[tuple[ServerMessage, dict[str, object]]],
) -> list[str]:
    return [f"{message_type(m)}-{i}" for i, (m, _) in enumerate(cases)]


# --- Round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize(("message", "wire"), PHONE_MESSAGES, ids=_ids(PHONE_MESSAGES))
def test_phone_message_round_trips(message, wire):
    text = serialize_message(message)
    assert json.loads(text) == wire
    assert parse_phone_message(text) == message
    assert parse_phone_message(text.encode()) == message
    assert message_type(message) == wire["type"]


@pytest.mark.parametrize(("message", "wire"), SERVER_MESSAGES, ids=_ids(SERVER_MESSAGES))
def test_server_message_round_trips(message, wire):
    text = serialize_message(message)
    assert json.loads(text) == wire
    assert parse_server_message(text) == message
    assert parse_server_message(text.encode()) == message
    assert message_type(message) == wire["type"]


def test_every_message_type_is_covered():
    phone_types = {message_type(m) for m, _ in PHONE_MESSAGES}
    server_types = {message_type(m) for m, _ in SERVER_MESSAGES}
    assert phone_types == {
        "register",
        "offer",
        "ringing",
        "answer",
        "decline",
        "busy",
        "hangup",
        "candidate",
        "block",
        "unblock",
        "missed_call_ack",
    }
    assert server_types == {
        "registered",
        "incoming",
        "ringing",
        "answer",
        "candidate",
        "call_ended",
        "reconnecting",
        "resumed",
        "missed_call",
        "error",
    }


def test_register_calls_default_to_empty():
    message = parse_phone_message(json.dumps({"type": "register", "name": "al", "token": TOKEN}))
    assert message == Register(name="al", token=TOKEN, calls=[])


def test_messages_are_frozen():
    message = Hangup(call_id="c1")
    with pytest.raises(AttributeError):
        message.call_id = "c2"  # type: ignore[misc]


def test_the_server_stamps_from_as_a_json_key_named_from():
    text = serialize_message(
        Incoming(call_id="c1", from_="alice", kind="audio", sdp="v=0", placed_at=0.0)
    )
    assert '"from":"alice"' in text
    assert "from_" not in text


# --- Rejections ------------------------------------------------------------------------------


def _reject(
    frame: str | bytes, parse: Callable[[str | bytes], object] = parse_phone_message
) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as info:
        parse(frame)
    return info.value


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff\xfe",  # not UTF-8 at all
        b'{"type":"hangup","call_id":"a\xffb"}',  # invalid UTF-8 inside a string value
        b'{"type":"hangup","ca\xffll_id":"abc"}',  # invalid UTF-8 inside a key
        b'{"t\xffype":"hangup"}',
        b'{"type":"hangup","call_id":"abc"}\xff',
    ],
)
@pytest.mark.parametrize("parse", [parse_phone_message, parse_server_message])
def test_invalid_utf8_is_a_bad_frame(frame, parse):
    error = _reject(frame, parse)
    assert error.code is ErrorCode.BAD_FRAME
    assert error.call_id is None


@pytest.mark.parametrize("frame", ["[]", '"hangup"', "1", "null", "true", '[{"type":"hangup"}]'])
def test_a_frame_that_is_not_an_object_is_a_bad_frame(frame):
    error = _reject(frame)
    assert error.code is ErrorCode.BAD_FRAME
    assert "not a JSON object" in error.message
    assert error.call_id is None


@pytest.mark.parametrize(
    "frame",
    ["", "{", '{"type":"hangup"', '{"type":"hangup","call_id":"c1"} trailing', "{'type': 'x'}"],
)
def test_malformed_json_is_a_bad_frame(frame):
    error = _reject(frame)
    assert error.code is ErrorCode.BAD_FRAME
    assert error.call_id is None


@pytest.mark.parametrize(
    "server_only",
    ["registered", "incoming", "call_ended", "reconnecting", "resumed", "missed_call", "error"],
)
def test_a_server_only_type_sent_by_a_phone_is_unknown(server_only):
    error = _reject(json.dumps({"type": server_only, "call_id": "c7"}))
    assert error.code is ErrorCode.UNKNOWN_TYPE
    assert repr(server_only) in error.message
    assert "expected one of: answer, block, busy" in error.message
    assert error.call_id == "c7"


@pytest.mark.parametrize(
    "phone_only", ["register", "offer", "decline", "busy", "hangup", "block", "missed_call_ack"]
)
def test_a_phone_only_type_sent_by_the_server_is_unknown(phone_only):
    error = _reject(json.dumps({"type": phone_only, "call_id": "c7"}), parse_server_message)
    assert error.code is ErrorCode.UNKNOWN_TYPE
    assert error.call_id == "c7"


@pytest.mark.parametrize(
    ("frame", "call_id"),
    [
        ({"call_id": "c1"}, "c1"),
        ({}, None),
        ({"type": None, "call_id": "c1"}, "c1"),
        ({"type": 3}, None),
        ({"type": "HANGUP", "call_id": "c1"}, "c1"),
        ({"type": "dance"}, None),
    ],
)
def test_a_missing_or_unknown_type_is_unknown_type(frame, call_id):
    error = _reject(json.dumps(frame))
    assert error.code is ErrorCode.UNKNOWN_TYPE
    assert error.call_id == call_id


OFFER = {"type": "offer", "call_id": "c1", "to": "bob", "kind": "audio", "sdp": "v=0"}


@pytest.mark.parametrize(
    ("frame", "where", "call_id"),
    [
        # wrong types
        ({"type": "hangup", "call_id": 1}, "$.call_id", None),
        ({**OFFER, "to": ["bob"]}, "$.to", "c1"),
        ({**OFFER, "sdp": None}, "$.sdp", "c1"),
        ({"type": "register", "name": "al", "token": TOKEN, "calls": "c1"}, "$.calls", None),
        ({"type": "candidate", "call_id": "c1", "candidate": 5}, "$.candidate", "c1"),
        # missing fields
        ({"type": "hangup"}, "call_id", None),
        ({k: v for k, v in OFFER.items() if k != "to"}, "to", "c1"),
        ({"type": "register", "name": "al"}, "token", None),
        ({"type": "block"}, "name", None),
        # unknown fields, among them a smuggled sender
        ({**OFFER, "from": "eve"}, "from", "c1"),
        ({"type": "hangup", "call_id": "c1", "extra": True}, "extra", "c1"),
        ({"type": "register", "name": "al", "token": TOKEN, "from": "bob"}, "from", None),
        # out of range or off pattern
        ({**OFFER, "kind": "fax"}, "$.kind", "c1"),
        ({**OFFER, "sdp": ""}, "$.sdp", "c1"),
        ({**OFFER, "to": "Bob"}, "$.to", "c1"),
        ({**OFFER, "to": "1bob"}, "$.to", "c1"),
        ({**OFFER, "to": "b" * 33}, "$.to", "c1"),
        ({**OFFER, "to": "bo b"}, "$.to", "c1"),
        ({**OFFER, "to": "bob\n"}, "$.to", "c1"),
        ({**OFFER, "to": ""}, "$.to", "c1"),
        ({"type": "hangup", "call_id": "c 1"}, "$.call_id", "c 1"),
        ({"type": "hangup", "call_id": ""}, "$.call_id", ""),
        ({"type": "hangup", "call_id": "c" * 65}, "$.call_id", "c" * 65),
        ({"type": "hangup", "call_id": "c1\n"}, "$.call_id", "c1\n"),
        ({"type": "hangup", "call_id": "c/1"}, "$.call_id", "c/1"),
        ({"type": "register", "name": "al", "token": "short"}, "$.token", None),
        ({"type": "register", "name": "al", "token": "t" * 257}, "$.token", None),
        ({"type": "register", "name": "al", "token": TOKEN, "calls": ["c 1"]}, "$.calls[0]", None),
        ({"type": "register", "name": "al", "token": TOKEN, "device": 2}, "$.device", None),
        ({"type": "register", "name": "al", "token": TOKEN, "device": "al#2"}, "$.device", None),
        ({"type": "register", "name": "al", "token": TOKEN, "device": ""}, "$.device", None),
        ({"type": "register", "name": "al", "token": TOKEN, "device": "d" * 17}, "$.device", None),
        ({"type": "block", "name": "Eve"}, "$.name", None),
        (
            {"type": "candidate", "call_id": "c1", "candidate": "", "sdp_mline_index": -1},
            "$.sdp_mline_index",
            "c1",
        ),
    ],
)
def test_invalid_fields_are_named(frame, where, call_id):
    error = _reject(json.dumps(frame))
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.message.startswith(f"{frame['type']}: ")
    assert where in error.message
    assert error.call_id == call_id


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a", True),
        ("b" * 32, True),
        ("a0_-z", True),
        ("b" * 33, False),
        ("_a", False),
        ("-a", False),
        ("aB", False),
        ("é", False),
        ("a\n", False),
        ("\na", False),
        ("a.b", False),
    ],
)
def test_name_pattern(name, valid):
    frame = json.dumps({"type": "block", "name": name})
    if valid:
        assert parse_phone_message(frame) == Block(name=name)
    else:
        assert _reject(frame).code is ErrorCode.INVALID_FIELD


@pytest.mark.parametrize(
    ("call_id", "valid"),
    [
        ("c", True),
        ("A" * 64, True),
        ("Az09_-", True),
        ("A" * 65, False),
        ("", False),
        ("a b", False),
        ("a+b", False),
        ("a\n", False),
        ("ü", False),
    ],
)
def test_call_id_pattern(call_id, valid):
    frame = json.dumps({"type": "hangup", "call_id": call_id})
    if valid:
        assert parse_phone_message(frame) == Hangup(call_id=call_id)
    else:
        error = _reject(frame)
        assert error.code is ErrorCode.INVALID_FIELD
        assert error.call_id == call_id


def test_server_frames_are_validated_too():
    incoming = {
        "type": "incoming",
        "call_id": "c1",
        "from": "alice",
        "kind": "audio",
        "sdp": "v=0",
        "placed_at": -1,
    }
    error = _reject(json.dumps(incoming), parse_server_message)
    assert error.code is ErrorCode.INVALID_FIELD
    assert "$.placed_at" in error.message
    assert error.call_id == "c1"

    error = _reject(
        json.dumps({"type": "error", "code": "nope", "message": "x"}), parse_server_message
    )
    assert error.code is ErrorCode.INVALID_FIELD
    assert "$.code" in error.message


def test_invalid_message_str_names_code_and_reason():
    error = _reject('{"type":"hangup"}')
    assert str(error) == f"invalid_field: {error.message}"
    assert isinstance(error, ValueError)
