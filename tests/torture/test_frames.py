"""Torture: hostile frames on a raw websocket, in the spirit of RFC 4475 (SIP torture tests).

Each case is one named hostile input (plus, at the end, a few weird but valid ones that must
be accepted, as RFC 4475 §3.1.1 has too). For each, three things are asserted:

1. the server's answer: the exact ``error`` replies (right code, and the ``call_id`` the
   frame named, if any) with the connection left open, or a close with the right code;
2. the server is alive afterwards: a fresh connection registers and places a call;
3. the bystanders' call (alice and bob, answered before the attack, hung up after it) is
   untouched: no frame, no transition, no reconnect, and both logs read outgoing/incoming
   with the right duration.

(2) and (3) are the ``arena`` fixture's (``tests/torture/conftest.py``).

Names: ``mallory`` is the attacker; ``dave``, ``erin``, ``frank`` are accounts whose phones
are off (the attacker's own calls ring nobody); ``alice-1`` is the bystanders' call.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import token_for
from tests.torture.harness import (
    MALLORY,
    Close,
    Fragments,
    Text,
    TortureCase,
    check_names,
    run_case,
)


pytestmark = pytest.mark.looptime

MALLORY_TOKEN = token_for("mallory")
BYSTANDER_CALL = "alice-1"


def register(**fields: Any) -> dict[str, Any]:
    """A register frame for mallory, with ``fields`` changed (``None`` removes a field)."""
    return _frame(MALLORY, fields)


def offer(**fields: Any) -> dict[str, Any]:
    """An offer from mallory to dave (whose phone is off), with ``fields`` changed."""
    base = {"type": "offer", "call_id": "m1", "to": "dave", "kind": "audio", "sdp": "v=0"}
    return _frame(base, fields)


def candidate(**fields: Any) -> dict[str, Any]:
    """A candidate for the bystanders' call, with ``fields`` changed."""
    base = {
        "type": "candidate",
        "call_id": BYSTANDER_CALL,
        "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
        "sdp_mid": "0",
        "sdp_mline_index": 0,
    }
    return _frame(base, fields)


