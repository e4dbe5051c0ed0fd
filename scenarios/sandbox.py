"""A sandbox to script calls from Python: a real server and phones in the running loop.

This is the programmatic counterpart of a YAML scenario, for tests that need more than the
scenario verbs (loops, conditions, your own assertions). Everything is built in the event
loop that enters the :class:`Sandbox`, on 127.0.0.1, exactly as :mod:`scenarios.runner`
builds a scenario's world: the real :class:`~signaling.server.SignalingServer` on a free
port, and one :class:`~peers.client.PhoneClient` behind a :class:`~peers.link.Link` per
phone::

    async with Sandbox(profile="whatsapp", ring_timeout="10s") as sb:
        alice = await sb.phone("alice")
        bob = await sb.phone("bob")
        await alice.call(bob)
        await alice.wait_for_screen(Screen.RINGING)
        await alice.hang_up()
        await sb.settle()
        alice.assert_log([{"label": "canceled", "with": "bob", "reached": True}])
        bob.assert_log(["missed"])

Time is the running loop's. In a virtual-time loop (``@pytest.mark.voip_sandbox`` from
:mod:`scenarios.pytest_plugin`, or :func:`looptime.new_event_loop`) a 45 s ring timeout
costs milliseconds; that is only sound because every party runs in this one loop
(shared/reference/tools.md §5). The sandbox clock, :meth:`Sandbox.now`, counts seconds
since the sandbox started, and stamps every event as ``t``.

Call logs are labeled with the sandbox's profile from each phone's own transitions, as
the runner labels them (:func:`scenarios.observers.label_entries`), and expectations are
judged by :func:`scenarios.expectations.compare_logs`, so a failed
:meth:`PhoneHandle.assert_log` shows the same expected-against-actual table as a failed
scenario.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import IO, Any, Literal, Self, TypeAlias

from peers.client import PhoneClient
from peers.link import Link
from peers.phone import Phone, PhoneError, Screen
from scenarios.durations import parse_duration
from scenarios.expectations import compare_logs
from scenarios.model import DEFAULT_PROFILE, DIRECTIONS, KINDS, ExpectedEntry, PhoneSpec
from scenarios.observers import EventStream, LogEntry, Observation, event_logger, observe
from scenarios.profiles import Profile, Timers, load_profile
from scenarios.runner import new_phone_client, switchboard_settings
from signaling.messages import NAME_PATTERN
from signaling.server import DEFAULT_HOST, SignalingServer
from signaling.switchboard import Switchboard


__all__ = [
    "DEFAULT_TIMEOUT",
    "SETTLE_LIMIT",
    "Duration",
    "Event",
    "Expected",
    "PhoneError",
    "PhoneHandle",
    "Sandbox",
    "Screen",
    "expected_entries",
]

Duration: TypeAlias = float | str
"""Seconds, as a number or as a duration text such as ``"45s"``, ``"500ms"``, ``"2m"``."""

Event: TypeAlias = dict[str, Any]
"""One event of the stream: ``event`` (its name), ``t`` (sandbox seconds) and its fields."""

Expected: TypeAlias = str | Sequence[str | Mapping[str, object] | ExpectedEntry]
"""A phone's whole expected call log, oldest first, written as in a scenario's ``expect``.

``"canceled"`` is one entry with that label; a list holds one item per entry, each a label
or a mapping with any of ``label``, ``with``, ``kind``, ``reached``, ``duration`` and
``direction`` (a key left out is not checked); ``[]`` means no entry at all.
"""

DEFAULT_TIMEOUT = 60.0
"""Sandbox seconds a ``wait_for_*`` helper waits by default (cheap in virtual time).

