"""Random scenarios from a seed, for exploration.

:func:`generate` turns a seed into a scenario: a few phones in random starting states,
and a timeline of random presses at random times. It does not simulate anything, so a
timeline may answer a phone that is not ringing or switch on a phone that is on: the
engines play generated scenarios leniently, treating such a press as one that does
nothing, and judge the run by the invariants alone (a generated scenario has no
``expect``).

What is drawn, and how:

- **Phones**: 2 to 6, named from :data:`PHONE_NAMES` in order. Each starts switched on
  with probability 0.85, with signal 0.85, online 0.9, and blocks each other phone with
  probability 0.1.
- **Steps**: 1 to 14. Each step's verb is drawn with :data:`VERB_WEIGHTS` (calls and
  answers are common, server faults rare). About 20% of steps are ``when`` steps, made
  from a verb that has a natural trigger: ``<callee> rings`` -> ``answers``/``declines``,
  ``<caller> hears ringing`` or ``<phone> is in call`` -> ``hangs up``, and
  ``<phone>'s call ends`` -> ``calls`` (a call back); each waits ``after`` 0 to 20 s.
  The phones of those steps (80% of the time), and of the ``at`` steps that answer,
  decline or hang up (50%), are drawn among the parties of the calls placed so far, so
  that the presses often find something to act on; other phones are drawn uniformly,
  and a call or block always targets a phone other than its actor.
- **Times**: ``at`` times strictly increase, by random steps of whole milliseconds
  between 0.001 s and 70 s, so two steps coincide only when a scenario means them to.
- **Settings**: the profile's defaults 80% of the time; otherwise some of the timers
  are shortened (dial 5-30 s, ring 5-45 s, reconnect grace 2-15 s, heartbeat interval
  and timeout 1-5 s, whole seconds).
- **Profile**: ``whatsapp`` half the time, else one of the other shipped profiles. It
  is drawn last, so ``generate(seed, profile=p)`` has the same phones and timeline as
  ``generate(seed)``.

The only source of randomness is ``random.Random(seed)``: the same seed gives the same
scenario on every machine and Python version that keeps :class:`random.Random`'s
sequence (and the same set of shipped profiles).
"""

from __future__ import annotations

import functools
import itertools
import random

from .model import (
    DEFAULT_PROFILE,
    Action,
    Event,
    EventKind,
    PhoneSpec,
    Scenario,
    Settings,
    Step,
    Verb,
)
from .profiles import profile_names
from .writer import as_written


__all__ = ["PHONE_NAMES", "VERB_WEIGHTS", "WHEN_SHARE", "generate"]


PHONE_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")
"""The names of generated phones; a scenario with ``n`` phones uses the first ``n``."""

VERB_WEIGHTS: tuple[tuple[Verb, int], ...] = (
    (Verb.CALLS, 25),
    (Verb.VIDEO_CALLS, 5),
    (Verb.ANSWERS, 15),
    (Verb.DECLINES, 5),
    (Verb.HANGS_UP, 12),
    (Verb.BLOCKS, 2),
    (Verb.UNBLOCKS, 2),
    (Verb.POWERS_OFF, 4),
    (Verb.POWERS_ON, 4),
    (Verb.LOSES_SIGNAL, 5),
    (Verb.REGAINS_SIGNAL, 5),
    (Verb.GOES_OFFLINE, 3),
    (Verb.GOES_ONLINE, 3),
    (Verb.SERVER_RESTARTS, 2),
    (Verb.SERVER_CRASHES, 3),
)
"""Each verb and its relative weight among all steps' verbs (the weights sum to 95)."""

WHEN_SHARE: dict[Verb, float] = {
    Verb.ANSWERS: 0.5,
    Verb.DECLINES: 0.5,
    Verb.HANGS_UP: 0.5,
    Verb.CALLS: 0.12,
}
"""For the verbs that have a trigger, the chance that a step is a ``when`` step.

With :data:`VERB_WEIGHTS` this makes (15 + 5 + 12) * 0.5 + 25 * 0.12 = 19 of 95, that
is 20%, of all steps ``when`` steps.
"""

