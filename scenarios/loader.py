"""Read scenario files into :class:`~scenarios.model.Scenario` objects.

This is the edge where a YAML file becomes trusted data, so it checks
everything, and every :class:`ScenarioError` says which file, which line and
what is wrong there, in the words of the format (``steps[2].do: ...``).

Theory of operation:

1. ``yaml.compose`` parses the text into a node graph. ``yaml.safe_load`` would
   be shorter but forgets where things were written, and it silently keeps the
   last of two duplicate keys, which hides mistakes.
2. :class:`_Document` turns the nodes into plain Python values and records the
   line of every key and value under its *path*, such as ``("steps", 2, "do")``.
   Duplicate keys are rejected here, while both nodes are still at hand.
3. :class:`_Loader` walks the plain values section by section. Each check knows
   the path of what it checks, and the path gives both the line and the field
   name for the message.

Mapping keys are taken as written: YAML 1.1 would read a phone named ``on`` or
``no`` as a boolean, and a key is always a name here. Values are resolved as
YAML 1.1 does, which is why ``power: off`` arrives as ``False``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import pathlib
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TypeAlias, TypeGuard

import yaml

from peers.link import TO_PHONE_TYPES, TO_SERVER_TYPES

from .durations import format_duration, parse_duration
from .model import (
    DEFAULT_PROFILE,
    DIRECTIONS,
    KINDS,
    Action,
    Event,
    EventKind,
    ExpectedEntry,
    Fault,
    FaultDirection,
    PhoneSpec,
    Scenario,
    Settings,
    Step,
    Verb,
)


__all__ = ["KnownLabels", "ScenarioError", "discover", "load_scenario", "load_scenario_text"]


KnownLabels: TypeAlias = Callable[[str], Collection[str] | None]
"""Given a profile's name, its label keys; ``None`` when there is no such profile."""

_Path: TypeAlias = tuple[str | int, ...]

_TOP_KEYS = (
    "name",
    "about",
    "profile",
    "settings",
    "phones",
    "steps",
    "expect",
    "expect_profiles",
)
_PHONE_KEYS = ("power", "signal", "online", "blocks", "devices")
_STEP_KEYS = ("at", "when", "after", "do", "fault")
_ENTRY_KEYS = ("label", "with", "kind", "reached", "duration", "direction")
_MEDIA_SETTING = "media"  # the one true/false setting (Scenario.media); the rest are timers
_SETTINGS_KEYS = (*(field.name for field in dataclasses.fields(Settings)), _MEDIA_SETTING)

# A fault step's keys: exactly one kind, and the modifiers each kind allows.
_FAULT_KINDS = (
    "delay",
    "drop",
    "black_hole",
    "reset",
    "slow_close",
    "media_loss",
    "media_black_hole",
    "clear",
)
_FAULT_MODIFIERS = {
    "direction": ("delay", "drop", "black_hole"),
    "jitter": ("delay",),
    "count": ("drop",),
    "probability": ("drop",),
}
_FAULT_KEYS = ("phone", *_FAULT_KINDS, *_FAULT_MODIFIERS)
_FAULT_DIRECTIONS = ("to_server", "to_phone", "both")
_ANY_MESSAGE = "any"

# Keys that later issues add to the contract. They get their own message so a
# file written for a newer version fails saying so, not with "unknown key".
_TOP_EXTENSIONS: tuple[str, ...] = ()
_PHONE_EXTENSIONS: tuple[str, ...] = ()
_STEP_EXTENSIONS: tuple[str, ...] = ()

_PHONE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_PHONE_NAME_RULE = (
    "use 1 to 32 characters among a-z, 0-9, '_' and '-', starting with a lowercase letter"
)
_SERVER = "server"
_DEVICE = "#"
"""Between a phone's name and a device number: ``bob#2``."""
MAX_DEVICES = 8
"""The most devices one name may have in a scenario."""

_PHONE_VERBS = tuple(verb for verb in Verb if not verb.is_server and verb is not Verb.FAULT)
_SERVER_VERBS = {verb.value: verb for verb in Verb if verb.is_server}
_SIMPLE_EVENTS = {kind.value: kind for kind in EventKind if kind is not EventKind.CALL_ENDS}
# Editors that "smarten" quotes write alice's with U+2019; both mean the same.
_POSSESSIVE = ("'s", "\N{RIGHT SINGLE QUOTATION MARK}s")

# difflib's own default: close enough that the suggestion is usually right.
_SUGGESTION_CUTOFF = 0.6


