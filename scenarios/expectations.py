"""Judging a run: each phone's call log against what the scenario expects.

An expectation for a phone is its *whole* log, oldest first: the same number of entries,
and each entry matching on every key the scenario set (a key left out is not checked).
Durations match to the nearest second. A mismatch is reported as a small table of
expected against actual, entry by entry, so a person sees at once which line differs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from scenarios.model import ExpectedEntry
from scenarios.observers import LogEntry


__all__ = ["compare_logs", "entry_matches"]


def entry_matches(expected: ExpectedEntry, actual: LogEntry) -> bool:
    """Whether ``actual`` has every property ``expected`` sets."""
    if expected.label is not None and expected.label != actual.label:
        return False
    if expected.with_ is not None and expected.with_ != actual.with_:
        return False
    if expected.kind is not None and expected.kind != actual.kind:
        return False
    if expected.reached is not None and expected.reached != actual.reached:
        return False
    if expected.direction is not None and expected.direction != actual.direction:
        return False
    if expected.duration is None:
        return True
    return actual.duration is not None and _whole(actual.duration) == _whole(expected.duration)


def _whole(seconds: float) -> int:
    """To the nearest second, halves up (Python's ``round`` sends 10.5 to 10, 11.5 to 12)."""
    return math.floor(seconds + 0.5)


def compare_logs(
    expect: Mapping[str, Sequence[ExpectedEntry]], logs: Mapping[str, Sequence[LogEntry]]
) -> list[str]:
    """Compares every expected phone's log; returns one failure text per phone that differs."""
    failures = []
    for phone, expected in expect.items():
        actual = logs.get(phone, [])
        if len(expected) == len(actual) and all(
            entry_matches(e, a) for e, a in zip(expected, actual, strict=True)
        ):
            continue
        failures.append(_diff(phone, expected, actual))
    return failures


def _diff(phone: str, expected: Sequence[ExpectedEntry], actual: Sequence[LogEntry]) -> str:
    want = ", ".join(e.label or "any" for e in expected) or "no entry"
    got = ", ".join(a.label or "in progress" for a in actual) or "no entry"
    lines = [f"{phone}: expected [{want}], got [{got}]"]
    for index in range(max(len(expected), len(actual))):
        e = expected[index] if index < len(expected) else None
        a = actual[index] if index < len(actual) else None
        ok = e is not None and a is not None and entry_matches(e, a)
        mark = "ok" if ok else "!!"
        left = e.describe() if e is not None else "(nothing)"
        right = a.describe() if a is not None else "(nothing)"
        lines.append(f"    {mark} {index + 1}. expected {left:<40} got {right}")
    return "\n".join(lines)
