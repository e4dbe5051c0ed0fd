"""Durations as scenario files write them: ``45s``, ``500ms``, ``2m``, ``1m30s``.

A duration is either a plain number of seconds (``45``, ``1.5``) or a run of
``<number><unit>`` parts with the units in descending order, each at most once:
``h``, ``m``, ``s``, ``ms``. So ``1m30s``, ``1.5s``, ``2h`` and ``1s500ms`` are
durations; ``5 sec``, ``30s1m`` and ``-5s`` are not.

:func:`parse_duration` and :func:`format_duration` are inverses:
``parse_duration(format_duration(x)) == x`` for every finite ``x >= 0``, which is
what lets reports print a duration that a scenario file can paste back in.
"""

from __future__ import annotations

import decimal
import math
import re
from fractions import Fraction


__all__ = ["format_duration", "parse_duration"]


_NUMBER = r"\d+(?:\.\d+)?"

# Each unit is optional but the order is fixed, so "1m30s" parses and "30s1m"
# does not. The regex engine backtracks "500ms" out of the minutes group by
# itself; the lookahead only makes that intent visible.
_DURATION = re.compile(
    rf"(?:(?P<h>{_NUMBER})h)?"
    rf"(?:(?P<m>{_NUMBER})m(?!s))?"
    rf"(?:(?P<s>{_NUMBER})s)?"
    rf"(?:(?P<ms>{_NUMBER})ms)?"
)
_PLAIN_SECONDS = re.compile(_NUMBER)

_UNIT_SECONDS = {"h": Fraction(3600), "m": Fraction(60), "s": Fraction(1), "ms": Fraction(1, 1000)}

_ACCEPTED = "use a number of seconds or forms like 45s, 500ms, 2m, 1m30s"


def parse_duration(value: object) -> float:
    """Read a duration from a scenario file.

    Args:
        value: A number of seconds (``int`` or ``float``), or text such as
            ``"45s"``, ``"500ms"``, ``"2m"``, ``"1m30s"``, ``"1.5s"`` or ``"45"``.

    Returns:
        The duration in seconds.

    Raises:
        ValueError: If ``value`` is not a duration, or is negative, infinite or
            not a number. The message quotes what was given and the accepted forms.
    """
    # bool is an int subclass, and YAML 1.1 reads "on"/"yes" as True: a duration
    # of True seconds is always a mistake in the file, never a meaning.
    if isinstance(value, bool) or value is None:
        given = "no value" if value is None else repr(value)
        raise ValueError(f"invalid duration: {given} given; {_ACCEPTED}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"invalid duration {value!r}: a duration must be a finite number")
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: {_ACCEPTED}")

    text = value.strip()
    if text.startswith("-") and _is_duration_text(text[1:]):
        raise ValueError(f"invalid duration {value!r}: a duration cannot be negative")
    if _PLAIN_SECONDS.fullmatch(text):
        return float(Fraction(text))
    match = _DURATION.fullmatch(text)
    # An empty string matches the all-optional pattern, so insist on one part.
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"invalid duration {value!r}: {_ACCEPTED}")
    # Summing exact fractions and rounding once means "1m0.1s" is the same float
    # as 60.1, which keeps format_duration/parse_duration exact inverses.
    total = sum(
        (
            Fraction(number) * _UNIT_SECONDS[unit]
            for unit, number in match.groupdict().items()
            if number is not None
        ),
        Fraction(0),
    )
    return float(total)


def _is_duration_text(text: str) -> bool:
    match = _DURATION.fullmatch(text)
    return _PLAIN_SECONDS.fullmatch(text) is not None or (
        match is not None and any(match.groupdict().values())
    )


def format_duration(seconds: float) -> str:
    """Write a duration the way a scenario file would.

    Whole hours and minutes are split off (``90`` -> ``"1m30s"``), durations under
    a second are written in milliseconds (``0.5`` -> ``"500ms"``), and a
    fractional remainder stays in seconds (``1.5`` -> ``"1.5s"``).

    Args:
        seconds: A finite, non-negative number of seconds.

    Returns:
        Text that :func:`parse_duration` reads back as exactly ``seconds``.

    Raises:
        ValueError: If ``seconds`` is negative, infinite or not a number.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"cannot format {seconds!r} as a duration: expected a number of seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"cannot format {seconds!r} as a duration: expected a finite number >= 0")
    # repr() is the shortest text that reads back as the same float, so doing the
    # arithmetic on it in decimal gives "1m1.1s" for 61.1 instead of binary noise.
    # The precision covers the largest float's quotient by 3600 without rounding.
    with decimal.localcontext() as context:
        context.prec = 400
        exact = decimal.Decimal(repr(float(seconds)))
        if exact == 0:
            return "0s"
        if exact < 1:
            return f"{_plain(exact * 1000)}ms"
        hours, rest = divmod(exact, 3600)
        minutes, secs = divmod(rest, 60)
        parts = [
            f"{_plain(amount)}{unit}"
            for amount, unit in ((hours, "h"), (minutes, "m"), (secs, "s"))
            if amount
        ]
        return "".join(parts)


def _plain(number: decimal.Decimal) -> str:
    # normalize() drops trailing zeros ("500.0" -> "5E+2"); the "f" format then
    # spells it out without an exponent, which parse_duration requires.
    return format(number.normalize(), "f")
