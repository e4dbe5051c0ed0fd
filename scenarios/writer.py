"""Write a :class:`~scenarios.model.Scenario` back as a scenario file.

:func:`scenario_to_yaml` is the inverse of :func:`scenarios.loader.load_scenario_text`:
for every scenario the loader accepts (and every one built by hand that respects the
same rules),

    load_scenario_text(scenario_to_yaml(s), s.path) == as_written(s)

where :func:`as_written` is ``s`` itself except for the two things a file cannot
carry over unchanged: each :attr:`Step.line <scenarios.model.Step.line>` (where the
step lands in the new file) and each :attr:`Action.text <scenarios.model.Action.text>`
and :attr:`Event.text <scenarios.model.Event.text>`, which are re-rendered canonically
from their parsed parts (``alice video-calls bob``, ``server crashes``, ``bob's call
ends``): the words the file had, with single spaces and a plain apostrophe. Every other
field compares equal, ``Scenario.path`` included when the text is loaded with
``path=s.path``.

The file is written for people: block style for the sections and the steps, flow style
(``{power: off, blocks: [alice]}``) for small mappings, durations as
:func:`~scenarios.durations.format_duration` writes them, ``on``/``off`` unquoted for a
phone's switches (YAML 1.1 reads them as booleans, which the loader takes), and a text
quoted only when it would not read back as the same text otherwise.

The YAML is produced by hand rather than by ``yaml.dump``: it is faster (exploration
writes thousands of scenarios a second) and it keeps the layout of the library's files.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping

import yaml
import yaml.resolver

from .durations import format_duration
from .model import Action, Event, EventKind, ExpectedEntry, Scenario, Settings, Step


__all__ = ["as_written", "scenario_to_yaml"]


_WIDTH = 100
"""Longest line the writer aims for before it switches a flow collection to block style."""
_FOLD_WIDTH = 78
"""Width of the lines of a long ``about`` folded with ``>-``, after the indentation."""

_FAST_DURATION_LIMIT = 1e9
"""Below this many seconds, floats are far closer together than a millisecond."""

_STR_TAG = "tag:yaml.org,2002:str"
# PyYAML's resolver is untyped; this is the signature it has.
_resolve: Callable[[type[yaml.Node], str, tuple[bool, bool]], str] = (
    yaml.resolver.Resolver().resolve
)

# Characters a plain scalar may hold: printable, no line breaks (U+0085, U+2028, U+2029),
# no tab and no byte order mark, which YAML would read as something else.
_PLAIN_CHARACTERS = re.compile(
    "[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]+"
)
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW_INDICATORS = re.compile(r"[,\[\]{}:#]")
# A folded block scalar gives back single spaces between its lines, so a text can be
# folded when its words are separated by exactly one space and hold no other blank.
_FOLDABLE = re.compile(
    "[\x21-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]+"
    "(?: [\x21-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]+)*"
)
# A key is taken as written by the loader, so a plain word is safe whatever YAML 1.1
# would resolve it to as a value ("on", "no").
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\0": "\\0",
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    "\x1b": "\\e",
    "\x85": "\\N",
    "\xa0": "\\_",
    "\u2028": "\\L",
    "\u2029": "\\P",
}
# What YAML does not allow anywhere in a file, not even in a comment.
_UNREADABLE = re.compile("[^\t\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NEEDS_ESCAPE = re.compile(
    '[\\\\"\x00-\x1f\x7f-\x9f\xa0\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]'
)


def scenario_to_yaml(scenario: Scenario, *, comment: str = "") -> str:
    """Write a scenario as the text of a scenario file in the contract format.

    Args:
        scenario: The scenario to write. Its :attr:`~scenarios.model.Scenario.path` is
            not written: a file does not name itself.
        comment: Text written first, each of its lines as a ``# `` comment line (a
            shrunk reproducer's seed, the check that failed, the command to rerun it).
            Empty for no comment.

    Returns:
        The YAML text, ending with a newline. Loading it gives back
        :func:`as_written` of ``scenario`` (see the module docstring).

    Raises:
        ValueError: If a step cannot be written as the format says: neither or both
            of ``at`` and ``when``, an ``after`` on an ``at`` step, or an action that
            lacks the actor or target its verb needs.
    """
    lines: list[str] = [
        f"# {_UNREADABLE.sub(_escape, line)}".rstrip() for line in comment.splitlines()
    ]
    _render(scenario, lines)
    return "\n".join(lines) + "\n"


def as_written(scenario: Scenario) -> Scenario:
    """The scenario that loading :func:`scenario_to_yaml`'s text gives back.

    It is ``scenario`` with each step's :attr:`~scenarios.model.Step.line` set to the
    line where the step starts in ``scenario_to_yaml(scenario)`` (written without a
    comment; a comment of ``n`` lines moves every step down by ``n``), and each action
    and event text re-rendered canonically from its verb or kind and its phones.

    Args:
        scenario: Any scenario :func:`scenario_to_yaml` can write.

    Returns:
        The scenario with canonical texts and the lines of the written file.

    Raises:
        ValueError: As for :func:`scenario_to_yaml`.
    """
    header: list[str] = []
    _header(scenario, header)
    line = len(header) + 2  # after the header comes "steps:", then the first step
    steps: list[Step] = []
    for position, step in enumerate(scenario.steps):
        _check_step(step, position)
        # The constructors rather than dataclasses.replace, which is several times slower.
        action = step.action
        when = step.when
        steps.append(
            Step(
                index=step.index,
                line=line,
                at=step.at,
                when=None if when is None else Event(when.kind, when.phone, _event_text(when)),
                after=step.after,
                action=Action(
                    action.verb, action.actor, action.target, _action_text(action, position)
                ),
            )
        )
        line += _step_height(step)
    return dataclasses.replace(scenario, steps=tuple(steps))


# Sections


def _render(scenario: Scenario, lines: list[str]) -> None:
    """Append the file's lines to ``lines``."""
    _header(scenario, lines)
    if scenario.steps:
        lines.append("steps:")
        for position, step in enumerate(scenario.steps):
            _step(step, position, lines)
    if scenario.expect is not None:
        _logs_block("expect", scenario.expect, "", lines)
    if scenario.expect_profiles:
        lines.append("expect_profiles:")
        for profile, logs in scenario.expect_profiles.items():
            _logs_block(_key(profile), logs, "  ", lines)