The waits take a ``timeout`` of their own (ruff's ASYNC109 would have the caller wrap them
in ``asyncio.timeout``) so that running out of time can say what never happened.
"""

SETTLE_LIMIT = 600.0
"""Sandbox seconds :meth:`Sandbox.settle` waits by default, as the runner does."""

_POLL = 0.05
"""Sandbox seconds between checks while settling."""

_NAME = re.compile(NAME_PATTERN)
_ENTRY_KEYS = ("label", "with", "kind", "reached", "duration", "direction")


class Sandbox:
    """A signaling server and phones, all in the running loop, all on 127.0.0.1.

    Build it anywhere; it starts when entered (``async with``) or on :meth:`start`, in the
    loop that runs that, and stops with everything it built on exit or :meth:`close`.

    Args:
        profile: The label profile: its timers are the defaults, its labels judge the logs.
        seed: Makes tokens and call ids, as a scenario's seed does.
        dial_timeout: Overrides the profile's timer of that name.
        ring_timeout: Overrides the profile's timer of that name.
        reconnect_grace: Overrides the profile's timer of that name.
        heartbeat_interval: Overrides the profile's timer of that name.
        heartbeat_timeout: Overrides the profile's timer of that name.
        log_file: Where to write the event stream as JSON lines, if anywhere.

    Raises:
        ProfileError: No such profile.
        ValueError: A timer is not a positive duration.
    """

    def __init__(
        self,
        *,
        profile: str = DEFAULT_PROFILE,
        seed: int = 0,
        dial_timeout: Duration | None = None,
        ring_timeout: Duration | None = None,
        reconnect_grace: Duration | None = None,
        heartbeat_interval: Duration | None = None,
        heartbeat_timeout: Duration | None = None,
        log_file: IO[str] | None = None,
    ) -> None:
        self.profile: Profile = load_profile(profile)
        """The label profile."""
        self.seed = seed
        """The seed of tokens and call ids."""
        given = {
            "dial_timeout": dial_timeout,
            "ring_timeout": ring_timeout,
            "reconnect_grace": reconnect_grace,
            "heartbeat_interval": heartbeat_interval,
            "heartbeat_timeout": heartbeat_timeout,
        }
        overrides = {key: _timer(key, value) for key, value in given.items() if value is not None}
        self.timers: Timers = dataclasses.replace(self.profile.timers, **overrides)
        """The timers in force: the profile's, with the overrides given."""
        self.stream = EventStream(self.now)
        """The event stream of everything the server, phones and links log."""
        self._log_file = log_file
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._origin = 0.0
        self._logger: Any = None
        self._switchboard: Switchboard | None = None
        self._server: SignalingServer | None = None
        self._phones: dict[str, PhoneHandle] = {}
        self._errors: list[str] = []
        self._previous_handler: Any = None
        self._closed = False

    # --- Life cycle ------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the sandbox has started (and may since have closed)."""
        return self._loop is not None

    @property
    def closed(self) -> bool:
        """Whether the sandbox has been closed."""
        return self._closed

    async def start(self) -> None:
        """Starts the server on 127.0.0.1, on a free port, in the running loop.

        Raises:
            RuntimeError: The sandbox was started before.
        """
        if self._loop is not None:
            raise RuntimeError("this sandbox was started already; build a new one")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._origin = loop.time()
        self._logger = event_logger(self.stream, self._log_file)
        self._switchboard = Switchboard(switchboard_settings(self.timers, self.profile))
        # An exception in a callback or a task would only be printed, and the test would go
        # on to a plausible but wrong result: it is recorded, and fails the sandbox's exit.
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._on_loop_error)
        self._server = self._new_server(self._switchboard, port=0)
        await self._server.start()

    async def close(self) -> None:
        """Stops every phone, then the server; restores the loop's exception handler.

        Safe to call more than once, and on a sandbox that never started.
        """
        if self._closed or self._loop is None:
            self._closed = True
            return
        self._closed = True
        for handle in self._phones.values():
            client = handle.client
            if not client.link.signal:
                # A goodbye into a black hole would wait out the close timeout for nothing.
                client.link.cut()
            await client.stop()
        if self._server is not None:
            await self._server.close()
        self._loop.set_exception_handler(self._previous_handler)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        errors = list(self._errors)
        await self.close()
        if exc_type is None and errors:
            raise AssertionError("errors inside the sandbox:\n" + "\n".join(errors))

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        detail = f"{type(exc).__name__}: {exc}" if exc is not None else context.get("message")
        self._errors.append(f"at {self.now():.3f}s: {detail}")
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    # --- The world -------------------------------------------------------------------------------

    def now(self) -> float:
        """Sandbox seconds: time on the running loop's clock since the sandbox started."""
        if self._loop is None:
            return 0.0
        return self._loop.time() - self._origin

    @property
    def server(self) -> SignalingServer:
        """The signaling server (a new one after :meth:`restart_server`)."""
        if self._server is None:
            raise RuntimeError(_NOT_STARTED)
        return self._server

    @property
    def switchboard(self) -> Switchboard:
        """The server's logic (a new one after a crash)."""
        if self._switchboard is None:
            raise RuntimeError(_NOT_STARTED)
        return self._switchboard

    @property
    def port(self) -> int:
        """The server's port on 127.0.0.1."""
        return self.server.port

    @property
    def phones(self) -> Mapping[str, PhoneHandle]:
        """Every phone made so far, by name."""
        return MappingProxyType(self._phones)

    @property
    def errors(self) -> list[str]:
        """Exceptions that escaped a callback or task in the loop since the sandbox started."""
        return list(self._errors)

    async def phone(
        self,
        name: str,
        *,
        power: bool = True,
        signal: bool = True,
        online: bool = True,
        blocks: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    ) -> PhoneHandle:
        """Makes a phone, starts it, and returns once it is registered (if it can connect).

        Args:
            name: Its name: 1 to 32 characters among a-z, 0-9, ``_`` and ``-``, starting
                with a lowercase letter.
            power: Whether it starts switched on.
            signal: Whether it starts with signal.
            online: Whether it starts out of airplane mode.
            blocks: The phones it has blocked.
            timeout: Sandbox seconds to wait for its registration.

        Raises:
            ValueError: A bad or taken name.
            TimeoutError: It could connect but did not register in time.
        """
        if self._server is None or self._switchboard is None or self._closed:
            raise RuntimeError(_NOT_STARTED)
        if not _NAME.match(name) or name == "server":
            raise ValueError(
                f"bad phone name {name!r}: use 1 to 32 characters among a-z, 0-9, '_' and '-', "
                "starting with a lowercase letter (and not 'server')"
            )
        if name in self._phones:
            raise ValueError(f"there is a phone named {name!r} already")
        spec = PhoneSpec(name, power=power, signal=signal, online=online, blocks=tuple(blocks))
        client = new_phone_client(
            spec,
            server=self._server,
            timers=self.timers,
            profile=self.profile,
            token=f"{self._rng.getrandbits(128):032x}",
            seed=self.seed,
            clock=self.now,
            logger=self._logger,
        )
        handle = PhoneHandle(self, client)
        self._phones[name] = handle
        client.start()
        if handle.can_connect:
            await handle.wait_registered(timeout=timeout)
        return handle

    async def restart_server(self, *, crash: bool = False) -> None:
        """Restarts the server on the same port, as a scenario's ``server restarts`` does.

        Args:
            crash: Die on the spot instead (``server crashes``): sockets are reset and
                only what the store kept survives (accounts, blocks, missed-call
                notices, the records of calls, which end as dropped).
        """
        self._server = await self.server.restart(crash=crash)
        self._switchboard = self._server.switchboard

    def _new_server(self, switchboard: Switchboard, port: int) -> SignalingServer:
        return SignalingServer(
            switchboard,
            host=DEFAULT_HOST,
            port=port,
            heartbeat_interval=self.timers.heartbeat_interval,
            heartbeat_timeout=self.timers.heartbeat_timeout,
            clock=self.now,
            logger=self._logger,
        )

    # --- Events and waiting ----------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        """Every event so far, oldest first (the list itself: read, don't change it)."""
        return self.stream.events

    def mark(self) -> int:
        """A position in the event stream, for ``since=``."""
        return len(self.stream.events)

    def select(
        self, predicate: Callable[[Event], bool] | None = None, /, *, since: int = 0, **fields: Any
    ) -> list[Event]:
        """The events from position ``since`` on that satisfy ``predicate`` and ``fields``.

        ``fields`` are compared for equality: ``select(event="transition", who="bob")``.
        """
        match = _matcher(predicate, fields)
        return [event for event in self.stream.events[since:] if match(event)]

    async def wait_for_event(
        self,
        predicate: Callable[[Event], bool] | None = None,
        /,
        *,
        since: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        **fields: Any,
    ) -> Event:
        """Waits for an event satisfying ``predicate`` and equal on ``fields``; returns it.

        Args:
            predicate: A test on the whole event (for keys such as ``from``).
            since: Also accept an event already recorded at or after this position (see
                :meth:`mark`); by default only events from now on count.
            timeout: Sandbox seconds to wait.
            fields: Keys the event must have, with these values.

        Raises:
            TimeoutError: Nothing matched in time.
        """
        match = _matcher(predicate, fields)
        if since is not None:
            for event in self.stream.events[since:]:
                if match(event):
                    return event
        future = self.stream.wait_for(match)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            wanted = ", ".join(f"{key}={value!r}" for key, value in fields.items())
            if predicate is not None:
                wanted = f"{wanted}, and the predicate" if wanted else "the predicate"
            raise TimeoutError(
                f"no event matching {wanted or 'anything'} within {timeout}s"
            ) from None
        finally:
            future.cancel()

    def quiet(self) -> bool:
        """Whether nothing is in progress and nothing is owed to a phone that can connect.

        The runner's test for the end of a scenario: no call in progress on the server or on
        any phone, no phone timer pending, every phone that can connect registered, and no
        missed-call notice waiting for one.
        """
        switchboard = self.switchboard
        if switchboard.active_calls:
            return False
        for handle in self._phones.values():
            phone = handle.phone
            if phone.active_call is not None or phone.next_wakeup() is not None:
                return False
            owed = not phone.registered or switchboard.pending_notices(phone.name)
            if handle.can_connect and owed:
                return False
        return True

    async def settle(self, *, timeout: float = SETTLE_LIMIT) -> None:  # noqa: ASYNC109
        """Returns once the sandbox is :meth:`quiet`: every call over, on both ends.

        Call it before judging logs: a hang-up reaches the other phone a moment later.

        Raises:
            TimeoutError: Still busy after ``timeout`` sandbox seconds.
        """
        deadline = self.now() + timeout
        while not self.quiet():
            if self.now() >= deadline:
                busy = [
                    f"{h.name} ({h.screen})"
                    for h in self._phones.values()
                    if h.phone.active_call is not None
                ]
                raise TimeoutError(
                    f"the sandbox did not settle within {timeout:g}s: "
                    f"calls in progress on {', '.join(busy) or 'the server'}"
                )
            await asyncio.sleep(_POLL)

    # --- Call logs -------------------------------------------------------------------------------

    def observe(self) -> Observation:
        """Runs the runner's observers over the events so far: logs, records, invariants."""
        return observe(self.stream.events, list(self._phones), self.profile)

    def logs(self) -> dict[str, list[LogEntry]]:
        """Every phone's call log, labeled with the profile, oldest placed first."""
        return self.observe().logs

    def assert_invariants(self) -> None:
        """Asserts the invariants a scenario run is checked against (settle first).

        Every call ended on every end, both ends agree on the answer, blocks stay private,
        missed-call notices stop once acknowledged.

        Raises:
            AssertionError: One line per invariant that did not hold.
        """
        __tracebackhide__ = True
        violations = self.observe().violations
        if violations:
            raise AssertionError("\n".join(violations))

    def check_logs(self, expected: Mapping[str, Expected]) -> list[str]:
        """Compares phones' whole call logs with ``expected``; one failure text per phone.

        Raises:
            ValueError: An expectation is malformed or names an unknown phone or label.
        """
        wanted = {}
        for name, spec in expected.items():
            if name not in self._phones:
                raise ValueError(f"no phone named {name!r}; phones: {', '.join(self._phones)}")
            wanted[name] = expected_entries(spec, self.profile)
        return compare_logs(wanted, self.logs())

    def assert_logs(self, expected: Mapping[str, Expected]) -> None:
        """Asserts phones' whole call logs, as a scenario's ``expect`` does.

        Raises:
            AssertionError: A log differs; the message has one expected-against-actual
                table per phone that differs.
        """
        __tracebackhide__ = True
        failures = self.check_logs(expected)
        if failures:
            raise AssertionError("\n".join(failures))


