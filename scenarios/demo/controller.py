"""The demo's controller: a live world of phones in real time, and what the page sees of it.

A :class:`World` is what :mod:`scenarios.runner` builds for a scenario, but on the wall clock
and on a fixed port (so terminal phones and browser phones can find it): the real
:class:`~signaling.server.SignalingServer`, one :class:`~peers.client.PhoneClient` per
simulated phone behind its :class:`~peers.link.Link` (its radio, for the signal, power and
airplane controls), optionally an :class:`~scenarios.demo.audio_phone.AudioPhone` with real
audio, and a :class:`~scenarios.demo.browser_phone.BrowserPhone` for each browser phone page.

:class:`DemoController` owns the world and talks to the pages as JSON. It publishes
``state`` messages (every card: screen, call, call log labeled with the chosen label
profile; the player) and ``ladder`` messages (new rows: every frame through the server, and
notes for steps, timers and radio events), and takes commands (:meth:`DemoController.command`).
It decides nothing about calls: every command is a Phone/PhoneClient operation, and every
label comes from :func:`scenarios.observers.label_entries` over the phones' own transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import secrets
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from peers.client import PhoneClient
from peers.phone import Phone, PhoneError
from scenarios.loader import ScenarioError, load_scenario
from scenarios.model import DEFAULT_PROFILE, PhoneSpec, Scenario, Step, Verb
from scenarios.observers import EventStream, call_logs, event_logger, label_entries
from scenarios.profiles import Profile, Timers, load_profile, profile_names
from scenarios.runner import new_phone_client, switchboard_settings
from signaling.calls import Transition
from signaling.messages import NAME_PATTERN
from signaling.server import DEFAULT_HOST, SignalingServer
from signaling.switchboard import Switchboard

from .audio_phone import AudioPhone
from .browser_phone import BrowserPhone
from .playback import Player


__all__ = [
    "DEFAULT_PHONES",
    "LIBRARY",
    "DemoController",
    "DemoError",
    "LiveLadder",
    "World",
]

LIBRARY = Path(__file__).resolve().parent.parent / "library"
"""The scenario library the page offers."""

DEFAULT_PHONES = ("alice", "bob", "carol")
"""The simulated phones of free play (no scenario loaded)."""

DEFAULT_AUDIO_PHONE = "dave"
"""The phone with real aiortc audio in free play, to call a browser phone."""

Event = dict[str, Any]
Message = dict[str, Any]
Subscriber = Callable[[Message], None]
AnyPhone: TypeAlias = PhoneClient | AudioPhone | BrowserPhone

SERVER = "server"

_TIMERS = {"unreachable": "dial timer", "no_answer": "ring timer", "dropped": "reconnect grace"}
_RADIO = {"no_signal": "signal lost", "signal": "signal back", "cut": "radio cut (power off)"}


class DemoError(Exception):
    """A command the demo cannot carry out; the text is for the person at the page."""


class _LiveStream(EventStream):
    """The event stream, also telling the controller that something happened."""

    def __init__(self, clock: Callable[[], float], listener: Callable[[], None]) -> None:
        super().__init__(clock)
        self._listener = listener

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        result = super().__call__(logger, method_name, event_dict)
        self._listener()
        return result


class World:
    """A signaling server and phones, live, on 127.0.0.1.

    Args:
        profile: The profile whose timers and policies the world runs under.
        timers: The timers in force.
        phones: The simulated phones (with radios).
        audio_phone: The name of a phone with real aiortc audio, if any.
        port: The signaling server's port (0: any free one).
        on_event: Called after every event of the stream.
    """

    def __init__(
        self,
        *,
        profile: Profile,
        timers: Timers,
        phones: Sequence[PhoneSpec],
        audio_phone: str | None,
        port: int,
        on_event: Callable[[], None],
    ) -> None:
        self.profile = profile
        self.timers = timers
        self._specs = list(phones)
        self._audio_name = audio_phone
        self._port = port
        self._on_event = on_event
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._origin = loop.time()
        self.stream = _LiveStream(self.now, on_event)
        self.log = event_logger(self.stream)
        self.switchboard = Switchboard(switchboard_settings(timers, profile))
        self.server: SignalingServer | None = None
        self.phones: dict[str, AnyPhone] = {}
        self.errors: list[str] = []

    def now(self) -> float:
        """Seconds since the world was made."""
        return self._loop.time() - self._origin

    @property
    def url(self) -> str:
        """The signaling server's websocket URL."""
        assert self.server is not None
        return self.server.url

    async def start(self) -> None:
        """Starts the server, then every phone; returns once those that can are registered."""
        self.server = SignalingServer(
            self.switchboard,
            host=DEFAULT_HOST,
            port=self._port,
            heartbeat_interval=self.timers.heartbeat_interval,
            heartbeat_timeout=self.timers.heartbeat_timeout,
            clock=self.now,
            logger=self.log,
        )
        await self.server.start()
        for spec in self._specs:
            client = new_phone_client(
                spec,
                server=self.server,
                timers=self.timers,
                profile=self.profile,
                token=secrets.token_hex(16),
                seed=secrets.randbits(32),
                clock=self.now,
                logger=self.log,
            )
            self.phones[spec.name] = client
            client.start()
        if self._audio_name is not None:
            audio = AudioPhone(
                self._new_phone(self._audio_name),
                self.url,
                heartbeat_interval=self.timers.heartbeat_interval,
                heartbeat_timeout=self.timers.heartbeat_timeout,
                clock=self.now,
                logger=self.log,
            )
            self.phones[audio.name] = audio
            audio.start()
        waits = [
            p.wait_registered()
            for p in self.phones.values()
            if isinstance(p, AudioPhone)
            or (isinstance(p, PhoneClient) and p.phone.wants_connection and p.link.signal)
        ]
        async with asyncio.timeout(10):
            await asyncio.gather(*waits)

    def _new_phone(self, name: str, blocks: tuple[str, ...] = ()) -> Phone:
        token = secrets.token_hex(16)
        self.switchboard.provision(name, token, blocks)
        return Phone(
            name,
            token,
            reconnect_grace=self.timers.reconnect_grace,
            ring_timer=self.profile.policies.ring_timer,
            ring_timeout=self.timers.ring_timeout,
        )

    def browser_phone(self, name: str) -> BrowserPhone:
        """The browser phone named ``name``, made on first use.

        Raises:
            DemoError: A bad name, or a simulated phone has it.
        """
        existing = self.phones.get(name)
        if isinstance(existing, BrowserPhone):
            return existing
        if existing is not None:
            raise DemoError(f"{name} is a simulated phone here; pick another name")
        if not re.fullmatch(NAME_PATTERN, name) or name == SERVER:
            raise DemoError(
                f"bad phone name {name!r}: 1 to 32 characters among a-z, 0-9, '_' and '-', "
                "starting with a letter"
            )
        phone = BrowserPhone(
            self._new_phone(name), clock=self.now, logger=self.log, on_change=self._on_event
        )
        self.phones[name] = phone
        return phone

    async def restart_server(self, *, crash: bool) -> None:
        """``server restarts`` / ``server crashes``, on the same port."""
        assert self.server is not None
        self.server = await self.server.restart(crash=crash)
        self.switchboard = self.server.switchboard

    async def close(self) -> None:
        """Stops every phone, then the server."""
        for phone in self.phones.values():
            if isinstance(phone, PhoneClient):
                if not phone.link.signal:
                    phone.link.cut()  # a goodbye into a black hole would only wait
                await phone.stop()
            elif isinstance(phone, AudioPhone):
                await phone.stop()
            else:
                phone.close()
        if self.server is not None:
            await self.server.close()