def _header(scenario: Scenario, lines: list[str]) -> None:
    """Append the lines before ``steps``: name, about, profile, settings and phones."""
    lines.append(f"name: {_scalar(scenario.name)}")
    if scenario.about:
        _about(scenario.about, lines)
    lines.append(f"profile: {_scalar(scenario.profile)}")
    _settings(scenario.settings, lines)
    _phones(scenario, lines)


def _about(about: str, lines: list[str]) -> None:
    line = f"about: {_scalar(about)}"
    if len(line) <= _WIDTH or not _FOLDABLE.fullmatch(about):
        lines.append(line)
        return
    lines.append("about: >-")
    current = ""
    for word in about.split(" "):
        if current and len(current) + 1 + len(word) > _FOLD_WIDTH:
            lines.append(f"  {current}")
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(f"  {current}")


def _settings(settings: Settings, lines: list[str]) -> None:
    values = [
        (field.name, getattr(settings, field.name))
        for field in dataclasses.fields(settings)
        if getattr(settings, field.name) is not None
    ]
    if values:
        lines.append("settings:")
        lines.extend(f"  {name}: {_duration(value)}" for name, value in values)


def _phones(scenario: Scenario, lines: list[str]) -> None:
    if not scenario.phones:
        lines.append("phones: {}")
        return
    lines.append("phones:")
    for name, spec in scenario.phones.items():
        parts = [
            f"{switch}: off"
            for switch, on in (
                ("power", spec.power),
                ("signal", spec.signal),
                ("online", spec.online),
            )
            if not on
        ]
        if spec.blocks:
            parts.append(
                f"blocks: [{', '.join(_scalar(other, flow=True) for other in spec.blocks)}]"
            )
        if spec.devices != 1:
            parts.append(f"devices: {spec.devices}")
        lines.append(f"  {_key(name)}: {{{', '.join(parts)}}}")


def _step(step: Step, position: int, lines: list[str]) -> None:
    """Append a step's lines: as many as :func:`_step_height` says."""
    _check_step(step, position)
    if step.at is not None:
        lines.append(f"  - at: {_duration(step.at)}")
    else:
        assert step.when is not None  # exactly one of the two, as _check_step made sure
        lines.append(f"  - when: {_scalar(_event_text(step.when))}")
        if step.after:
            lines.append(f"    after: {_duration(step.after)}")
    lines.append(f"    do: {_scalar(_action_text(step.action, position))}")


def _step_height(step: Step) -> int:
    """How many lines :func:`_step` writes for ``step``."""
    return 3 if step.when is not None and step.after else 2


def _check_step(step: Step, position: int) -> None:
    where = f"steps[{position}]"
    if (step.at is None) == (step.when is None):
        raise ValueError(f"{where}: a step has exactly one of 'at' and 'when'")
    if step.at is not None and step.after:
        raise ValueError(f"{where}: 'after' only goes with 'when'; add it to 'at'")


