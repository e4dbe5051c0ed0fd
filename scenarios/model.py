"""The scenario model: what a scenario file says, as frozen dataclasses.

A :class:`Scenario` is the validated form of one YAML file (see the "Scenario
format" section of ``DESIGN.md``). Nothing here reads files or YAML and nothing
here validates: :mod:`scenarios.loader` builds these objects only from input it
has checked, and reports what is wrong with the file and where. Code that builds
a scenario by hand (tests, the simulator) is trusted to respect the same rules.

Don't subclass these: dataclass equality requires the exact class, so a
subclassed step would never equal the loader's.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Literal

from .durations import format_duration


__all__ = [
    "DEFAULT_PROFILE",
    "DIRECTIONS",
    "KINDS",
    "Action",
    "Event",
    "EventKind",
    "ExpectedEntry",
    "Fault",
    "FaultDirection",
    "PhoneSpec",
    "Scenario",
    "Settings",
    "Step",
    "Verb",
]


DEFAULT_PROFILE = "whatsapp"
"""The label profile of a scenario that names none."""

KINDS = ("audio", "video")
"""The values of an expected entry's ``kind``."""

DIRECTIONS = ("outgoing", "incoming")
"""The values of an expected entry's ``direction``."""


class Verb(enum.StrEnum):
    """What a step does: the canonical words after the actor in ``do:``.

    ``do: alice hangs up`` is ``HANGS_UP`` with actor ``alice``. The server's
    verbs take the word ``server`` as their actor, which is why ``server`` can't
    be a phone's name.
    """

    CALLS = "calls"
    VIDEO_CALLS = "video-calls"
    ANSWERS = "answers"
    DECLINES = "declines"
    HANGS_UP = "hangs up"
    BLOCKS = "blocks"
    UNBLOCKS = "unblocks"
    POWERS_OFF = "powers off"
    POWERS_ON = "powers on"
    LOSES_SIGNAL = "loses signal"
    REGAINS_SIGNAL = "regains signal"
    GOES_OFFLINE = "goes offline"
    GOES_ONLINE = "goes online"
    SERVER_RESTARTS = "restarts"
    SERVER_CRASHES = "crashes"
    FAULT = "fault"
    """A ``fault:`` step (not written with ``do:``); the step's :attr:`Step.fault` says
    which fault, on which phone's link."""

    @property
    def needs_target(self) -> bool:
        """Whether a second phone follows the verb (``alice calls bob``)."""
        return self in _TARGET_VERBS

    @property
    def is_server(self) -> bool:
        """Whether the actor is the signaling server rather than a phone."""
        return self in _SERVER_VERBS


# Outside the class body: inside it, these would become members of the enum.
_TARGET_VERBS = frozenset({Verb.CALLS, Verb.VIDEO_CALLS, Verb.BLOCKS, Verb.UNBLOCKS})
_SERVER_VERBS = frozenset({Verb.SERVER_RESTARTS, Verb.SERVER_CRASHES})


class EventKind(enum.StrEnum):
    """What a ``when:`` step waits for: the canonical words after the phone.

    ``CALL_ENDS`` is written possessively, ``alice's call ends``; the others
    follow the phone's name, as in ``bob rings``.
    """

    RINGS = "rings"
    HEARS_RINGING = "hears ringing"
    """The caller's screen turns from Calling… to Ringing…."""
    IS_IN_CALL = "is in call"
    CALL_ENDS = "call ends"


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """The ``do:`` of a step."""

    verb: Verb
    """What happens."""
    actor: str | None
    """The end that acts (a phone's name, or ``bob#2`` for one of its devices); ``None``
    when the server does (``server restarts``)."""
    target: str | None
    """The other phone's name, for verbs whose :attr:`Verb.needs_target` is true."""
    text: str
    """The action exactly as the file wrote it, for reports and errors."""

    @property
    def kind(self) -> Literal["audio", "video"]:
        """The kind of call this places: ``"video"`` for ``video-calls``, else ``"audio"``."""
        return "video" if self.verb is Verb.VIDEO_CALLS else "audio"


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """The ``when:`` of a step: something observable on one phone."""

    kind: EventKind
    """What happens."""
    phone: str
    """The end it happens on: a phone's name, or ``bob#2`` for one of its devices."""
    text: str
    """The event exactly as the file wrote it."""