class ScenarioError(Exception):
    """A scenario file that cannot be used, with where and why."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        # Passing every field to Exception keeps the error picklable, so it can
        # cross from a worker process to the one that reports it.
        super().__init__(path, line, message)
        self.path = path
        """The file, as it was given."""
        self.line = line
        """The 1-based line of the offending key or value; ``None`` for the whole file."""
        self.message = message
        """What is wrong, naming the field (``steps[2].do: ...``)."""

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


def discover(paths: Iterable[str | os.PathLike[str]]) -> list[pathlib.Path]:
    """Find the scenario files among files and folders.

    A file is taken as given, whatever its name. A folder stands for every
    ``*.yaml`` and ``*.yml`` file below it, in sorted order, skipping hidden
    files and folders (editor backups, ``.venv``). A file reached twice is
    listed once, where it first appears.

    Args:
        paths: Files and folders, in the order to run them.

    Returns:
        The scenario files.

    Raises:
        ScenarioError: If a path does not exist.
    """
    found: list[pathlib.Path] = []
    seen: set[pathlib.Path] = set()
    for given in paths:
        path = pathlib.Path(given)
        if path.is_dir():
            candidates = _scenario_files(path)
        elif path.exists():
            candidates = [path]
        else:
            raise ScenarioError(os.fspath(given), None, "no such file or folder")
        for candidate in candidates:
            identity = candidate.resolve()
            if identity not in seen:
                seen.add(identity)
                found.append(candidate)
    return found


def _scenario_files(folder: pathlib.Path) -> list[pathlib.Path]:
    files: list[pathlib.Path] = []
    # os.walk rather than Path.rglob: it does not follow symlinked folders, so
    # a link cycle cannot make discovery loop, and hidden folders can be pruned.
    for root, dirs, names in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        files.extend(
            pathlib.Path(root, name)
            for name in names
            if not name.startswith(".") and name.lower().endswith((".yaml", ".yml"))
        )
    return sorted(files)


def load_scenario(
    path: str | os.PathLike[str], *, known_labels: KnownLabels | None = None
) -> Scenario:
    """Read and validate one scenario file.

    Args:
        path: The file to read, as UTF-8.
        known_labels: Looks up a profile's label keys, so that the profile name
            and the labels in ``expect`` are checked. When ``None``, neither is.

    Returns:
        The scenario, with :attr:`Scenario.path` set to ``path`` as given.

    Raises:
        ScenarioError: If the file cannot be read or is not a valid scenario.
    """
    name = os.fspath(path)
    try:
        data = pathlib.Path(name).read_bytes()
    except FileNotFoundError:
        raise ScenarioError(name, None, "no such file or folder") from None
    except IsADirectoryError:
        raise ScenarioError(name, None, "is a folder, not a scenario file") from None
    except OSError as exc:
        raise ScenarioError(name, None, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioError(name, line, f"the file is not UTF-8 text ({exc.reason})") from exc
    return load_scenario_text(text, name, known_labels=known_labels)


def load_scenario_text(
    text: str, path: str = "<string>", *, known_labels: KnownLabels | None = None
) -> Scenario:
    """Validate a scenario given as YAML text.

    Args:
        text: The YAML document.
        path: What to call the text in errors and in :attr:`Scenario.path`.
        known_labels: As for :func:`load_scenario`.

    Returns:
        The scenario.

    Raises:
        ScenarioError: If the text is not a valid scenario.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(path, text, exc) from exc
    except yaml.reader.ReaderError as exc:
        # The reader rejects characters before any mark exists; its position
        # is an index into the text, which is enough to find the line.
        line = text[: exc.position].count("\n") + 1
        message = f"invalid YAML: character {chr(exc.character)!r} is not allowed"
        raise ScenarioError(path, line, message) from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(path, None, f"invalid YAML: {exc}") from exc
    if node is None:
        raise ScenarioError(path, None, "the file is empty; a scenario needs 'name' and 'phones'")
    document = _Document(path)
    root = document.convert(node, ())
    return _Loader(document, known_labels).scenario(root)


def _syntax_error(path: str, text: str, exc: yaml.MarkedYAMLError) -> ScenarioError:
    mark = exc.problem_mark or exc.context_mark
    if exc.problem == "but found another document":
        message = "invalid YAML: a scenario file holds one document, and '---' starts a second"
    else:
        message = f"invalid YAML: {exc.problem or exc.context or 'cannot parse'}"
        if "'\\t'" in message:
            message += " (YAML indents with spaces, not tabs)"
        # The context says where the broken construct began ("while parsing a
        # flow sequence" at its "["), which is often the real mistake.
        if exc.problem and exc.context and exc.context_mark and exc.context_mark is not mark:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if mark is None:
        return ScenarioError(path, None, message)
    # A construct left open is noticed at the end of the stream, which is the
    # empty line after the last newline; report the last line an editor shows.
    last_line = max(1, len(text.splitlines()))
    return ScenarioError(path, min(mark.line + 1, last_line), message)


