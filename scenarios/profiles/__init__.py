"""Label profiles: how one app labels each end of a call, as data.

A profile is a YAML file in this folder: its timers, its label keys (each with the text the
app shows and where that came from) and an ordered list of rules that turn what one end
knows of a call (a :class:`~signaling.calls.CallSummary`) into a label key. The first rule
whose every condition holds wins. Adding a profile means adding a file, not code.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import msgspec
import yaml

from scenarios.durations import parse_duration
from signaling.calls import CallSummary, Cause
from signaling.switchboard import SwitchboardSettings


__all__ = [
    "DEFAULT_PROFILE",
    "Label",
    "LabelRule",
    "Policies",
    "Profile",
    "ProfileError",
    "Timers",
    "load_profile",
    "profile_names",
    "switchboard_settings",
]

DEFAULT_PROFILE = "whatsapp"
"""The profile a scenario runs under unless it names another."""


class ProfileError(ValueError):
    """A profile file is missing or invalid."""


class Label(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One label key of a profile."""

    text: str
    """What the app shows."""
    source: str
    """Where the text and the rule come from, or "inferred"."""


class LabelRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A condition on what one end knows, and the label it gives. Unset keys match anything."""

    label: str
    direction: Literal["outgoing", "incoming"] | None = None
    answered: bool | None = None
    reached: bool | None = None
    causes: frozenset[Cause] | None = None

    def matches(self, summary: CallSummary) -> bool:
        """Whether this rule applies to ``summary``."""
        return (
            (self.direction is None or self.direction == summary.direction)
            and (self.answered is None or self.answered == summary.answered)
            and (self.reached is None or self.reached == summary.reached)
            and (self.causes is None or summary.end_cause in self.causes)
        )


class Policies(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How an app behaves where apps differ: these change what happens, not only words."""

    block_revealed: bool
    """A blocked caller is told at once (Telegram) instead of seeing a switched-off phone."""
    decline_as_busy: bool
    """The caller hears "busy" when the callee declines, so a decline is not revealed."""
    missed_after_reconnect: bool
    """A callee that was unreachable gets its missed call when it comes back."""
    ring_timer: Literal["server", "caller", "callee"]
    """Who ends a ringing call that nobody answers."""


@dataclass(frozen=True, slots=True)
class Timers:
    """A profile's default timers, in seconds; a scenario's ``settings`` override them."""

    dial_timeout: float
    ring_timeout: float
    reconnect_grace: float
    heartbeat_interval: float
    heartbeat_timeout: float


@dataclass(frozen=True, slots=True)
class Profile:
    """A label profile; see the module docstring."""

    name: str
    app: str
    about: str
    timers: Timers
    policies: Policies
    labels: Mapping[str, Label]
    rules: tuple[LabelRule, ...]

    def label(self, summary: CallSummary) -> str | None:
        """The label key for one end's summary of a call; ``None`` while it is in progress.

        Raises:
            ProfileError: No rule matches (the profile is incomplete).
        """
        if summary.end_cause is None:
            return None
        for rule in self.rules:
            if rule.matches(summary):
                return rule.label
        raise ProfileError(
            f"profile {self.name!r} has no label for a {summary.direction} call "
            f"that ended {summary.end_cause} (answered={summary.answered})"
        )


class _ProfileFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    app: str
    about: str
    timers: dict[str, str | float]
    policies: Policies
    labels: dict[str, Label]
    rules: list[LabelRule]


def profile_names() -> list[str]:
    """The names of every profile shipped with the sandbox, sorted."""
    folder = resources.files(__name__)
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


@functools.cache
def load_profile(name: str) -> Profile:
    """Loads and checks a shipped profile.

    Raises:
        ProfileError: No such profile, or its file is invalid.
    """
    if name not in profile_names():
        known = ", ".join(profile_names())
        raise ProfileError(f"unknown profile {name!r}; known profiles: {known}")
    path = resources.files(__name__).joinpath(f"{name}.yaml")
    where = f"profile {name!r} ({path})"
    try:
        raw = msgspec.convert(yaml.safe_load(path.read_text(encoding="utf-8")), _ProfileFile)
        timers = Timers(**{key: parse_duration(value) for key, value in raw.timers.items()})
        zero = [key for key, value in raw.timers.items() if parse_duration(value) <= 0]
        if zero:
            raise ValueError(f"timers must be longer than 0s: {', '.join(zero)}")
    except (msgspec.ValidationError, yaml.YAMLError, TypeError, ValueError) as exc:
        raise ProfileError(f"{where}: {exc}") from exc
    for rule in raw.rules:
        if rule.label not in raw.labels:
            raise ProfileError(f"{where}: rule gives unknown label {rule.label!r}")
    return Profile(
        name=raw.name,
        app=raw.app,
        about=raw.about,
        timers=timers,
        policies=raw.policies,
        labels=raw.labels,
        rules=tuple(raw.rules),
    )


def switchboard_settings(timers: Timers, profile: Profile) -> SwitchboardSettings:
    """The server's settings for a run: the timers in force and the profile's policies."""
    # Here rather than in the runner, so that `voip-sandbox serve` can have it without
    # importing the runner (and with it the phones, aiortc and PyAV).
    policies = profile.policies
    return SwitchboardSettings(
        dial_timeout=timers.dial_timeout,
        ring_timeout=timers.ring_timeout,
        reconnect_grace=timers.reconnect_grace,
        block_revealed=policies.block_revealed,
        decline_as_busy=policies.decline_as_busy,
        missed_after_reconnect=policies.missed_after_reconnect,
        ring_timer=policies.ring_timer,
    )