FaultDirection = Literal["to_server", "to_phone", "both"]
"""Which way a link fault acts: what the phone sends, what it receives, or both."""


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """The ``fault:`` of a step: one change to one phone's link (DESIGN.md, extensions).

    Exactly one kind is set: :attr:`delay` (with :attr:`jitter`), :attr:`drop` (with
    :attr:`count` and :attr:`probability`), :attr:`black_hole`, :attr:`reset`,
    :attr:`slow_close`, :attr:`media_loss`, :attr:`media_black_hole` or :attr:`clear`.
    Faults add up until ``clear``; setting a kind again replaces it.
    """

    phone: str
    """The phone whose link (and media path) the fault is on."""
    direction: FaultDirection = "both"
    """For delay, drop and black hole: which way it acts."""
    delay: float | None = None
    """Seconds each frame is held back."""
    jitter: float = 0.0
    """Seconds of random variation around :attr:`delay`, drawn from the run's seed."""
    drop: tuple[str, ...] = ()
    """Message types whose frames are dropped; ``("any",)`` for every message."""
    count: int | None = None
    """How many matching frames are dropped; ``None``: every one."""
    probability: float | None = None
    """The chance (0 to 1) each matching frame is dropped, drawn from the run's seed."""
    black_hole: bool = False
    """Nothing passes (in :attr:`direction`) until cleared; connections stay open."""
    reset: bool = False
    """Every connection of the phone is reset now (the phone stays on and reconnects)."""
    slow_close: float | None = None
    """Seconds a connection's close takes to reach the other side."""
    media_loss: float | None = None
    """The chance (0 to 1) each media datagram is lost, both ways."""
    media_black_hole: bool = False
    """No media datagram passes, either way."""
    clear: bool = False
    """Removes every fault of the phone (signaling and media)."""

    def describe(self) -> str:
        """The fault in a few words, for reports: ``drop answer to_phone (1)``."""
        way = "" if self.direction == "both" else f" {self.direction}"
        if self.delay is not None:
            jitter = f" ±{format_duration(self.jitter)}" if self.jitter else ""
            return f"delay {format_duration(self.delay)}{jitter}{way}"
        if self.drop:
            limits = []
            if self.count is not None:
                limits.append(str(self.count))
            if self.probability is not None:
                limits.append(f"{self.probability:.0%}")
            detail = f" ({', '.join(limits)})" if limits else ""
            return f"drop {', '.join(self.drop)}{way}{detail}"
        if self.black_hole:
            return f"black hole{way}"
        if self.reset:
            return "reset"
        if self.slow_close is not None:
            return f"slow close {format_duration(self.slow_close)}"
        if self.media_loss is not None:
            return f"media loss {self.media_loss:.0%}"
        if self.media_black_hole:
            return "media black hole"
        return "clear"


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One entry of ``steps``: an action at a time, or after an event.

    Exactly one of :attr:`at` and :attr:`when` is set.
    """

    index: int
    """Position in ``steps``, from 0; errors and reports say ``steps[index]``."""
    line: int
    """The 1-based line in the file where the step starts."""
    at: float | None
    """Absolute virtual time in seconds, or ``None`` for a ``when`` step."""
    when: Event | None
    """The event that triggers the step, or ``None`` for an ``at`` step."""
    after: float
    """Delay in seconds between :attr:`when` and the action; 0.0 when not given."""
    action: Action
    """What the step does (``Verb.FAULT`` for a ``fault:`` step)."""
    fault: Fault | None = None
    """The fault of a ``fault:`` step; ``None`` for a ``do:`` step."""


@dataclasses.dataclass(frozen=True, slots=True)
class PhoneSpec:
    """A phone and its state when the scenario starts."""

    name: str
    """The phone's name, as used in steps and ``expect``."""
    power: bool = True
    """Whether the phone is switched on."""
    signal: bool = True
    """Whether the phone has signal (its link passes traffic)."""
    online: bool = True
    """Whether the phone is online (not in airplane mode)."""
    blocks: tuple[str, ...] = ()
    """Phones this phone has blocked, in file order."""
    devices: int = 1
    """How many devices share this name; each is its own end (``bob#1``, ``bob#2``)."""

    @property
    def ends(self) -> tuple[str, ...]:
        """The ends this phone puts in a run: its name alone, or ``name#1`` … ``name#N``."""
        if self.devices == 1:
            return (self.name,)
        return tuple(f"{self.name}#{device}" for device in range(1, self.devices + 1))


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Timer overrides; each ``None`` means "use the profile's default"."""

    ring_timeout: float | None = None
    """Seconds of ringing without an answer before the call ends as no_answer / missed."""
    dial_timeout: float | None = None
    """Seconds before a call whose callee was never reached is given up."""
    reconnect_grace: float | None = None
    """Seconds a call waits for a phone whose link died before it is dropped."""
    heartbeat_interval: float | None = None
    """Seconds between heartbeats on a phone's link."""
    heartbeat_timeout: float | None = None
    """Seconds without a heartbeat after which a link counts as dead."""
    media_timeout: float | None = None
    """Media calls: seconds after the answer within which media must connect, or the
    call ends ``failed``."""


