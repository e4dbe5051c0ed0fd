import math

import pytest

from scenarios.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45s", 45.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
        ("2h", 7200.0),
        ("1h1m1s", 3661.0),
        ("1s500ms", 1.5),
        ("1m0.1s", 60.1),
        ("45", 45.0),
        ("2.5", 2.5),
        (" 45s ", 45.0),
    ],
)
def test_parse_duration_reads_text(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("number", "seconds"), [(0, 0.0), (45, 45.0), (1.5, 1.5)])
def test_parse_duration_reads_numbers_as_seconds(number, seconds):
    result = parse_duration(number)
    assert result == seconds
    assert type(result) is float


@pytest.mark.parametrize("value", ["5 sec", "", "   ", "45x", "30s1m", "1m1m", "s", "1e3s", "ms"])
def test_parse_duration_rejects_unknown_forms_and_says_what_is_accepted(value):
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    message = str(info.value)
    assert repr(value) in message
    assert "45s, 500ms, 2m, 1m30s" in message


def test_parse_duration_error_message_matches_the_documented_form():
    with pytest.raises(ValueError) as info:
        parse_duration("5 sec")
    assert str(info.value) == (
        "invalid duration '5 sec': use a number of seconds or forms like 45s, 500ms, 2m, 1m30s"
    )


@pytest.mark.parametrize("value", ["-5s", "-1m30s", -1, -0.5])
def test_parse_duration_rejects_negatives(value):
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_booleans(value):
    # YAML 1.1 reads "on"/"yes" as True; that must not become one second.
    with pytest.raises(ValueError, match=repr(value)):
        parse_duration(value)


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_parse_duration_rejects_non_finite_numbers(value):
    with pytest.raises(ValueError, match="finite"):
        parse_duration(value)


@pytest.mark.parametrize("value", [None, [1], {"s": 1}])
def test_parse_duration_rejects_other_types(value):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (45.0, "45s"),
        (0.5, "500ms"),
        (90, "1m30s"),
        (0, "0s"),
        (120, "2m"),
        (1.5, "1.5s"),
        (61.1, "1m1.1s"),
        (3600, "1h"),
        (3661, "1h1m1s"),
        (0.0005, "0.5ms"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "seconds",
    [0.0, 0.001, 0.1, 0.123456789, 1.0, 1.1, 59.999, 60.0, 61.1, 3599.5, 86400.25, 1e-7, 1e12],
)
def test_format_then_parse_gives_back_the_same_float(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["45s", "500ms", "2m", "1m30s", "1.5s", "0s", "1h30m", "2m0.5s"])
def test_parse_then_format_gives_back_canonical_text(text):
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("value", [-1.0, math.inf, math.nan])
def test_format_duration_rejects_what_parse_rejects(value):
    with pytest.raises(ValueError, match="cannot format"):
        format_duration(value)