class LiveLadder:
    """Turns events into ladder rows, one event at a time, as they come.

    A frame is an arrow; steps, timers that fired, radio events, lost connections, server
    restarts and errors are notes (the ideas of :mod:`scenarios.reports.ladder`, live).
    """

    def __init__(self) -> None:
        # The last frame the server received, and when: an end at that instant about
        # that call is the server's answer to it, not a timer firing.
        self._inbound: tuple[float, object] | None = None

    def rows(self, events: Sequence[Event]) -> list[Message]:
        """The rows of ``events``, in order."""
        return [row for row in map(self.row, events) if row is not None]

    def row(self, event: Event) -> Message | None:
        """The row of one event, or ``None`` if it draws nothing."""
        t = event.get("t", 0.0)
        match event.get("event"):
            case "frame":
                sender, receiver = str(event.get("sender")), str(event.get("receiver"))
                if receiver == SERVER:
                    self._inbound = (t, event.get("call_id"))
                elif sender == SERVER:
                    self._inbound = None
                return {
                    "t": t,
                    "kind": "arrow",
                    "from": sender,
                    "to": receiver,
                    "type": str(event.get("type")),
                    "call_id": event.get("call_id"),
                }
            case "step" if "skipped" not in event:
                return _note(t, [], f"step: {event.get('do')}")
            case "transition" if event.get("who") == SERVER and event.get("to") == "ended":
                cause = str(event.get("cause"))
                inbound = self._inbound
                answering = (
                    inbound is not None
                    and inbound[0] == t
                    and inbound[1]
                    in (
                        None,
                        event.get("call_id"),
                    )
                )
                if cause in _TIMERS and not answering:
                    return _note(t, [SERVER], f"{_TIMERS[cause]} fired → {cause}")
            case "link":
                state = str(event.get("state"))
                return _note(t, [str(event.get("phone"))], _RADIO.get(state, f"radio {state}"))
            case "connection" if event.get("state") in ("lost", "closed"):
                who = event.get("who")
                code = event.get("code")
                text = f"connection {event.get('state')}" + (f" ({code})" if code else "")
                return _note(t, [str(who)] if who else [SERVER], text)
            case "heartbeat":
                who = str(event.get("who"))
                # The server's end of a connection is named after it ("server/conn-3").
                over = SERVER if who.startswith(SERVER) else who
                return _note(t, [over], "heartbeat timed out")
            case "server":
                return _note(t, [SERVER], f"server {event.get('state')}")
            case "error":
                text = f"error {event.get('code') or ''}: {event.get('message')}"
                return _note(t, [str(event.get("who") or SERVER)], text)
        return None