@dataclasses.dataclass(frozen=True, slots=True)
class ExpectedEntry:
    """One expected entry of a phone's call log; a ``None`` field is not checked."""

    label: str | None = None
    """The label key in the scenario's profile, such as ``canceled``."""
    with_: str | None = None
    """The other phone of the call (``with`` in the file)."""
    kind: str | None = None
    """``audio`` or ``video``."""
    reached: bool | None = None
    """Whether the callee's device was reached (the caller saw Ringing…)."""
    duration: float | None = None
    """Seconds from the answer to the end of the call, matched to the nearest second."""
    direction: str | None = None
    """``outgoing`` or ``incoming``."""

    def describe(self) -> str:
        """Say what is expected in a compact form, from the fields that are set.

        Returns:
            Text such as ``canceled with bob (reached, 10s)``, or ``any entry``
            when nothing is checked.
        """
        text = self.label if self.label is not None else "any entry"
        if self.with_ is not None:
            text += f" with {self.with_}"
        details = [detail for detail in (self.kind, self.direction) if detail is not None]
        if self.reached is not None:
            details.append("reached" if self.reached else "not reached")
        if self.duration is not None:
            details.append(format_duration(self.duration))
        if details:
            text += f" ({', '.join(details)})"
        return text


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """A whole scenario file.

    The mappings are plain dicts typed read-only: a ``MappingProxyType`` would
    stop pickling, which running scenarios in worker processes relies on.
    """

    path: str
    """Where the scenario came from (``"<string>"`` when loaded from text)."""
    name: str
    """The scenario's one-line title."""
    about: str = ""
    """A longer description; empty when not given."""
    profile: str = DEFAULT_PROFILE
    """The label profile the scenario is run and judged under."""
    settings: Settings = dataclasses.field(default_factory=Settings)
    """Timer overrides on top of the profile's defaults."""
    phones: Mapping[str, PhoneSpec] = dataclasses.field(default_factory=dict)
    """Every phone by name, in the order the file declares them."""
    steps: tuple[Step, ...] = ()
    """The steps in file order."""
    media: bool = False
    """``settings: {media: true}``: answered calls carry real aiortc media, and the run
    goes in real time. (Kept here, not in :class:`Settings`, whose fields are all timers.)"""
    expect: Mapping[str, tuple[ExpectedEntry, ...]] | None = None
    """Each listed phone's whole expected call log, oldest first; ``()`` means
    no entry at all. ``None`` when the file has no ``expect``: the scenario then
    passes when it runs to its end with every invariant holding. Phones left out
    of the mapping are not checked."""
    expect_profiles: Mapping[str, Mapping[str, tuple[ExpectedEntry, ...]]] = dataclasses.field(
        default_factory=dict
    )
    """Expectations under other profiles: the scenario runs again under each of them and
    is judged with that profile's labels."""

    @property
    def extensions(self) -> tuple[str, ...]:
        """The contract extensions this scenario uses (``fault``, ``media``), in that order.

        An engine that does not model one (the in-memory simulator models neither) must
        refuse a scenario that uses it.
        """
        used = []
        if any(step.fault is not None for step in self.steps):
            used.append("fault")
        if self.media:
            used.append("media")
        return tuple(used)

    @property
    def ends(self) -> list[str]:
        """Every end of the run, in declaration order: each phone, or each of its devices.

        Call logs, ``expect`` and the JSON report are keyed by these.
        """
        return [end for spec in self.phones.values() for end in spec.ends]

    @property
    def has_devices(self) -> bool:
        """Whether some phone has several devices (an engine must model them)."""
        return any(spec.devices > 1 for spec in self.phones.values())

    def expectations_for(self, profile: str) -> Mapping[str, tuple[ExpectedEntry, ...]] | None:
        """What a run under ``profile`` is judged against; ``None``: invariants only.

        ``expect`` is written in the scenario's own profile's labels, so it applies to a
        run under that profile; ``expect_profiles`` gives the others (and wins if it also
        names the scenario's own profile).
        """
        if profile in self.expect_profiles:
            return self.expect_profiles[profile]
        return self.expect if profile == self.profile else None