class _Document:
    """The plain values of one YAML file, and the line of each key and value."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._value_lines: dict[_Path, int] = {}
        self._key_lines: dict[_Path, int] = {}
        self._collections: set[_Path] = set()
        # Nodes being converted right now, to refuse an alias that contains
        # itself instead of recursing until Python gives up.
        self._active: set[int] = set()
        self._constructor = yaml.constructor.SafeConstructor()

    def line(self, path: _Path) -> int:
        """The line to report for the value at ``path``.

        A list or mapping under a key is reported at its key: the value itself
        starts on the next line, at its first item, which is not what is wrong.
        """
        while path not in self._value_lines:
            path = path[:-1]
        if path in self._collections and path in self._key_lines:
            return self._key_lines[path]
        return self._value_lines[path]

    def key_line(self, path: _Path) -> int:
        """The line of the key that leads to ``path``, or of its value if none."""
        return self._key_lines.get(path) or self.line(path)

    def convert(self, node: yaml.Node, path: _Path) -> object:
        """Turn ``node`` into plain values, recording lines under ``path``."""
        self._value_lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            raise self._error(path, "an alias refers to the value that contains it")
        self._active.add(id(node))
        try:
            self._collections.add(path)
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.Node, path: _Path) -> dict[str, object]:
        mapping: dict[str, object] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ScenarioError(self.path, line, _prefix(path, "a key must be a plain word"))
            if key_node.tag == "tag:yaml.org,2002:merge":
                message = "YAML merge keys ('<<') are not supported; write the keys out"
                raise ScenarioError(self.path, line, _prefix(path, message))
            key: str = key_node.value
            key_path = (*path, key)
            if key in mapping:
                first = self._key_lines[key_path]
                message = f"duplicate key '{key}' (first at line {first}, again at line {line})"
                raise ScenarioError(self.path, line, _prefix(path, message))
            self._key_lines[key_path] = line
            mapping[key] = self.convert(value_node, key_path)
        return mapping

    def _scalar(self, node: yaml.ScalarNode, path: _Path) -> object:
        try:
            return self._constructor.construct_object(node)
        except yaml.MarkedYAMLError as exc:
            raise self._error(path, f"cannot read this value: {exc.problem}") from exc
        except (ValueError, TypeError) as exc:
            # Explicit tags such as "!!int abc" fail in the conversion itself.
            raise self._error(path, f"cannot read this value: {exc}") from exc

    def _error(self, path: _Path, message: str) -> ScenarioError:
        return ScenarioError(self.path, self.line(path), _prefix(path, message))


class _Loader:
    """Checks the plain values of a :class:`_Document` and builds the scenario."""

    def __init__(self, document: _Document, known_labels: KnownLabels | None) -> None:
        self._document = document
        self._known_labels = known_labels
        self._profile = DEFAULT_PROFILE
        # The profile's label keys, once _profile_name has looked them up;
        # None means labels are not checked.
        self._labels: frozenset[str] | None = None
        self._phones: list[str] = []
        self._devices: dict[str, int] = {}
        """How many devices each declared phone has (1 unless the file says more)."""

    def _error(
        self, path: _Path, message: str, *, key: bool = False, field: _Path | None = None
    ) -> ScenarioError:
        """An error at ``path``'s line, its message prefixed by ``field`` (default ``path``)."""
        document = self._document
        line = document.key_line(path) if key else document.line(path)
        return ScenarioError(
            document.path, line, _prefix(path if field is None else field, message)
        )

    # Top level

    def scenario(self, root: object) -> Scenario:
        """Check the whole document and build the scenario from it."""
        if not _is_mapping(root):
            message = f"expected a mapping with keys such as 'name' and 'phones', got {_show(root)}"
            raise self._error((), message)
        self._check_keys(root, (), _TOP_KEYS, _TOP_EXTENSIONS)
        # Sections are checked in the order the format lists them, and phones
        # before steps and expect, whose checks need the declared names.
        name = self._name(root)
        about = self._optional_text(root, "about", "")
        self._profile = self._profile_name(root)
        settings = self._settings(root.get("settings"))
        media = self._media(root)
        phones = self._phones_section(root)
        steps = self._steps(root.get("steps"))
        expect = self._expect(root)
        expect_profiles = self._expect_profiles(root)
        return Scenario(
            path=self._document.path,
            name=name,
            about=about,
            profile=self._profile,
            settings=settings,
            phones=phones,
            steps=steps,
            media=media,
            expect=expect,
            expect_profiles=expect_profiles,
        )

    def _name(self, root: dict[str, object]) -> str:
        if "name" not in root:
            raise self._error((), "missing 'name': every scenario needs a one-line name")
        name = self._text(root["name"], ("name",))
        if not name.strip():
            raise self._error(("name",), "empty; every scenario needs a one-line name")
        return name

    def _optional_text(self, root: dict[str, object], key: str, default: str) -> str:
        value = root.get(key)
        # A key with nothing after it ("about:") means the same as no key.
        return default if value is None else self._text(value, (key,))

    def _profile_name(self, root: dict[str, object]) -> str:
        path: _Path = ("profile",)
        profile = self._optional_text(root, "profile", DEFAULT_PROFILE)
        if not profile.strip():
            raise self._error(path, "empty; leave 'profile' out to use the default, whatsapp")
        if self._known_labels is not None:
            labels = self._known_labels(profile)
            if labels is None:
                raise self._error(path, f"unknown profile '{profile}'")
            self._labels = frozenset(labels)
        return profile

    def _settings(self, raw: object) -> Settings:
        path: _Path = ("settings",)
        if raw is None:
            return Settings()
        if not _is_mapping(raw):
            raise self._error(
                path, f"expected a mapping such as {{ring_timeout: 45s}}, got {_show(raw)}"
            )
        self._check_keys(raw, path, _SETTINGS_KEYS)
        values = {
            key: self._duration(value, (*path, key), positive=True)
            for key, value in raw.items()
            if key != _MEDIA_SETTING
        }
        return Settings(**values)

    def _media(self, root: dict[str, object]) -> bool:
        settings = root.get("settings")
        if not _is_mapping(settings) or _MEDIA_SETTING not in settings:
            return False
        value = settings[_MEDIA_SETTING]
        if not isinstance(value, bool):
            message = f"expected true or false, got {_show(value)}"
            raise self._error(("settings", _MEDIA_SETTING), message)
        return value

    # Phones

    def _phones_section(self, root: dict[str, object]) -> dict[str, PhoneSpec]:
        path: _Path = ("phones",)
        if "phones" not in root:
            raise self._error(
                (), "missing 'phones': declare every phone, e.g. {alice: {}, bob: {}}"
            )
        raw = root["phones"]
        if not _is_mapping(raw) or not raw:
            message = (
                "expected a mapping of phone names such as {alice: {}, bob: {}}, "
                f"got {_show(raw)}"
            )
            raise self._error(path, message)
        # Every name is checked before any phone's keys: 'blocks' may name a
        # phone that is declared further down.
        for name in raw:
            self._check_phone_name(name, (*path, name))
        self._phones = list(raw)
        return {name: self._phone(name, spec, (*path, name)) for name, spec in raw.items()}

    def _check_phone_name(self, name: str, path: _Path) -> None:
        if name == _SERVER:
            message = (
                "'server' is reserved for the server's own steps ('server restarts'); "
                "pick another name"
            )
            raise self._error(path, message, key=True, field=path[:-1])
        if not _PHONE_NAME.fullmatch(name):
            message = f"'{name}' is not a valid phone name: {_PHONE_NAME_RULE}"
            raise self._error(path, message, key=True, field=path[:-1])

    def _phone(self, name: str, spec: object, path: _Path) -> PhoneSpec:
        if spec is None:
            return PhoneSpec(name)
        if not _is_mapping(spec):
            message = (
                f"expected a mapping such as {{power: off}}, or {{}} for the defaults, "
                f"got {_show(spec)}"
            )
            raise self._error(path, message)
        self._check_keys(spec, path, _PHONE_KEYS, _PHONE_EXTENSIONS)
        devices = self._device_count(spec, (*path, "devices"))
        self._devices[name] = devices
        return PhoneSpec(
            name=name,
            power=self._switch(spec, "power", path),
            signal=self._switch(spec, "signal", path),
            online=self._switch(spec, "online", path),
            blocks=self._blocks(name, spec.get("blocks"), (*path, "blocks")),
            devices=devices,
        )

    def _device_count(self, spec: dict[str, object], path: _Path) -> int:
        value = spec.get("devices", 1)
        # bool is an int in Python; "devices: yes" is a mistake, not one device.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(path, f"expected a number of devices such as 2, got {_show(value)}")
        if not 1 <= value <= MAX_DEVICES:
            raise self._error(path, f"expected 1 to {MAX_DEVICES} devices, got {value}")
        return value

    def _switch(self, spec: dict[str, object], key: str, path: _Path) -> bool:
        value = spec.get(key, True)
        # YAML 1.1 reads a bare on/off as a boolean; quoted, it stays a word.
        if isinstance(value, bool):
            return value
        if value in ("on", "off"):
            return value == "on"
        raise self._error((*path, key), f"expected on or off, got {_show(value)}")

    def _blocks(self, name: str, raw: object, path: _Path) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not _is_list(raw):
            raise self._error(
                path, f"expected a list of phone names such as [alice], got {_show(raw)}"
            )
        blocked: list[str] = []
        for index, item in enumerate(raw):
            item_path = (*path, index)
            other = self._check_phone(item, item_path)
            if other == name:
                raise self._error(item_path, "a phone cannot block itself")
            if other in blocked:
                raise self._error(item_path, f"'{other}' is listed twice")
            blocked.append(other)
        return tuple(blocked)

    def _check_end(self, end: object, path: _Path, *, key: bool = False) -> str:
        """Return ``end`` if it names a declared phone's only device, or one of its devices.

        A phone with several devices is named by device (``bob#2``) wherever one device
        acts, is waited for or is judged: its plain name would be ambiguous.
        """
        field = path[:-1] if key else path
        if not isinstance(end, str) or _DEVICE not in end:
            name = self._check_phone(end, path, key=key)
            count = self._devices.get(name, 1)
            if count > 1:
                message = (
                    f"'{name}' has {count} devices: say which one, "
                    f"{' or '.join(_device_ends(name, count))}"
                )
                raise self._error(path, message, key=key, field=field)
            return name
        name, _, _device = end.partition(_DEVICE)
        self._check_phone(name, path, key=key)
        count = self._devices.get(name, 1)
        if count == 1:
            message = f"'{name}' has one device: write '{name}', not '{end}'"
            raise self._error(path, message, key=key, field=field)
        if end not in _device_ends(name, count):
            message = (
                f"'{end}' is not a device of '{name}', which has {count}: "
                f"{', '.join(_device_ends(name, count))}"
            )
            raise self._error(path, message, key=key, field=field)
        return end

    def _check_phone(self, name: object, path: _Path, *, key: bool = False) -> str:
        """Return ``name`` if it is a declared phone; raise otherwise."""
        field = path[:-1] if key else path
        if not isinstance(name, str):
            raise self._error(
                path, f"expected a phone name, got {_show(name)}", key=key, field=field
            )
        party = name.partition(_DEVICE)[0]
        if party != name and party in self._phones:
            message = (
                f"'{name}' is a device; write the phone's name '{party}' here "
                "(a call rings every device of a name, and blocks are the name's)"
            )
            raise self._error(path, message, key=key, field=field)
        if name not in self._phones:
            declared = ", ".join(self._phones)
            message = (
                f"'{name}' is not a declared phone{_did_you_mean(name, self._phones)}; "
                f"declared phones: {declared}"
            )
            raise self._error(path, message, key=key, field=field)
        return name

    # Steps

    def _steps(self, raw: object) -> tuple[Step, ...]:
        path: _Path = ("steps",)
        if raw is None:
            return ()
        if not _is_list(raw):
            raise self._error(
                path,
                "expected a list of steps such as [{at: 0s, do: alice calls bob}], "
                f"got {_show(raw)}",
            )
        steps: list[Step] = []
        previous: Step | None = None
        for index, item in enumerate(raw):
            step = self._step(index, item, (*path, index))
            if step.at is not None:
                # Only 'at' steps are ordered: a 'when' step's time is not known
                # until the run, so it constrains nothing here.
                if previous is not None and previous.at is not None and step.at < previous.at:
                    message = (
                        f"{format_duration(step.at)} is earlier than "
                        f"{format_duration(previous.at)} at steps[{previous.index}] "
                        f"(line {previous.line}); 'at' times must not decrease"
                    )
                    raise self._error((*path, index, "at"), message)
                previous = step
            steps.append(step)
        return tuple(steps)

    def _step(self, index: int, item: object, path: _Path) -> Step:
        if not _is_mapping(item):
            raise self._error(
                path, f"expected a step such as {{at: 0s, do: alice calls bob}}, got {_show(item)}"
            )
        self._check_keys(item, path, _STEP_KEYS, _STEP_EXTENSIONS)
        document = self._document
        if "at" in item and "when" in item:
            # Point at whichever of the two was written second: that is the
            # one most likely added by mistake.
            later = max(("at", "when"), key=lambda key: document.key_line((*path, key)))
            raise self._error(
                (*path, later), "use either 'at' or 'when', not both", key=True, field=path
            )
        if "at" not in item and "when" not in item:
            message = (
                "missing 'at' or 'when': say when the step happens ('at: 5s' or 'when: bob rings')"
            )
            raise self._error(path, message)
        if "after" in item and "when" not in item:
            message = "'after' only goes with 'when'; with 'at', add the delay to the time"
            raise self._error((*path, "after"), message, key=True, field=path)
        if "do" in item and "fault" in item:
            later = max(("do", "fault"), key=lambda key: document.key_line((*path, key)))
            message = "use either 'do' or 'fault', not both: a fault is a step of its own"
            raise self._error((*path, later), message, key=True, field=path)
        if "do" not in item and "fault" not in item:
            raise self._error(path, "missing 'do': say what happens, e.g. 'do: alice calls bob'")
        at = self._duration(item["at"], (*path, "at")) if "at" in item else None
        when = self._event(item["when"], (*path, "when")) if "when" in item else None
        after = self._duration(item["after"], (*path, "after")) if "after" in item else 0.0
        fault = None
        if "fault" in item:
            fault = self._fault(item["fault"], (*path, "fault"))
            text = f"fault on {fault.phone}: {fault.describe()}"
            action = Action(verb=Verb.FAULT, actor=fault.phone, target=None, text=text)
        else:
            action = self._action(item["do"], (*path, "do"))
        return Step(
            index=index,
            line=document.line(path),
            at=at,
            when=when,
            after=after,
            action=action,
            fault=fault,
        )

    def _fault(self, raw: object, path: _Path) -> Fault:
        example = "{phone: alice, delay: 300ms}"
        if not _is_mapping(raw):
            raise self._error(path, f"expected a mapping such as {example}, got {_show(raw)}")
        self._check_keys(raw, path, _FAULT_KEYS)
        if "phone" not in raw:
            raise self._error(path, f"missing 'phone': say whose link it is on, e.g. {example}")
        phone = self._check_phone(raw["phone"], (*path, "phone"))
        kinds = [key for key in raw if key in _FAULT_KINDS]
        if not kinds:
            message = f"say which fault: one of {', '.join(_FAULT_KINDS)}"
            raise self._error(path, message)
        if len(kinds) > 1:
            message = (
                f"one fault per step: '{kinds[0]}' and '{kinds[1]}' are two; write a step for each"
            )
            raise self._error((*path, kinds[1]), message, key=True, field=path)
        kind = kinds[0]
        for modifier, kinds_allowed in _FAULT_MODIFIERS.items():
            if modifier in raw and kind not in kinds_allowed:
                message = f"'{modifier}' goes with {' or '.join(kinds_allowed)}, not with '{kind}'"
                raise self._error((*path, modifier), message, key=True, field=path)
        direction = self._fault_direction(raw, path)
        value = raw[kind]
        value_path = (*path, kind)
        fields: dict[str, object] = {}
        if kind == "delay":
            fields["delay"] = self._duration(value, value_path)
            if "jitter" in raw:
                fields["jitter"] = self._duration(raw["jitter"], (*path, "jitter"))
        elif kind == "drop":
            fields["drop"] = self._drop_types(value, direction, value_path)
            if "count" in raw:
                count = raw["count"]
                if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                    message = f"expected a whole number of 1 or more, got {_show(count)}"
                    raise self._error((*path, "count"), message)
                fields["count"] = count
            if "probability" in raw:
                fields["probability"] = self._fraction(raw["probability"], (*path, "probability"))
        elif kind in ("slow_close",):
            fields[kind] = self._duration(value, value_path)
        elif kind == "media_loss":
            fields[kind] = self._fraction(value, value_path)
        else:  # black_hole, reset, media_black_hole, clear: switches, only ever 'true'
            if value is not True:
                message = f"expected true, got {_show(value)} (to undo a fault, use 'clear: true')"
                raise self._error(value_path, message)
            fields[kind] = True
        return Fault(phone=phone, direction=direction, **fields)  # type: ignore[arg-type]

    def _fault_direction(self, raw: dict[str, object], path: _Path) -> FaultDirection:
        value = raw.get("direction", "both")
        if value == "to_server":
            return "to_server"
        if value == "to_phone":
            return "to_phone"
        if value == "both":
            return "both"
        message = f"expected one of {', '.join(_FAULT_DIRECTIONS)}, got {_show(value)}"
        if isinstance(value, str):
            message += _did_you_mean(value, _FAULT_DIRECTIONS)
        raise self._error((*path, "direction"), message)

    def _drop_types(self, value: object, direction: FaultDirection, path: _Path) -> tuple[str, ...]:
        items = value if _is_list(value) else [value]
        if not items:
            raise self._error(path, "empty; name a message type, e.g. 'drop: answer'")
        known = {
            "to_server": TO_SERVER_TYPES,
            "to_phone": TO_PHONE_TYPES,
            "both": TO_SERVER_TYPES | TO_PHONE_TYPES,
        }[direction]
        types: list[str] = []
        for index, item in enumerate(items):
            item_path = (*path, index) if _is_list(value) else path
            name = self._text(item, item_path)
            if name == _ANY_MESSAGE:
                types.append(name)
                continue
            if name not in known:
                choices = sorted(known)
                if name in TO_SERVER_TYPES | TO_PHONE_TYPES:
                    other = "to_phone" if direction == "to_server" else "to_server"
                    message = f"'{name}' never goes {direction}; it goes {other}"
                else:
                    message = (
                        f"unknown message type '{name}'{_did_you_mean(name, choices)}; "
                        f"expected '{_ANY_MESSAGE}' or one of: {', '.join(choices)}"
                    )
                raise self._error(item_path, message)
            types.append(name)
        return tuple(types)

    def _fraction(self, value: object, path: _Path) -> float:
        """A probability, written ``30%`` or ``0.3``."""
        number: float | None = None
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                number = float(value.strip()[:-1]) / 100
            except ValueError:
                number = None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        if number is None or not 0 <= number <= 1:
            raise self._error(path, f"expected a share such as 30% or 0.3, got {_show(value)}")
        return number

    def _action(self, raw: object, path: _Path) -> Action:
        text = self._text(raw, path)
        words = text.split()
        if not words:
            raise self._error(path, "empty; say what happens, e.g. 'alice calls bob'")
        actor, rest = words[0], words[1:]
        phrase = " ".join(rest)
        if actor == _SERVER:
            server_verb = _SERVER_VERBS.get(phrase)
            if server_verb is None:
                hint = _did_you_mean(phrase, list(_SERVER_VERBS), lambda verb: f"server {verb}")
                message = (
                    f"unknown server action '{' '.join(words)}'{hint}; "
                    "the server only restarts or crashes"
                )
                raise self._error(path, message)
            return Action(verb=server_verb, actor=None, target=None, text=text)

        verb, remainder = _match_verb(rest)
        if verb is None:
            raise self._error(path, _unknown_action(actor, rest))
        if verb.needs_target and len(remainder) != 1:
            object_word = "a phone" if not remainder else "one phone"
            message = f"'{verb}' needs {object_word} after it: '{actor} {verb} <phone>'"
            raise self._error(path, message)
        if not verb.needs_target and remainder:
            raise self._error(path, f"'{verb}' takes nothing after it: '{actor} {verb}'")
        self._check_end(actor, path)
        target = self._check_phone(remainder[0], path) if verb.needs_target else None
        if target is not None and target == actor.partition(_DEVICE)[0]:
            doing = "block" if verb in (Verb.BLOCKS, Verb.UNBLOCKS) else "call"
            raise self._error(path, f"a phone cannot {doing} itself: '{' '.join(words)}'")
        return Action(verb=verb, actor=actor, target=target, text=text)

    def _event(self, raw: object, path: _Path) -> Event:
        text = self._text(raw, path)
        words = text.split()
        if not words:
            raise self._error(path, "empty; name an event, e.g. 'bob rings'")
        if words[1:] == ["call", "ends"] and words[0].endswith(_POSSESSIVE):
            phone, kind = words[0][:-2], EventKind.CALL_ENDS
        else:
            phone, phrase = words[0], " ".join(words[1:])
            found = _SIMPLE_EVENTS.get(phrase)
            if found is None:
                raise self._error(path, _unknown_event(phone, phrase))
            kind = found
        self._check_end(phone, path)
        return Event(kind=kind, phone=phone, text=text)

    # Expect

    def _expect(self, root: dict[str, object]) -> dict[str, tuple[ExpectedEntry, ...]] | None:
        path: _Path = ("expect",)
        if "expect" not in root:
            return None
        raw = root["expect"]
        if raw is None:
            # Unlike an empty 'about' or 'steps', an empty 'expect' is ambiguous:
            # "expect no calls" and "check nothing" would both read this way.
            message = (
                "empty; give each phone's expected call log (alice: canceled), "
                "or leave 'expect' out to check only that the scenario runs"
            )
            raise self._error(path, message)
        return self._phone_logs(raw, path)

    def _phone_logs(self, raw: object, path: _Path) -> dict[str, tuple[ExpectedEntry, ...]]:
        if not _is_mapping(raw):
            raise self._error(path, f"expected a mapping of phone -> call log, got {_show(raw)}")
        expect: dict[str, tuple[ExpectedEntry, ...]] = {}
        for phone, log in raw.items():
            phone_path = (*path, phone)
            self._check_end(phone, phone_path, key=True)
            expect[phone] = self._log(phone, log, phone_path)
        return expect

    def _expect_profiles(
        self, root: dict[str, object]
    ) -> dict[str, dict[str, tuple[ExpectedEntry, ...]]]:
        path: _Path = ("expect_profiles",)
        raw = root.get("expect_profiles")
        if raw is None:
            return {}
        if not _is_mapping(raw):
            message = (
                "expected a mapping of profile -> expectations, "
                f"e.g. {{signal: {{alice: unanswered}}}}, got {_show(raw)}"
            )
            raise self._error(path, message)
        # Each profile's labels are checked against that profile, not the scenario's own.
        own_profile, own_labels = self._profile, self._labels
        result: dict[str, dict[str, tuple[ExpectedEntry, ...]]] = {}
        try:
            for profile, logs in raw.items():
                profile_path = (*path, profile)
                name = self._text(profile, profile_path)
                self._profile = name
                if self._known_labels is not None:
                    labels = self._known_labels(name)
                    if labels is None:
                        raise self._error(profile_path, f"unknown profile '{name}'")
                    self._labels = frozenset(labels)
                result[name] = self._phone_logs(logs, profile_path)
        finally:
            self._profile, self._labels = own_profile, own_labels
        return result

    def _log(self, phone: str, raw: object, path: _Path) -> tuple[ExpectedEntry, ...]:
        if isinstance(raw, str):
            return (ExpectedEntry(label=self._label(raw, path)),)
        if not _is_list(raw):
            message = (
                f"expected a label (canceled), a list of entries, or [] for no entry at all, "
                f"got {_show(raw)}"
            )
            raise self._error(path, message)
        return tuple(self._entry(phone, item, (*path, index)) for index, item in enumerate(raw))

    def _entry(self, phone: str, raw: object, path: _Path) -> ExpectedEntry:
        if isinstance(raw, str):
            return ExpectedEntry(label=self._label(raw, path))
        if not _is_mapping(raw):
            message = (
                "expected a label or a mapping such as {label: outgoing, with: bob}, "
                f"got {_show(raw)}"
            )
            raise self._error(path, message)
        self._check_keys(raw, path, _ENTRY_KEYS)
        label = self._label(raw["label"], (*path, "label")) if "label" in raw else None
        other = None
        if "with" in raw:
            other = self._check_phone(raw["with"], (*path, "with"))
            if other == phone.partition(_DEVICE)[0]:
                raise self._error((*path, "with"), f"'{phone}' cannot be in a call with itself")
        reached: bool | None = None
        if "reached" in raw:
            value = raw["reached"]
            if not isinstance(value, bool):
                raise self._error((*path, "reached"), f"expected true or false, got {_show(value)}")
            reached = value
        duration = (
            self._duration(raw["duration"], (*path, "duration")) if "duration" in raw else None
        )
        return ExpectedEntry(
            label=label,
            with_=other,
            kind=self._choice(raw, "kind", KINDS, path),
            reached=reached,
            duration=duration,
            direction=self._choice(raw, "direction", DIRECTIONS, path),
        )

    def _label(self, raw: object, path: _Path) -> str:
        label = self._text(raw, path)
        if not label.strip():
            raise self._error(path, "empty label")
        if self._labels is not None and label not in self._labels:
            known = sorted(self._labels)
            message = (
                f"unknown label '{label}' for profile '{self._profile}'"
                f"{_did_you_mean(label, known)}; known labels: {', '.join(known)}"
            )
            raise self._error(path, message)
        return label

    def _choice(
        self, raw: dict[str, object], key: str, choices: Sequence[str], path: _Path
    ) -> str | None:
        if key not in raw:
            return None
        value = raw[key]
        if value not in choices:
            expected = " or ".join(choices)
            raise self._error((*path, key), f"expected {expected}, got {_show(value)}")
        assert isinstance(value, str)  # membership in choices proved it
        return value

    # Shared checks

    def _check_keys(
        self,
        mapping: dict[str, object],
        path: _Path,
        allowed: Sequence[str],
        extensions: Sequence[str] = (),
    ) -> None:
        for key in mapping:
            key_path = (*path, key)
            if key in extensions:
                message = f"'{key}' is a contract extension this version does not support yet"
                raise self._error(key_path, message, key=True, field=path)
            if key not in allowed:
                noun = "key" if path else "top-level key"
                message = (
                    f"unknown {noun} '{key}'{_did_you_mean(key, allowed)}; "
                    f"expected one of: {', '.join(allowed)}"
                )
                raise self._error(key_path, message, key=True, field=path)

    def _text(self, value: object, path: _Path) -> str:
        if isinstance(value, str):
            return value
        message = f"expected text, got {_show(value)}"
        if isinstance(value, bool):
            message += (
                " (YAML reads yes/no/on/off/true/false as booleans; quote the word to keep it)"
            )
        raise self._error(path, message)

    def _duration(self, value: object, path: _Path, *, positive: bool = False) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self._error(path, str(exc)) from None
        if positive and seconds == 0:
            # A zero timer fires at once (a zero heartbeat interval never stops
            # firing), which no profile means; it is a mistake in the file.
            raise self._error(path, "must be longer than 0s")
        return seconds