def _note(t: object, over: list[str], text: str) -> Message:
    return {"t": t, "kind": "note", "over": over, "text": text}


class DemoController:
    """The world behind the demo page, and the page's view of it.

    Args:
        port: The signaling server's port (0: a free one); it stays the same when a
            scenario is loaded, so terminal phones and browser pages find it again.
        profile: The profile free play runs under.
        audio_phone: The name of free play's phone with real audio (``None``: none).
        library: The folder of scenarios the page offers.
        timers: Free play's timers that differ from the profile's (``ring_timeout``,
            ``heartbeat_interval``...), in seconds; a loaded scenario uses its own.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        profile: str = DEFAULT_PROFILE,
        audio_phone: str | None = DEFAULT_AUDIO_PHONE,
        library: Path = LIBRARY,
        timers: Mapping[str, float] | None = None,
    ) -> None:
        self.port = port
        self.timers = dict(timers or {})
        self.profile = load_profile(profile)
        self.label_profile = self.profile
        """The profile whose labels the page shows (switchable; behaviour stays the world's)."""
        self.audio_phone = audio_phone
        self.library = library
        self.world: World | None = None
        self.player: Player | None = None
        self._subscribers: list[Subscriber] = []
        self._published = 0  # events already turned into ladder rows
        self._ladder = LiveLadder()
        self._scheduled = False
        self._generation = 0  # bumped with each new world; pages start their ladder over
        self._ticker: asyncio.Task[None] | None = None
        self._menu: list[dict[str, str]] | None = None

    # --- Life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts free play."""
        await self._new_world(None, self.profile)
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="demo-ticker")

    async def _tick(self) -> None:
        # Some changes log no event (a phone taking in ``registered``): the cards are
        # published once a second too, so they never lag behind for long.
        while True:
            await asyncio.sleep(1.0)
            self._schedule()

    async def close(self) -> None:
        """Stops the player and the world."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self.player is not None:
            await self.player.close()
            self.player = None
        if self.world is not None:
            await self.world.close()
            self.world = None

    @property
    def signaling_url(self) -> str:
        """Where phones connect."""
        assert self.world is not None
        return self.world.url

    def scenarios(self) -> list[dict[str, str]]:
        """The library, for the page's menu (read once)."""
        if self._menu is not None:
            return self._menu
        found = []
        for path in sorted(self.library.glob("*.yaml")):
            try:
                scenario = load_scenario(path)
            except ScenarioError:
                continue
            found.append({"file": path.name, "name": scenario.name, "about": scenario.about})
        self._menu = found
        return found

    async def _new_world(self, scenario: Scenario | None, profile: Profile) -> None:
        if self.player is not None:
            await self.player.close()
            self.player = None
        pages = []
        if self.world is not None:
            pages = [p for p in self.world.phones.values() if isinstance(p, BrowserPhone)]
            for page in pages:  # tell each browser phone page to come back to the new world
                await page.push({"op": "reset"})
            await self.world.close()
            self.port = self.world.server.port if self.world.server else self.port
        if scenario is None:
            specs = [PhoneSpec(name) for name in DEFAULT_PHONES]
            timers = dataclasses.replace(profile.timers, **self.timers)
            audio = self.audio_phone
        else:
            specs = list(scenario.phones.values())
            overrides = {
                key: value
                for key, value in dataclasses.asdict(scenario.settings).items()
                if value is not None
            }
            timers = dataclasses.replace(profile.timers, **overrides)
            audio = None
        self.profile = profile
        self._generation += 1
        self._published = 0
        self._ladder = LiveLadder()
        self.world = World(
            profile=profile,
            timers=timers,
            phones=specs,
            audio_phone=audio,
            port=self.port,
            on_event=self._schedule,
        )
        await self.world.start()
        self.port = self.world.server.port if self.world.server else self.port
        if scenario is not None:
            self.player = Player(
                scenario,
                stream=self.world.stream,
                act=self._do_step,
                clock=asyncio.get_running_loop().time,
                on_change=self._schedule,
                logger=self.world.log,
            )
        self._publish_all()

    # --- The page's view -----------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Sends ``subscriber`` a ``hello`` now, and every update from now on.

        Returns:
            A function that unsubscribes.
        """
        self._subscribers.append(subscriber)
        subscriber(self.hello())

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(subscriber)

        return unsubscribe

    def hello(self) -> Message:
        """Everything a page needs to draw itself from scratch."""
        assert self.world is not None
        events = self.world.stream.events[: self._published]
        return {
            **self.state(),
            "kind": "hello",
            "generation": self._generation,
            "signaling_url": self.signaling_url,
            "profiles": profile_names(),
            "scenarios": self.scenarios(),
            "ladder": LiveLadder().rows(events),
        }

    def state(self) -> Message:
        """Every card, the player and the profiles, as of now."""
        world = self.world
        assert world is not None
        names = list(world.phones)
        transitions = [
            Transition.from_event(e) for e in world.stream.events if e.get("event") == "transition"
        ]
        summaries = call_logs(transitions, names)
        labels = self.label_profile.labels
        cards = []
        for name, phone in world.phones.items():
            entries = label_entries(summaries[name], self.label_profile)
            in_call_since = None
            live = [s for s in summaries[name] if s.ended_at is None]
            if live and live[-1].answered_at is not None:
                in_call_since = live[-1].answered_at
            core = phone.phone
            active = core.active_call
            card: Message = {
                "name": name,
                "kind": getattr(phone, "kind", "simulated"),
                "screen": str(core.screen),
                "registered": core.registered,
                "power": core.powered,
                "online": core.online,
                "signal": phone.link.signal if isinstance(phone, PhoneClient) else True,
                "blocks": sorted(core.blocks),
                "peer": active.peer if active is not None else None,
                "outgoing": active.is_outgoing if active is not None else None,
                "call_id": active.call.call_id if active is not None else None,
                "in_call_since": in_call_since,
                "log": [
                    {
                        **entry.as_json(),
                        "key": entry.label,
                        "text": labels[entry.label].text if entry.label is not None else None,
                        "call_id": entry.call_id,
                    }
                    for entry in entries
                ],
            }
            if isinstance(phone, PhoneClient):
                card["kind"] = "simulated"
            if isinstance(phone, AudioPhone):
                card["audio_frames"] = phone.frames_received(
                    active.call.call_id if active else None
                )
            if isinstance(phone, BrowserPhone):
                card["attached"] = phone.attached
            cards.append(card)
        return {
            "kind": "state",
            "now": round(world.now(), 3),
            "profile": self.profile.name,
            "label_profile": self.label_profile.name,
            "phones": cards,
            "player": None if self.player is None else self.player.as_json(self.label_profile.name),
        }

    def refresh(self) -> None:
        """Publishes the state soon (a browser phone page came or went)."""
        self._schedule()

    def _schedule(self) -> None:
        # Many events come in one burst (a frame, its transitions, the screens): the page
        # gets one update per burst, on the next turn of the loop.
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._publish)

    def _publish(self) -> None:
        self._scheduled = False
        world = self.world
        if world is None:
            return
        events = world.stream.events
        rows = self._ladder.rows(events[self._published :])
        self._published = len(events)
        if rows:
            self._send({"kind": "ladder", "generation": self._generation, "rows": rows})
        state = self.state()
        self._send(state)
        for phone in world.phones.values():
            if isinstance(phone, BrowserPhone) and phone.attached:
                card = next(c for c in state["phones"] if c["name"] == phone.name)
                task = asyncio.get_running_loop().create_task(
                    phone.push(
                        {
                            "op": "state",
                            "card": card,
                            "now": state["now"],
                            "label_profile": state["label_profile"],
                        }
                    )
                )
                _keep(task)

    def _publish_all(self) -> None:
        self._scheduled = False
        assert self.world is not None
        events = self.world.stream.events
        self._ladder.rows(events)  # brings its memory of the last inbound frame up to date
        self._published = len(events)
        self._send(self.hello())

    def _send(self, message: Message) -> None:
        for subscriber in list(self._subscribers):
            subscriber(message)

    # --- Commands ------------------------------------------------------------------------------

    async def command(self, message: Mapping[str, Any]) -> None:
        """Carries out one command of the page.

        ``{"op": "call", "phone": "alice", "to": "bob"}``; ``answer``, ``decline``,
        ``hangup``, ``power``, ``airplane``, ``signal`` (each with ``phone``; the last
        three with ``on``: true/false); ``block``/``unblock`` (``phone``, ``name``);
        ``load`` (``file`` from the library, optional ``profile``), ``free`` (free play,
        optional ``profile``), ``play``, ``pause``, ``step``, ``speed`` (``value``);
        ``labels`` (``profile``): show every log as that profile labels it;
        ``server`` (``crash``: true/false): restart the signaling server.

        Raises:
            DemoError: The command is unknown, malformed, or the phone cannot do it now.
        """
        op = message.get("op")
        try:
            match op:
                case "load":
                    await self._load(str(message.get("file", "")), message.get("profile"))
                case "free":
                    profile = message.get("profile") or self.profile.name
                    await self._new_world(None, self._profile(str(profile)))
                case "play" | "pause" | "step":
                    if self.player is None:
                        raise DemoError("load a scenario first")
                    getattr(self.player, str(op))()
                case "speed":
                    if self.player is None:
                        raise DemoError("load a scenario first")
                    self.player.set_speed(float(message.get("value", 1)))
                case "labels":
                    self.label_profile = self._profile(str(message.get("profile")))
                    self._schedule()
                case "server":
                    assert self.world is not None
                    await self.world.restart_server(crash=bool(message.get("crash")))
                case _:
                    await self._phone_command(str(op), message)
        except PhoneError as exc:
            raise DemoError(str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise DemoError(f"{op}: {exc}") from None

    def _profile(self, name: str) -> Profile:
        if name not in profile_names():
            raise DemoError(f"no profile {name!r}; profiles: {', '.join(profile_names())}")
        return load_profile(name)

    async def _load(self, file: str, profile: object) -> None:
        path = (self.library / file).resolve()
        if path.parent != self.library.resolve() or not path.is_file():
            raise DemoError(f"no scenario {file!r} in the library")
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            raise DemoError(str(exc)) from None
        chosen = self._profile(str(profile)) if profile else load_profile(scenario.profile)
        self.label_profile = chosen
        await self._new_world(scenario, chosen)

    async def _phone_command(self, op: str, message: Mapping[str, Any]) -> None:
        assert self.world is not None
        name = str(message.get("phone"))
        phone = self.world.phones.get(name)
        if phone is None:
            raise DemoError(f"no phone named {name!r}")
        if isinstance(phone, BrowserPhone):
            raise DemoError(f"{name} is a browser phone: use its own page")
        on = bool(message.get("on"))
        match op:
            case "call":
                await phone.call(str(message.get("to")))
            case "answer":
                await phone.answer()
            case "decline":
                await phone.decline()
            case "hangup":
                await phone.hang_up()
            case "block":
                await phone.block(str(message.get("name")))
            case "unblock":
                await phone.unblock(str(message.get("name")))
            case "power" | "airplane" | "signal":
                if not isinstance(phone, PhoneClient):
                    raise DemoError(f"{name} has no radio to fail in this demo")
                await _radio(phone, op, on)
            case _:
                raise DemoError(f"unknown command {op!r}")

    async def _do_step(self, step: Step) -> None:
        """Does one scenario step, as the runner would."""
        assert self.world is not None
        action = step.action
        if action.verb is Verb.SERVER_RESTARTS or action.verb is Verb.SERVER_CRASHES:
            await self.world.restart_server(crash=action.verb is Verb.SERVER_CRASHES)
            return
        assert action.actor is not None
        phone = self.world.phones[action.actor]
        assert isinstance(phone, PhoneClient)
        match action.verb:
            case Verb.CALLS | Verb.VIDEO_CALLS:
                assert action.target is not None
                await phone.call(action.target, action.kind)
            case Verb.ANSWERS:
                await phone.answer()
            case Verb.DECLINES:
                await phone.decline()
            case Verb.HANGS_UP:
                await phone.hang_up()
            case Verb.BLOCKS:
                assert action.target is not None
                await phone.block(action.target)
            case Verb.UNBLOCKS:
                assert action.target is not None
                await phone.unblock(action.target)
            case Verb.POWERS_OFF | Verb.POWERS_ON:
                await _radio(phone, "power", action.verb is Verb.POWERS_ON)
            case Verb.GOES_OFFLINE | Verb.GOES_ONLINE:
                # ``airplane on`` is going offline.
                await _radio(phone, "airplane", action.verb is Verb.GOES_OFFLINE)
            case Verb.LOSES_SIGNAL | Verb.REGAINS_SIGNAL:
                await _radio(phone, "signal", action.verb is Verb.REGAINS_SIGNAL)


async def _radio(phone: PhoneClient, switch: str, on: bool) -> None:
    """Power, airplane mode (``on``: airplane mode on) and signal, as the verbs do them."""
    match switch:
        case "power":
            await (phone.power_on() if on else phone.power_off())
        case "airplane":
            await (phone.go_offline() if on else phone.go_online())
        case "signal":
            if on == phone.link.signal:
                state = "has signal" if on else "has no signal"
                raise PhoneError(f"{phone.name} {state} already")
            if on:
                phone.regain_signal()
            else:
                phone.lose_signal()


_tasks: set[asyncio.Task[None]] = set()


def _keep(task: asyncio.Task[None]) -> None:
    # The loop keeps only weak references to tasks.
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