_VERBS = tuple(verb for verb, _ in VERB_WEIGHTS)
_CUMULATIVE_WEIGHTS = tuple(itertools.accumulate(weight for _, weight in VERB_WEIGHTS))

_POWER_ON = 0.85
_SIGNAL_ON = 0.85
_ONLINE = 0.9
_BLOCK = 0.1
_MAX_STEPS = 14

_AT_ZERO = 0.25
"""Chance that the first ``at`` step is at 0s, as most of the library's scenarios start."""
_GAP_SCALES_MS = (2_000, 15_000, 70_000)
"""A gap between ``at`` steps is uniform in 1 ms up to one of these, drawn evenly, so
short gaps (a press within the ring or grace timer) are as common as long ones."""
_AFTER_ZERO = 0.15
_MAX_AFTER_MS = 20_000
_KNOWN_PARTY = 0.5
"""Chance that a phone which answers, declines or hangs up is a party of an earlier call."""
_KNOWN_PARTY_WHEN = 0.8
"""The same for a ``when`` step's phone, which waits for an event on an earlier call."""

_SHORT_TIMERS = 0.2
_TIMER_SET = 0.5
_TIMER_RANGES = (
    ("dial_timeout", 5, 30),
    ("ring_timeout", 5, 45),
    ("reconnect_grace", 2, 15),
    ("heartbeat_interval", 1, 5),
    ("heartbeat_timeout", 1, 5),
)
_DEFAULT_PROFILE_SHARE = 0.5


def generate(seed: int, *, profile: str | None = None) -> Scenario:
    """Make the scenario of a seed.

    Args:
        seed: Any integer; the same seed always gives the same scenario.
        profile: The scenario's profile; ``None`` to draw one (``whatsapp`` half the
            time). Either way the phones, steps and settings are those of the seed.

    Returns:
        A valid scenario named ``generated <seed>`` with path ``generated-<seed>.yaml``
        and no ``expect``. It is exactly what loading
        ``scenarios.writer.scenario_to_yaml(scenario)`` gives back (step lines and
        texts included).

    Raises:
        ValueError: If ``profile`` is not a shipped profile.
    """
    known = _profiles()
    if profile is not None and profile not in known:
        raise ValueError(f"unknown profile {profile!r}; known profiles: {', '.join(known)}")
    rng = random.Random(seed)
    names = PHONE_NAMES[: rng.randint(2, len(PHONE_NAMES))]
    phones = {name: _phone(rng, name, names) for name in names}
    steps = _steps(rng, names)
    settings = _settings(rng)
    drawn = (
        DEFAULT_PROFILE
        if rng.random() < _DEFAULT_PROFILE_SHARE
        else rng.choice([name for name in known if name != DEFAULT_PROFILE])
    )
    scenario = Scenario(
        path=f"generated-{seed}.yaml",
        name=f"generated {seed}",
        about=f"{len(names)} phones ({', '.join(names)}), {len(steps)} steps",
        profile=drawn if profile is None else profile,
        settings=settings,
        phones=phones,
        steps=steps,
    )
    return as_written(scenario)


@functools.cache
def _profiles() -> tuple[str, ...]:
    # profile_names() lists a resource folder on every call; the set is fixed per install.
    return tuple(profile_names())


def _phone(rng: random.Random, name: str, names: tuple[str, ...]) -> PhoneSpec:
    power = rng.random() < _POWER_ON
    signal = rng.random() < _SIGNAL_ON
    online = rng.random() < _ONLINE
    blocks = tuple(other for other in names if other != name and rng.random() < _BLOCK)
    return PhoneSpec(name=name, power=power, signal=signal, online=online, blocks=blocks)


def _settings(rng: random.Random) -> Settings:
    if rng.random() >= _SHORT_TIMERS:
        return Settings()
    chosen = {key: float(rng.randint(low, high)) for key, low, high in _TIMER_RANGES}
    kept = {key: value for key, value in chosen.items() if rng.random() < _TIMER_SET}
    if not kept:
        key = rng.choice(list(chosen))
        kept = {key: chosen[key]}
    return Settings(**kept)