def _device_ends(name: str, count: int) -> list[str]:
    return [f"{name}{_DEVICE}{device}" for device in range(1, count + 1)]


def _match_verb(words: Sequence[str]) -> tuple[Verb | None, Sequence[str]]:
    """Find the phone verb that ``words`` start with; return it and the words after it."""
    for verb in _PHONE_VERBS:
        verb_words = verb.value.split()
        if list(words[: len(verb_words)]) == verb_words:
            return verb, words[len(verb_words) :]
    return None, words


def _unknown_action(actor: str, rest: Sequence[str]) -> str:
    written = " ".join([actor, *rest])
    phrase = " ".join(rest)
    if phrase in _SERVER_VERBS:
        return f"only the server {phrase}: write 'server {phrase}'"
    closest = _closest_phrase(rest, [verb.value for verb in _PHONE_VERBS])
    if closest is not None:
        verb, used = closest
        suggestion = " ".join([actor, verb, *rest[used:]])
        return f"unknown action '{written}' (did you mean '{suggestion}'?)"
    verbs = ", ".join(
        f"{verb} <phone>" if verb.needs_target else verb.value for verb in _PHONE_VERBS
    )
    return (
        f"unknown action '{written}'; expected '<phone> <verb>' with one of: {verbs}; "
        f"or 'server restarts', 'server crashes'"
    )