def _frame(base: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    frame = {**base, **fields}
    return {key: value for key, value in frame.items() if value is not None}


REGISTER_BYTES = json.dumps(MALLORY).encode()
SDP_OVER_LIMIT = "v=0\r\n" + "a=x-junk:" + "x" * (300 * 1024)
NESTED = 100_000


def t(
    name: str, *frames: Any, expect: Any = (), register: bool = False, about: str = ""
) -> TortureCase:
    """One case of the table."""
    return TortureCase(name, tuple(frames), expect, register=register, about=about)


CASES = check_names(
    [
        # --- Not UTF-8. In a binary frame the bytes reach the JSON parser: bad_frame. In a
        # text frame websockets itself must fail the connection with 1007 (RFC 6455 §8.1).
        t("utf8-invalid-first-byte", b"\xff" + REGISTER_BYTES, expect=("bad_frame",)),
        t(
            "utf8-invalid-byte-in-name",
            b'{"type":"register","name":"mal\xfflory","token":"' + MALLORY_TOKEN.encode() + b'"}',
            expect=("bad_frame",),
        ),
        t(
            "utf8-overlong-slash-in-name",
            b'{"type":"register","name":"mal\xc0\xaflory","token":"'
            + MALLORY_TOKEN.encode()
            + b'"}',
            expect=("bad_frame",),
        ),
        t(
            "utf8-invalid-byte-in-key",
            b'{"ty\xfepe":"register","name":"mallory","token":"' + MALLORY_TOKEN.encode() + b'"}',
            expect=("bad_frame",),
        ),
        t(
            "utf8-lone-continuation-byte-in-type",
            b'{"type":"\x80register","name":"mallory","token":"' + MALLORY_TOKEN.encode() + b'"}',
            expect=("bad_frame",),
        ),
        t(
            "utf8-encoded-surrogate-in-sdp",
            b'{"type":"offer","call_id":"m1","to":"dave","kind":"audio","sdp":"v=0\xed\xa0\x80"}',
            register=True,
            expect=("bad_frame",),
        ),
        t(
            "utf8-beyond-u10ffff-in-sdp",
            b'{"type":"offer","call_id":"m1","to":"dave","kind":"audio",'
            b'"sdp":"v=0\xf4\x90\x80\x80"}',
            register=True,
            expect=("bad_frame",),
        ),
        t(
            "utf8-truncated-sequence-at-end-of-candidate",
            b'{"type":"candidate","call_id":"alice-1","candidate":"c\xe2\x82"}',
            register=True,
            expect=("bad_frame",),
        ),
        t(
            "utf8-invalid-in-text-frame-closes-1007",
            Text(b'{"type":"register","name":"mal\xfflory"}'),
            expect=Close(1007),
            about="RFC 6455 §8.1: invalid UTF-8 in a text frame fails the connection",
        ),
        t(
            "json-lone-high-surrogate-escape",
            '{"type":"offer","call_id":"m1","to":"dave","kind":"audio","sdp":"\\ud800"}',
            register=True,
            expect=("bad_frame",),
        ),
        t(
            "json-lone-low-surrogate-escape",
            '{"type":"candidate","call_id":"alice-1","candidate":"\\udc00"}',
            register=True,
            expect=("bad_frame",),
        ),
        t(
            "utf8-byte-order-mark-before-object",
            "\ufeff" + json.dumps(MALLORY),
            expect=("bad_frame",),
        ),
        # --- Not JSON.
        t("not-json-word", "hello", expect=("bad_frame",)),
        t("not-json-empty-text-frame", "", expect=("bad_frame",)),
        t("not-json-empty-binary-frame", b"", expect=("bad_frame",)),
        t("not-json-binary-junk", b"\x00\xff\xfe\x00 junk", expect=("bad_frame",)),
        t("not-json-truncated-object", '{"type":"register","name":"mal', expect=("bad_frame",)),
        t(
            "not-json-trailing-garbage",
            json.dumps(MALLORY) + " trailing",
            expect=("bad_frame",),
        ),
        t(
            "not-json-two-objects-in-one-frame",
            json.dumps(MALLORY) + json.dumps(MALLORY),
            expect=("bad_frame",),
            about="one JSON object per frame, no batching",
        ),
        t(
            "not-json-single-quotes",
            "{'type': 'register', 'name': 'mallory'}",
            expect=("bad_frame",),
        ),
        t(
            "not-json-comment",
            '{"type":"register" /* hi */, "name":"mallory","token":"' + MALLORY_TOKEN + '"}',
            expect=("bad_frame",),
        ),
        t(
            "not-json-nan-literal",
            '{"type":"candidate","call_id":"alice-1","candidate":"c","sdp_mline_index":NaN}',
            register=True,
            expect=("bad_frame",),
        ),
        # --- JSON, but not an object.
        t("json-array", "[1, 2]", expect=("bad_frame",)),
        t("json-array-holding-a-valid-register", json.dumps([MALLORY]), expect=("bad_frame",)),
        t("json-string", '"register"', expect=("bad_frame",)),
        t("json-number", "42", expect=("bad_frame",)),
        t("json-null", "null", expect=("bad_frame",)),
        t("json-true", "true", expect=("bad_frame",)),
        t("json-array-as-binary-frame", b"[]", expect=("bad_frame",)),
        # --- Deep nesting and huge numbers: the parser must refuse them, not crash.
        t("nested-arrays-100k-deep", "[" * NESTED + "]" * NESTED, expect=("bad_frame",)),
        t(
            "nested-arrays-100k-deep-in-a-field",
            '{"type":"register","name":"mallory","token":"'
            + MALLORY_TOKEN
            + '","calls":'
            + "[" * NESTED
            + "]" * NESTED
            + "}",
            expect=("bad_frame|invalid_field",),
            about="calls must be a list of call ids; the parser must not recurse 100k deep",
        ),
        t(
            "nested-objects-40k-deep-in-an-unknown-field",
            '{"type":"offer","call_id":"m1","x":' + '{"a":' * 40_000 + "1" + "}" * 40_000 + "}",
            register=True,
            expect=("bad_frame|invalid_field(m1)",),
        ),
        t("huge-integer-100k-digits", "1" + "0" * 100_000, expect=("bad_frame",)),
        t(
            "huge-float-1e400-as-index",
            '{"type":"candidate","call_id":"alice-1","candidate":"c","sdp_mline_index":1e400}',
            register=True,
            expect=("bad_frame|invalid_field(alice-1)",),
        ),
        t(
            "huge-integer-as-call-id",
            '{"type":"hangup","call_id":1' + "0" * 400 + "}",
            register=True,
            expect=("invalid_field|bad_frame",),
        ),
        t(
            "huge-string-call-id-200k",
            offer(call_id="c" * 200_000),
            register=True,
            expect=(f"invalid_field({'c' * 200_000})",),
            about="the error names the call_id it could read, even an invalid one",
        ),
        # --- Duplicate keys (RFC 8259 §4: names SHOULD be unique).
        t(
            "duplicate-type-key",
            '{"type":"register","type":"offer","name":"mallory","token":"' + MALLORY_TOKEN + '"}',
            expect=("invalid_field|bad_frame|unknown_type",),
        ),
        t(
            "duplicate-name-key-cannot-bypass-the-token",
            '{"type":"register","name":"mallory","token":"' + MALLORY_TOKEN + '","name":"alice"}',
            expect=("bad_token|invalid_field|bad_frame",),
            about="whichever name the server reads, it must not register alice with "
            "mallory's token, nor register mallory while another name was claimed",
        ),
        t(
            "duplicate-call-id-key-naming-the-bystanders-call",
            '{"type":"hangup","call_id":"m9","call_id":"alice-1"}',
            register=True,
            expect=("not_your_call(alice-1)|invalid_field|invalid_field(alice-1)|bad_frame",),
        ),
        # --- The type.
        t("type-missing", {"name": "mallory", "token": MALLORY_TOKEN}, expect=("unknown_type",)),
        t("type-unknown", {"type": "teleport", "call_id": "x1"}, expect=("unknown_type(x1)",)),
        t("type-not-a-string", {**MALLORY, "type": 7}, expect=("unknown_type",)),
        t("type-uppercase", {**MALLORY, "type": "Register"}, expect=("unknown_type",)),
        t("type-empty-string", {**MALLORY, "type": ""}, expect=("unknown_type",)),
        t("type-with-trailing-space", {**MALLORY, "type": "register "}, expect=("unknown_type",)),
        # --- Server-only types from a phone: unknown_type, before or after registering.
        t(
            "server-only-incoming-for-the-bystanders-call",
            {
                "type": "incoming",
                "call_id": BYSTANDER_CALL,
                "from": "mallory",
                "kind": "audio",
                "sdp": "v=0",
                "placed_at": 0.0,
            },
            register=True,
            expect=("unknown_type(alice-1)",),
        ),
        t(
            "server-only-registered",
            {"type": "registered", "name": "alice", "blocks": [], "calls": []},
            expect=("unknown_type",),
        ),
        t(
            "server-only-call-ended-for-the-bystanders-call",
            {"type": "call_ended", "call_id": BYSTANDER_CALL, "reason": "hung_up"},
            register=True,
            expect=("unknown_type(alice-1)",),
        ),
        t(
            "server-only-error",
            {"type": "error", "code": "bad_token", "message": "x", "call_id": None},
            register=True,
            expect=("unknown_type",),
        ),
        t(
            "server-only-missed-call",
            {
                "type": "missed_call",
                "call_id": "m1",
                "from": "alice",
                "kind": "audio",
                "placed_at": 0.0,
                "reason": "canceled",
            },
            register=True,
            expect=("unknown_type(m1)",),
        ),
        t(
            "server-only-reconnecting-for-the-bystanders-call",
            {"type": "reconnecting", "call_id": BYSTANDER_CALL},
            register=True,
            expect=("unknown_type(alice-1)",),
        ),
        t(
            "server-only-resumed",
            {"type": "resumed", "call_id": BYSTANDER_CALL},
            register=True,
            expect=("unknown_type(alice-1)",),
        ),
        # --- Wrong types, field by field.
        t("offer-call-id-number", offer(call_id=1), register=True, expect=("invalid_field",)),
        t("offer-to-null", {**offer(), "to": None}, register=True, expect=("invalid_field(m1)",)),
        t("offer-kind-number", offer(kind=1), register=True, expect=("invalid_field(m1)",)),
        t("offer-kind-fax", offer(kind="fax"), register=True, expect=("invalid_field(m1)",)),
        t("offer-sdp-array", offer(sdp=["v=0"]), register=True, expect=("invalid_field(m1)",)),
        t("register-name-number", register(name=42), expect=("invalid_field",)),
        t("register-name-object", register(name={"name": "alice"}), expect=("invalid_field",)),
        t("register-token-number", register(token=10**20), expect=("invalid_field",)),
        t("register-calls-string", register(calls="alice-1"), expect=("invalid_field",)),
        t("register-calls-list-of-numbers", register(calls=[1, 2]), expect=("invalid_field",)),
        t(
            "candidate-call-id-number",
            candidate(call_id=1),
            register=True,
            expect=("invalid_field",),
        ),
        t(
            "candidate-candidate-number",
            candidate(candidate=1),
            register=True,
            expect=("invalid_field(alice-1)",),
        ),
        t(
            "candidate-sdp-mid-number",
            candidate(sdp_mid=0),
            register=True,
            expect=("invalid_field(alice-1)",),
        ),
        t(
            "candidate-sdp-mline-index-negative",
            candidate(sdp_mline_index=-1),
            register=True,
            expect=("invalid_field(alice-1)",),
        ),
        t(
            "candidate-sdp-mline-index-string",
            candidate(sdp_mline_index="0"),
            register=True,
            expect=("invalid_field(alice-1)",),
        ),
        t(
            "candidate-sdp-mline-index-bool",
            candidate(sdp_mline_index=True),
            register=True,
            expect=("invalid_field(alice-1)",),
        ),
        t(
            "candidate-sdp-mline-index-float",
            candidate(sdp_mline_index=0.5),
            register=True,
            expect=("invalid_field(alice-1)",),
        ),
        t(
            "hangup-reason-not-in-the-schema",
            {"type": "hangup", "call_id": BYSTANDER_CALL, "reason": "hung_up"},
            register=True,
            expect=("invalid_field(alice-1)",),
        ),
        # --- Missing fields.
        t("offer-missing-sdp", offer(sdp=None), register=True, expect=("invalid_field(m1)",)),
        t("offer-missing-to", offer(to=None), register=True, expect=("invalid_field(m1)",)),
        t("register-missing-token", register(token=None), expect=("invalid_field",)),
        t("register-missing-name", register(name=None), expect=("invalid_field",)),
        t(
            "candidate-missing-candidate",
            candidate(candidate=None),
            register=True,
            expect=("invalid_field(alice-1)",),
        ),
        t(
            "answer-missing-sdp",
            {"type": "answer", "call_id": BYSTANDER_CALL},
            register=True,
            expect=("invalid_field(alice-1)",),
        ),
        t("hangup-missing-call-id", {"type": "hangup"}, register=True, expect=("invalid_field",)),
        # --- Extra fields.
        t(
            "offer-smuggled-from",
            offer(**{"from": "alice"}),
            register=True,
            expect=("invalid_field(m1)",),
            about="the server stamps identity: a phone cannot name a sender",
        ),
        t(
            "hangup-smuggled-from-for-the-bystanders-call",
            {"type": "hangup", "call_id": BYSTANDER_CALL, "from": "alice"},
            register=True,
            expect=("invalid_field(alice-1)",),
        ),
        t("register-extra-admin-field", register(admin=True), expect=("invalid_field",)),
        t("register-smuggled-blocks", register(blocks=["alice"]), expect=("invalid_field",)),
        # --- Empty strings.
        t("register-empty-name", register(name=""), expect=("invalid_field",)),
        t("register-empty-token", register(token=""), expect=("invalid_field",)),
        t("offer-empty-call-id", offer(call_id=""), register=True, expect=("invalid_field()",)),
        t("offer-empty-to", offer(to=""), register=True, expect=("invalid_field(m1)",)),
        t("offer-empty-sdp", offer(sdp=""), register=True, expect=("invalid_field(m1)",)),
        # --- Odd names: only ^[a-z][a-z0-9_-]{0,31}$ is a name.
        t("name-uppercase", register(name="Mallory"), expect=("invalid_field",)),
        t("name-emoji", register(name="mallory\U0001f608"), expect=("invalid_field",)),
        t(
            "name-rtl-override-spoofing-alice",
            register(name="\u202eecila"),
            expect=("invalid_field",),
        ),
        t(
            "name-zero-width-joiner-in-alice",
            register(name="ali\u200dce"),
            expect=("invalid_field",),
        ),
        t(
            "name-cyrillic-homoglyph-of-alice",
            register(name="\u0430lice"),
            expect=("invalid_field",),
            about="U+0430 CYRILLIC SMALL LETTER A looks like 'a'",
        ),
        t(
            "name-fullwidth-alice",
            register(name="\uff41\uff4c\uff49\uff43\uff45"),
            expect=("invalid_field",),
        ),
        t("name-nul-byte-after-alice", register(name="alice\u0000"), expect=("invalid_field",)),
        t("name-trailing-newline-after-alice", register(name="alice\n"), expect=("invalid_field",)),
        t("name-33-chars", register(name="m" * 33), expect=("invalid_field",)),
        t("name-leading-digit", register(name="1mallory"), expect=("invalid_field",)),
        t(
            "offer-to-cyrillic-homoglyph-of-bob",
            offer(to="b\u043eb"),
            register=True,
            expect=("invalid_field(m1)",),
        ),
        t(
            "offer-to-bob-with-trailing-newline",
            offer(to="bob\n"),
            register=True,
            expect=("invalid_field(m1)",),
        ),
        t(
            "call-id-with-slash-and-dots",
            offer(call_id="../alice-1"),
            register=True,
            expect=("invalid_field(../alice-1)",),
        ),
        # --- Tokens: 16 to 256 characters.
        t("token-15-chars", register(token="t" * 15), expect=("invalid_field",)),
        t("token-257-chars", register(token="t" * 257), expect=("invalid_field",)),
        # --- Bigger than the frame limit: websockets closes with 1009.
        t(
            "sdp-beyond-the-frame-limit",
            offer(sdp=SDP_OVER_LIMIT),
            register=True,
            expect=Close(1009),
        ),
        t(
            "fragmented-message-beyond-the-frame-limit",
            Fragments(('{"type":"offer","sdp":"', *(["x" * 65536] * 5), '"}')),
            register=True,
            expect=Close(1009),
        ),
        t("binary-frame-beyond-the-frame-limit", b"[" * (300 * 1024), expect=Close(1009)),
        # --- Order and identity.
        t("offer-before-register", offer(), expect=("not_registered(m1)",)),
        t(
            "hangup-of-the-bystanders-call-before-register",
            {"type": "hangup", "call_id": BYSTANDER_CALL},
            expect=("not_registered(alice-1)",),
        ),
        t("block-before-register", {"type": "block", "name": "alice"}, expect=("not_registered",)),
        t(
            "missed-call-ack-before-register",
            {"type": "missed_call_ack", "call_id": "x1"},
            expect=("not_registered(x1)",),
        ),
        t("register-twice", MALLORY, MALLORY, expect=("registered", "already_registered")),
        t(
            "register-twice-as-another-account-with-its-token",
            MALLORY,
            {"type": "register", "name": "dave", "token": token_for("dave")},
            expect=("registered", "already_registered"),
        ),
        t(
            "register-as-bystander-with-wrong-token",
            {"type": "register", "name": "alice", "token": "not-alices-token-0000"},
            expect=("bad_token",),
            about="alice (a bystander) holds the name; she must not notice",
        ),
        t(
            "register-as-bystander-with-wrong-token-then-as-self",
            {"type": "register", "name": "bob", "token": MALLORY_TOKEN},
            MALLORY,
            expect=("bad_token", "registered"),
        ),
        t(
            "hangup-someone-elses-call",
            {"type": "hangup", "call_id": BYSTANDER_CALL},
            register=True,
            expect=("not_your_call(alice-1)",),
        ),
        t(
            "hangup-someone-elses-call-as-a-cancel",
            {"type": "hangup", "call_id": BYSTANDER_CALL, "reason": "canceled"},
            register=True,
            expect=("not_your_call(alice-1)",),
        ),
        t(
            "answer-someone-elses-call",
            {"type": "answer", "call_id": BYSTANDER_CALL, "sdp": "v=0"},
            register=True,
            expect=("not_your_call(alice-1)",),
        ),
        t(
            "decline-someone-elses-call",
            {"type": "decline", "call_id": BYSTANDER_CALL},
            register=True,
            expect=("not_your_call(alice-1)",),
        ),
        t(
            "busy-for-someone-elses-call",
            {"type": "busy", "call_id": BYSTANDER_CALL},
            register=True,
            expect=("not_your_call(alice-1)",),
        ),
        t(
            "ringing-for-someone-elses-call",
            {"type": "ringing", "call_id": BYSTANDER_CALL},
            register=True,
            expect=("not_your_call(alice-1)",),
        ),
        t(
            "candidate-for-someone-elses-call",
            candidate(),
            register=True,
            expect=("not_your_call(alice-1)",),
        ),
        t(
            "answer-by-the-caller",
            offer(),
            {"type": "answer", "call_id": "m1", "sdp": "v=0"},
            register=True,
            expect=("illegal_transition(m1)",),
        ),
        t(
            "ringing-by-the-caller",
            offer(),
            {"type": "ringing", "call_id": "m1"},
            register=True,
            expect=("illegal_transition(m1)",),
        ),
        t(
            "replayed-offer-same-call-id",
            offer(),
            offer(),
            register=True,
            expect=("duplicate_call(m1)",),
        ),
        t(
            "offer-reusing-the-bystanders-call-id",
            offer(call_id=BYSTANDER_CALL),
            register=True,
            expect=("duplicate_call(alice-1)",),
        ),
        t(
            "offer-reusing-an-ended-call-id",
            offer(),
            {"type": "hangup", "call_id": "m1"},
            offer(to="erin"),
            register=True,
            expect=("duplicate_call(m1)",),
        ),
        t(
            "hangup-after-the-call-ended",
            offer(),
            {"type": "hangup", "call_id": "m1"},
            {"type": "hangup", "call_id": "m1"},
            register=True,
            expect=("unknown_call(m1)",),
        ),
        t(
            "answer-before-any-offer",
            {"type": "answer", "call_id": "m7", "sdp": "v=0"},
            register=True,
            expect=("unknown_call(m7)",),
        ),
        t(
            "ringing-for-an-unknown-call",
            {"type": "ringing", "call_id": "m8"},
            register=True,
            expect=("unknown_call(m8)",),
        ),
        t(
            "ack-for-a-notice-never-sent-is-silent",
            {"type": "missed_call_ack", "call_id": BYSTANDER_CALL},
            {"type": "missed_call_ack", "call_id": "never-sent"},
            register=True,
            expect=(),
        ),
        t(
            "unblock-never-blocked-and-block-a-bystander-are-silent",
            {"type": "unblock", "name": "bob"},
            {"type": "block", "name": "alice"},
            register=True,
            expect=(),
            about="mallory's own block list; alice is not told and her call goes on",
        ),
        t(
            "block-a-name-nobody-registered-is-silent",
            {"type": "block", "name": "zed"},
            register=True,
            expect=(),
        ),
        t(
            "register-claiming-the-bystanders-call",
            register(calls=[BYSTANDER_CALL]),
            expect=("registered",),
            about="registered, resuming nothing: alice-1 is not mallory's call",
        ),
        t("offer-to-self", offer(to="mallory"), register=True, expect=("self_call(m1)",)),
        t("offer-to-nobody", offer(to="zed"), register=True, expect=("unknown_phone(m1)",)),
        t(
            "too-many-calls",
            offer(call_id="m1", to="dave"),
            offer(call_id="m2", to="erin"),
            offer(call_id="m3", to="frank"),
            register=True,
            expect=("too_many_calls(m3)",),
            about="max_calls_per_phone is 2 in the arena",
        ),
        t(
            "refusals-up-to-the-limit-then-closed",
            *(["hello"] * 25),
            expect=Close(1008, "too many refused frames", ("bad_frame",) * 20),
            about="max_errors (20) refusals within error_window, and the connection is closed",
        ),
        # --- Weird but valid (RFC 4475 §3.1.1): these must be accepted.
        t("valid-register-as-binary-frame", REGISTER_BYTES, expect=("registered",)),
        t(
            "valid-register-in-50-fragments",
            Fragments(tuple(json.dumps(MALLORY)[i : i + 2] for i in range(0, 100, 2))),
            expect=("registered",),
        ),
        t(
            "valid-register-reordered-with-whitespace",
            '\n\t { "token" :\r\n"' + MALLORY_TOKEN + '" , "name":"mallory",\n"type":"register"}  ',
            expect=("registered",),
        ),
        t(
            "valid-register-with-escaped-name",
            '{"type":"register","name":"\\u006dallory","token":"' + MALLORY_TOKEN + '"}',
            expect=("registered",),
        ),
        t(
            "valid-register-listing-10000-unknown-calls",
            register(calls=[f"c{i}" for i in range(10_000)]),
            expect=("registered",),
        ),
        t(
            "valid-offer-sdp-just-under-the-frame-limit",
            offer(sdp="v=0\r\n" + "a=x:" + "x" * (250 * 1024)),
            register=True,
            expect=(),
        ),
        t("valid-name-32-chars", register(name="m" * 32), expect=("registered",)),
        t("valid-token-16-chars", register(token="t" * 16), expect=("registered",)),
        t("valid-token-256-chars", register(token="t" * 256), expect=("registered",)),
        t("valid-token-of-16-emoji", register(token="\U0001f511" * 16), expect=("registered",)),
    ]
)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_hostile_frame(arena: Any, case: TortureCase) -> None:
    async with arena() as world:
        await run_case(world, case)