def _steps(rng: random.Random, names: tuple[str, ...]) -> tuple[Step, ...]:
    count = rng.randint(1, _MAX_STEPS)
    verbs = rng.choices(_VERBS, cum_weights=_CUMULATIVE_WEIGHTS, k=count)
    calls: list[tuple[str, str]] = []  # (caller, callee) of every call placed so far
    steps: list[Step] = []
    at_ms: int | None = None
    for index, verb in enumerate(verbs):
        when: Event | None = None
        after_ms = 0
        if rng.random() < WHEN_SHARE.get(verb, 0.0):
            when, action = _triggered(rng, verb, names, calls)
            after_ms = 0 if rng.random() < _AFTER_ZERO else rng.randint(1, _MAX_AFTER_MS)
            at = None
        else:
            action = _action(rng, verb, names, calls)
            if at_ms is None:
                at_ms = 0 if rng.random() < _AT_ZERO else _gap(rng)
            else:
                at_ms += _gap(rng)
            at = at_ms / 1000
        if action.verb in (Verb.CALLS, Verb.VIDEO_CALLS):
            assert action.actor is not None and action.target is not None
            calls.append((action.actor, action.target))
        steps.append(
            Step(index=index, line=0, at=at, when=when, after=after_ms / 1000, action=action)
        )
    return tuple(steps)


def _gap(rng: random.Random) -> int:
    return rng.randint(1, rng.choice(_GAP_SCALES_MS))


def _action(
    rng: random.Random, verb: Verb, names: tuple[str, ...], calls: list[tuple[str, str]]
) -> Action:
    """An ``at`` step's action: random phones, with answers and hang-ups aimed at calls."""
    if verb.is_server:
        return _make(verb, None, None)
    if verb in (Verb.ANSWERS, Verb.DECLINES) and calls and rng.random() < _KNOWN_PARTY:
        return _make(verb, rng.choice(calls)[1], None)
    if verb is Verb.HANGS_UP and calls and rng.random() < _KNOWN_PARTY:
        return _make(verb, rng.choice(rng.choice(calls)), None)
    actor = rng.choice(names)
    return _make(verb, actor, _other(rng, names, actor) if verb.needs_target else None)


def _triggered(
    rng: random.Random, verb: Verb, names: tuple[str, ...], calls: list[tuple[str, str]]
) -> tuple[Event, Action]:
    """A ``when`` step's event and action, for a verb of :data:`WHEN_SHARE`."""
    if calls and rng.random() < _KNOWN_PARTY_WHEN:
        caller, callee = rng.choice(calls)
    else:
        caller = rng.choice(names)
        callee = _other(rng, names, caller)
    if verb is Verb.CALLS:
        # A call back once a call is over: to the other party, or to anyone.
        phone, other = (caller, callee) if rng.random() < 0.5 else (callee, caller)
        target = other if rng.random() < 0.5 else _other(rng, names, phone)
        return _event(EventKind.CALL_ENDS, phone), _make(verb, phone, target)
    if verb is Verb.HANGS_UP:
        if rng.random() < 0.5:
            return _event(EventKind.HEARS_RINGING, caller), _make(verb, caller, None)
        phone = rng.choice((caller, callee))
        return _event(EventKind.IS_IN_CALL, phone), _make(verb, phone, None)
    return _event(EventKind.RINGS, callee), _make(verb, callee, None)


def _other(rng: random.Random, names: tuple[str, ...], phone: str) -> str:
    """A phone other than ``phone``."""
    other = rng.choice(names[:-1])
    return names[-1] if other == phone else other


def _make(verb: Verb, actor: str | None, target: str | None) -> Action:
    # The text is filled in canonically by as_written, with the step lines.
    return Action(verb=verb, actor=actor, target=target, text="")


def _event(kind: EventKind, phone: str) -> Event:
    return Event(kind=kind, phone=phone, text="")