def _unknown_event(phone: str, phrase: str) -> str:
    written = f"{phone} {phrase}".strip()
    possessive = f"{phone}'s call ends"
    if phrase == "call ends":
        return f"unknown event '{written}' (did you mean '{possessive}'?)"
    choices = [*_SIMPLE_EVENTS, EventKind.CALL_ENDS.value]
    closest = _closest_phrase(phrase.split(), choices)
    if closest is not None:
        kind, _ = closest
        suggestion = possessive if kind == EventKind.CALL_ENDS else f"{phone} {kind}"
        return f"unknown event '{written}' (did you mean '{suggestion}'?)"
    return (
        f"unknown event '{written}'; expected one of: '<phone> rings', '<phone> hears ringing', "
        f"'<phone> is in call', \"<phone>'s call ends\""
    )


def _closest_phrase(words: Sequence[str], choices: Sequence[str]) -> tuple[str, int] | None:
    """The choice closest to the first one, two or three ``words``, and how many it used.

    Verbs are one or two words and may be followed by a phone's name, so the
    length of the misspelt part is not known; the best-scoring length wins.
    """
    best: tuple[float, str, int] | None = None
    for used in range(1, min(len(words), 3) + 1):
        phrase = " ".join(words[:used])
        for choice in choices:
            ratio = difflib.SequenceMatcher(None, phrase, choice).ratio()
            if ratio >= _SUGGESTION_CUTOFF and (best is None or ratio > best[0]):
                best = (ratio, choice, used)
    return None if best is None else (best[1], best[2])


def _did_you_mean(
    word: str, choices: Sequence[str], spell: Callable[[str], str] = lambda choice: choice
) -> str:
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=_SUGGESTION_CUTOFF)
    return f" (did you mean '{spell(matches[0])}'?)" if matches else ""


def _prefix(path: _Path, message: str) -> str:
    field = ""
    for part in path:
        if isinstance(part, int):
            field += f"[{part}]"
        else:
            field = f"{field}.{part}" if field else part
    return f"{field}: {message}" if field else message


def _show(value: object) -> str:
    """Describe a value for a message: the value itself when short, else its kind."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a long text"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _is_mapping(value: object) -> TypeGuard[dict[str, object]]:
    return isinstance(value, dict)


def _is_list(value: object) -> TypeGuard[list[object]]:
    return isinstance(value, list)