class PhoneHandle:
    """One phone of a :class:`Sandbox`: what its person does, what its screen and log show.

    Made by :meth:`Sandbox.phone`. Every action raises :class:`~peers.phone.PhoneError`
    when the phone cannot do it now (calling while off, answering with nothing ringing),
    as a scenario step would fail.
    """

    def __init__(self, sandbox: Sandbox, client: PhoneClient) -> None:
        self.sandbox = sandbox
        """The sandbox the phone lives in."""
        self.client = client
        """The phone's asyncio driver."""

    def __repr__(self) -> str:
        return f"<PhoneHandle {self.name} {self.screen}>"

    @property
    def name(self) -> str:
        """The phone's name."""
        return self.client.name

    @property
    def phone(self) -> Phone:
        """The phone's logic (screen, calls, errors)."""
        return self.client.phone

    @property
    def link(self) -> Link:
        """The phone's radio."""
        return self.client.link

    @property
    def screen(self) -> Screen:
        """What the screen shows now."""
        return self.client.phone.screen

    @property
    def registered(self) -> bool:
        """Whether the server has accepted the phone's current connection."""
        return self.client.phone.registered

    @property
    def can_connect(self) -> bool:
        """Whether the phone tries to connect: on, out of airplane mode, with signal."""
        return self.client.phone.wants_connection and self.client.link.signal

    @property
    def log(self) -> list[LogEntry]:
        """The phone's call log, labeled with the sandbox's profile, oldest placed first.

        Built from the phone's own transitions only, as the runner builds it.
        """
        return self.sandbox.logs()[self.name]

    @property
    def labels(self) -> list[str | None]:
        """The labels of :attr:`log`, oldest first; ``None`` for a call still in progress."""
        return [entry.label for entry in self.log]

    # --- What the person does --------------------------------------------------------------------

    async def call(
        self, callee: str | PhoneHandle, kind: Literal["audio", "video"] = "audio"
    ) -> str:
        """Calls ``callee`` (a name or a handle); returns the call id."""
        return await self.client.call(_name_of(callee), kind)

    async def answer(self) -> str:
        """Picks up the ringing call; returns its id."""
        return await self.client.answer()

    async def decline(self) -> None:
        """Refuses the ringing call."""
        await self.client.decline()

    async def hang_up(self) -> None:
        """Ends the call in progress (before the answer, that cancels it)."""
        await self.client.hang_up()

    async def block(self, other: str | PhoneHandle) -> None:
        """Blocks ``other``."""
        await self.client.block(_name_of(other))

    async def unblock(self, other: str | PhoneHandle) -> None:
        """Unblocks ``other``."""
        await self.client.unblock(_name_of(other))

    async def power_off(self) -> None:
        """Switches the phone off: its link is reset, with no goodbye."""
        await self.client.power_off()

    async def power_on(self) -> None:
        """Switches the phone on; it reconnects as soon as the radio allows."""
        await self.client.power_on()

    async def go_offline(self) -> None:
        """Airplane mode on: the connection is closed cleanly."""
        await self.client.go_offline()

    async def go_online(self) -> None:
        """Airplane mode off: the phone reconnects."""
        await self.client.go_online()

    async def lose_signal(self) -> None:
        """The radio loses signal: nothing flows; only heartbeats find out."""
        if not self.client.link.signal:
            raise PhoneError(f"{self.name} has no signal already")
        self.client.lose_signal()

    async def regain_signal(self) -> None:
        """The radio has signal again; the phone reconnects at once."""
        if self.client.link.signal:
            raise PhoneError(f"{self.name} has signal already")
        self.client.regain_signal()

    # --- Waiting ---------------------------------------------------------------------------------

    async def wait_for_screen(
        self,
        screen: Screen | str,
        *,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    ) -> None:
        """Returns once the screen shows ``screen`` (at once if it does already).

        ``Screen.INCOMING`` is "this phone rings"; ``Screen.RINGING`` is the caller hearing
        Ringing… (the callee's device was reached); ``Screen.IN_CALL`` is answered.

        Raises:
            ValueError: Not a screen.
            TimeoutError: The screen did not show it within ``timeout`` sandbox seconds.
        """
        target = Screen(screen)
        if self.screen is target:
            return
        try:
            await self.sandbox.wait_for_event(
                event="screen", who=self.name, screen=str(target), timeout=timeout
            )
        except TimeoutError:
            raise TimeoutError(
                f"{self.name}'s screen did not show {target} within {timeout:g}s "
                f"(it shows {self.screen})"
            ) from None

    async def wait_registered(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:  # noqa: ASYNC109
        """Returns once the phone is registered with the server.

        Raises:
            TimeoutError: Not registered within ``timeout`` sandbox seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                await self.client.wait_registered()
        except TimeoutError:
            raise TimeoutError(f"{self.name} did not register within {timeout:g}s") from None

    # --- Judging ---------------------------------------------------------------------------------

    def assert_log(self, expected: Expected) -> None:
        """Asserts the phone's whole call log, as a scenario's ``expect`` does.

        ``assert_log(["canceled"])``, ``assert_log("missed")``, ``assert_log([])`` (no entry),
        or entries with details: ``assert_log([{"label": "missed", "with": "alice",
        "reached": True}])``. Call :meth:`Sandbox.settle` first when the other end acted last.

        Raises:
            AssertionError: The log differs; the message is the expected-against-actual table.
            ValueError: The expectation is malformed or names a label the profile lacks.
        """
        __tracebackhide__ = True
        self.sandbox.assert_logs({self.name: expected})


def expected_entries(expected: Expected, profile: Profile) -> tuple[ExpectedEntry, ...]:
    """Turns an :data:`Expected` log into entries, checked as the scenario loader checks them.

    Raises:
        ValueError: Not a log, an unknown key or label, or a bad value.
    """
    if isinstance(expected, str):
        return (_entry(expected, profile, "the log"),)
    if isinstance(expected, Mapping) or not isinstance(expected, Sequence):
        raise ValueError(
            "expected a label ('canceled'), a list of entries, or [] for no entry at all, "
            f"got {type(expected).__name__}"
        )
    return tuple(_entry(item, profile, f"entry {i + 1}") for i, item in enumerate(expected))


def _entry(item: object, profile: Profile, where: str) -> ExpectedEntry:
    if isinstance(item, ExpectedEntry):
        if item.label is not None:
            _check_label(item.label, profile, where)
        return item
    if isinstance(item, str):
        return ExpectedEntry(label=_check_label(item, profile, where))
    if not isinstance(item, Mapping):
        raise ValueError(
            f"{where}: expected a label or a mapping such as "
            f"{{'label': 'outgoing', 'with': 'bob'}}, got {type(item).__name__}"
        )
    unknown = [key for key in item if key not in _ENTRY_KEYS]
    if unknown:
        raise ValueError(
            f"{where}: unknown key {unknown[0]!r}; expected any of: {', '.join(_ENTRY_KEYS)}"
        )
    label = item.get("label")
    if label is not None:
        label = _check_label(label, profile, where)
    other = item.get("with")
    if other is not None and not isinstance(other, str):
        raise ValueError(f"{where}: 'with' must be a phone's name, got {other!r}")
    reached = item.get("reached")
    if reached is not None and not isinstance(reached, bool):
        raise ValueError(f"{where}: 'reached' must be True or False, got {reached!r}")
    duration = item.get("duration")
    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise ValueError(f"{where}: 'duration': {exc}") from None
    return ExpectedEntry(
        label=label,
        with_=other,
        kind=_choice(item, "kind", KINDS, where),
        reached=reached,
        duration=seconds,
        direction=_choice(item, "direction", DIRECTIONS, where),
    )


def _check_label(label: object, profile: Profile, where: str) -> str:
    if not isinstance(label, str) or label not in profile.labels:
        known = ", ".join(sorted(profile.labels))
        raise ValueError(
            f"{where}: unknown label {label!r} for profile {profile.name!r}; known labels: {known}"
        )
    return label


def _choice(item: Mapping[str, object], key: str, choices: Sequence[str], where: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if value not in choices:
        raise ValueError(f"{where}: {key!r} must be {' or '.join(choices)}, got {value!r}")
    assert isinstance(value, str)  # membership in choices proved it
    return value


def _timer(key: str, value: Duration) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{key}: expected a duration, got {value!r}")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None
    if seconds <= 0:
        raise ValueError(f"{key}: must be longer than 0s")
    return seconds


def _name_of(phone: str | PhoneHandle) -> str:
    return phone.name if isinstance(phone, PhoneHandle) else phone


def _matcher(
    predicate: Callable[[Event], bool] | None, fields: Mapping[str, Any]
) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        if any(key not in event or event[key] != value for key, value in fields.items()):
            return False
        return predicate is None or predicate(event)

    return match


_NOT_STARTED = "the sandbox is not running: use `async with Sandbox() as sb:` (or await sb.start())"