def _logs_block(
    key: str, logs: Mapping[str, tuple[ExpectedEntry, ...]], indent: str, lines: list[str]
) -> None:
    """Write ``key:`` and a mapping of phone -> call log: one line when it fits, else a block."""
    if not logs:
        lines.append(f"{indent}{key}: {{}}")
        return
    if indent:
        # Under expect_profiles, a profile's logs fit on one line more often than not.
        flow = ", ".join(f"{_key(phone)}: {_log_flow(log)}" for phone, log in logs.items())
        line = f"{indent}{key}: {{{flow}}}"
        if len(line) <= _WIDTH:
            lines.append(line)
            return
    lines.append(f"{indent}{key}:")
    inner = f"{indent}  "
    for phone, log in logs.items():
        line = f"{inner}{_key(phone)}: {_log_flow(log)}"
        # Two or more detailed entries read best one per line, as the library writes them.
        detailed = len(log) >= 2 and not all(_label_only(entry) for entry in log)
        if len(log) < 2 or (len(line) <= _WIDTH and not detailed):
            lines.append(line)
        else:
            lines.append(f"{inner}{_key(phone)}:")
            lines.extend(f"{inner}  - {_entry_flow(entry)}" for entry in log)


# Expected entries


def _log_flow(log: tuple[ExpectedEntry, ...]) -> str:
    """A whole call log in flow style: a bare label for one label-only entry, else a list."""
    if len(log) == 1 and _label_only(log[0]):
        return _scalar(log[0].label or "", flow=True)
    return f"[{', '.join(_entry_flow(entry) for entry in log)}]"


def _entry_flow(entry: ExpectedEntry) -> str:
    if _label_only(entry):
        return _scalar(entry.label or "", flow=True)
    parts: list[str] = []
    if entry.label is not None:
        parts.append(f"label: {_scalar(entry.label, flow=True)}")
    if entry.with_ is not None:
        parts.append(f"with: {_scalar(entry.with_, flow=True)}")
    if entry.kind is not None:
        parts.append(f"kind: {_scalar(entry.kind, flow=True)}")
    if entry.reached is not None:
        parts.append(f"reached: {'true' if entry.reached else 'false'}")
    if entry.duration is not None:
        parts.append(f"duration: {_duration(entry.duration)}")
    if entry.direction is not None:
        parts.append(f"direction: {_scalar(entry.direction, flow=True)}")
    return f"{{{', '.join(parts)}}}"


def _label_only(entry: ExpectedEntry) -> bool:
    return entry.label is not None and entry == ExpectedEntry(label=entry.label)


# Steps' texts


def _action_text(action: Action, position: int) -> str:
    verb = action.verb
    if verb.is_server:
        return f"server {verb.value}"
    if action.actor is None:
        raise ValueError(f"steps[{position}].do: '{verb.value}' needs the phone that acts")
    if not verb.needs_target:
        return f"{action.actor} {verb.value}"
    if action.target is None:
        raise ValueError(f"steps[{position}].do: '{verb.value}' needs a phone after it")
    return f"{action.actor} {verb.value} {action.target}"


def _event_text(event: Event) -> str:
    if event.kind is EventKind.CALL_ENDS:
        return f"{event.phone}'s {event.kind.value}"
    return f"{event.phone} {event.kind.value}"


# Scalars


def _duration(seconds: float) -> str:
    """The text :func:`~scenarios.durations.format_duration` gives, sooner for whole ms.

    ``format_duration`` works in 400-digit decimals to be exact for any float; the
    times of generated scenarios are whole milliseconds, for which integers give the
    same text (``repr`` of such a float is its millisecond decimal) in a tenth of the time.
    """
    if type(seconds) is float and 0.0 <= seconds < _FAST_DURATION_LIMIT:
        millis = round(seconds * 1000)
        if millis / 1000 == seconds:
            return _millisecond_text(millis)
    return format_duration(seconds)


def _millisecond_text(millis: int) -> str:
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    text = f"{hours}h" if hours else ""
    if minutes:
        text += f"{minutes}m"
    if fraction:
        text += f"{whole}.{fraction:03d}".rstrip("0") + "s"
    elif whole:
        text += f"{whole}s"
    return text


def _key(text: str) -> str:
    """A mapping key: the loader takes keys as written, so a plain word stays plain."""
    return text if _PLAIN_KEY.fullmatch(text) else _quoted(text)


@functools.lru_cache(maxsize=4096)
def _scalar(text: str, flow: bool = False) -> str:
    """A text value, plain when YAML reads it back as the same text, else double-quoted.

    Args:
        text: The value.
        flow: Whether the value sits inside a flow collection (``{...}``, ``[...]``),
            where ``,``, brackets and braces end a plain scalar.
    """
    return text if _plain_ok(text, flow) else _quoted(text)


def _plain_ok(text: str, flow: bool) -> bool:
    if not text or text[0] in _INDICATORS or text[0] == " " or text[-1] == " ":
        return False
    if not _PLAIN_CHARACTERS.fullmatch(text):
        return False
    if ": " in text or " #" in text or text.endswith(":"):
        return False
    if flow and _FLOW_INDICATORS.search(text):
        return False
    # YAML 1.1 reads "on", "no", "null", "12" or "1.5" as something else than text.
    return _resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG


def _quoted(text: str) -> str:
    return f'"{_NEEDS_ESCAPE.sub(_escape, text)}"'


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    named = _ESCAPES.get(character)
    if named is not None:
        return named
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
