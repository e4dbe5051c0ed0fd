"""The second engine: the same sans-I/O core, driven by a discrete-event simulation.

:func:`simulate` plays a scenario like :func:`scenarios.runner.run_scenario` and returns the
same :class:`~scenarios.runner.ScenarioResult`, judged by the same
:func:`~scenarios.runner.judge`, but without an event loop, sockets or aiortc (SDP is a fixed
valid string). The switchboard, the call machine and the phone logic are the real ones; only
their drivers (``signaling.server``, ``signaling.heartbeat``, ``peers.client``,
``peers.link`` and the runner) are modelled, closely enough that both engines give the same
call logs on every phone, the same failures and the same call ids for the same seed.

Time is the real engine's virtual clock: integer microseconds, as ``looptime`` keeps it, and
timers fire where looptime's rounding puts them. The real engine does many things at one
instant (a frame goes phone → link → server → link → phone in zero virtual time), and their
order decides races: a ``when`` step with no ``after`` acts while the frames its event caused
are still in flight. So every instant is divided into the *iterations* of the real event loop,
and each driver step costs the iterations it costs there (measured on the real engine): a
phone's frame reaches the switchboard 3 iterations after the phone sent it, a server frame
reaches the phone 4 after the switchboard queued it, a ``when`` step acts 4 after its event,
a call is placed in its step's own iteration (its SDP is made once per process), and so on
(the ``_…`` constants below). Within an iteration, callbacks run in asyncio's order: what the
previous iteration scheduled, then I/O, then timers. Everything is one priority queue ordered by
(time, iteration, rank in the iteration, insertion order).

What is modelled, driver by driver:

- **server**: connections opened, each frame fed to the switchboard and its outputs carried
  out at once, one timer. A clean restart stops listening, closes every connection with a
  close frame (waiting up to websockets' 10 s close timeout for a black-holed one) and then
  starts a successor on the same switchboard; nothing written after a close frame gets
  through. A crash resets every socket and starts a new switchboard from the store, then
  ``recover(now)``. The old server of a clean restart keeps the timer its closing
  connections armed, as the real one does; at equal deadlines its timer runs after the
  serving one's (the real engine's order there is asyncio's heap order, which no model can
  follow).
- **heartbeat**: pings every interval from the connection's opening on both ends; a
  black-holed connection is found dead by both ends at the first ping at or after the black
  hole (one at the same instant is lost with it) plus the pong timeout.
- **client**: reconnects at once after a dropped connection; after a failed attempt (the
  server not listening during a restart, a handshake that never completes) backs off
  0.5/1/2/4/8 s; waits while switched off, offline or without signal. A restart therefore
  costs every connected phone one refused attempt and half a second.
- **link**: a black hole keeps the connection open and passes nothing; regained signal
  resets black-holed connections and power off resets all (both ends notice at once; what
  crossed the link before still arrives); airplane mode closes cleanly, and on a black-holed
  connection the client gives up after its close timeout.
- **runner**: the same step semantics (``at``, ``when`` armed before the previous step
  acts, ``after``), lenient skips, the same ``quiet`` rule and polls while waiting or
  settling, :data:`~scenarios.runner.SETTLE_LIMIT`, and the same seeded tokens and call ids.
"""

from __future__ import annotations

import functools
import heapq
import random
import time
from collections.abc import Callable
from typing import Any, Final, Literal

from peers.client import RECONNECT_DELAYS
from peers.phone import Phone, PhoneError
from scenarios.model import Event, EventKind, Scenario, Step, Verb
from scenarios.profiles import Profile, Timers, load_profile
from scenarios.runner import SETTLE_LIMIT, ScenarioResult, judge, switchboard_settings
from signaling.calls import Transition
from signaling.messages import PhoneMessage, Register, ServerMessage, message_type
from signaling.records import Change
from signaling.store import MemoryStore
from signaling.switchboard import ConnectionId, Switchboard


__all__ = ["NotSimulated", "simulate"]

OFFER_SDP: Final = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
)
"""The SDP every simulated caller offers (the real engine's comes from aiortc)."""
ANSWER_SDP: Final = OFFER_SDP
"""The SDP every simulated callee answers with."""

_US: Final = 1_000_000
"""Microseconds per second: looptime's clock resolution, and ours."""
_POLL_US: Final = 100_000
"""The runner's poll (``_POLL``) in microseconds."""
_SETTLE_US: Final = round(SETTLE_LIMIT * _US)
"""How long the runner polls, in microseconds."""
_SERVER_CLOSE_TIMEOUT_US: Final = 10 * _US
"""websockets' server-side close timeout: how long a clean restart waits for a close frame."""

# Event-loop iterations each driver step costs in the real engine (measured there).
_TO_SERVER: Final = 3
"""A phone's frame: written by the client, forwarded by the link, read by the handler."""
_TO_PHONE: Final = 3
"""A server frame: written by the flush (directly: the connection keeps up), forwarded, read
by the client."""
_CROSS_TO_SERVER: Final = 1
"""When a phone's frame crosses the link (a black hole set by then swallows it)."""
_CROSS_TO_PHONE: Final = 1
"""When a server frame crosses the link."""
_TASK: Final = 1
"""A timer or a set event: the task it wakes runs in the next iteration."""
_WAIT_POLL: Final = 3
"""A ``when`` wait's poll timing out: the runner checks again (wait_for, shield)."""
_WHEN_WAKE: Final = 3
"""A matching event: the runner's ``when`` wait returns (shield, wait_for, task)."""
_ATTEMPT_TO_TCP: Final = 2
"""From the client loop's top to the TCP connect (refused when nobody listens)."""
_ATTEMPT_TO_OPEN: Final = 12
"""From the client loop's top to the server's handler (``Switchboard.connect``)."""
_OPEN_TO_UP: Final = 4
"""From the server's handler to the phone's ``link_up``."""
_RESET: Final = 4
"""A reset socket (power off, regained signal): both ends notice."""
_PHONE_CLOSE: Final = 8
"""A phone's clean close (airplane mode): both ends notice."""
_RESTART_CLOSE: Final = 9
"""A restart: from the close frame (2 iterations after the step) to both ends closed."""
_BYE_READ: Final = 2
"""A close frame: read by the other end (which answers it at once) this much later."""
_SWITCHBOARD_CLOSE: Final = 10
"""A close the switchboard asked for: from its flush to both ends closed."""
_RESTART_LOG: Final = 5
"""A restart: from the last old connection gone to the ``server restarting`` event."""
_RESTART_LISTEN: Final = 8
"""... to the successor's listening socket."""
_SERVING: Final = 9
"""... to the successor serving (``server_started``; the step returns)."""
_CRASH_PHONE: Final = 6
"""A crash: the phones' ends of the reset sockets notice."""
_CRASH_LISTEN: Final = 3
"""A crash: the successor's listening socket."""
_CRASH_DONE: Final = 4
"""A crash: the successor is serving (``server_started``; the step returns)."""
_ABORT: Final = 3
"""A timed-out pong (or close): from the deadline to the end noticing."""
_ABORT_LOG: Final = 1
"""... to the ``heartbeat`` event."""
_BACKOFF_WAKE: Final = 4
"""A backoff delay over: the client loop's top."""
_KICK_IN_BACKOFF: Final = 3
"""A kick during a backoff delay: the client loop's top."""
_PING_LOST_BEFORE: Final = 4
"""A black hole set at a ping's instant swallows it up to this iteration of the instant."""
_START_SERVER: Final = 5
"""The first iteration: the server serving, the clients' tasks created."""
_REGISTERED_WAKE: Final = 3
"""The last phone registered at start: the runner's gather returns."""

_CLOCK_RESOLUTION: Final = 1e-9
"""asyncio runs a timer whose deadline is less than this past the loop's clock."""


_INFO: Final = "info"

Ev = dict[str, Any]
_Pending = tuple[int, int, int, float, int, Callable[..., None], tuple[Any, ...]]
"""(time, iteration, rank, timer deadline, insertion number, callback, arguments).

Timers due at one tick run in the order of their deadlines as the loop's clock holds them
(asyncio's heap), then in the order they were set; other callbacks have deadline 0.
"""

# Ranks: where a callback stands in its iteration, as asyncio's ``_run_once`` orders its
# ready queue: first what the previous iteration scheduled (by its ready callbacks, then
# by its I/O callbacks, then by its timers), then this iteration's I/O, then its timers.
_BY_TASK: Final = 0
_BY_IO: Final = 1
_BY_TIMER: Final = 2
_TIMER: Final = 4
_FOLLOWS: Final = (_BY_TASK, _BY_TASK, _BY_TASK, _BY_IO, _BY_TIMER)
"""The rank of what a callback of each rank schedules for the next iteration."""


@functools.cache
def _profile(name: str) -> Profile:
    # Profiles are frozen; parsing the YAML costs far more than a whole simulated run.
    return load_profile(name)


def _timers(scenario: Scenario, profile: Profile) -> Timers:
    base = profile.timers
    s = scenario.settings
    return Timers(
        dial_timeout=base.dial_timeout if s.dial_timeout is None else s.dial_timeout,
        ring_timeout=base.ring_timeout if s.ring_timeout is None else s.ring_timeout,
        reconnect_grace=base.reconnect_grace if s.reconnect_grace is None else s.reconnect_grace,
        heartbeat_interval=(
            base.heartbeat_interval if s.heartbeat_interval is None else s.heartbeat_interval
        ),
        heartbeat_timeout=(
            base.heartbeat_timeout if s.heartbeat_timeout is None else s.heartbeat_timeout
        ),
    )


class NotSimulated(ValueError):
    """A scenario uses a contract extension the simulator does not model."""


def simulate(
    scenario: Scenario,
    *,
    seed: int = 0,
    profile: str | None = None,
    lenient: bool = False,
) -> ScenarioResult:
    """Plays a scenario in the in-memory simulator.

    Args:
        scenario: The scenario.
        seed: Makes tokens and call ids, exactly as the runner's; the same seed gives the
            same run, and the same call ids as :func:`scenarios.runner.run_scenario`.
        profile: Overrides the scenario's profile.
        lenient: Skip a step the phone cannot do (recorded as a ``step`` event with
            ``skipped``) instead of failing the run there.

    Returns:
        The result, judged exactly as the runner judges its own.

    Raises:
        NotSimulated: The scenario uses what the simulator does not model (link faults,
            real media, several devices per name): play it with the real engine.
    """
    unmodelled = [*scenario.extensions, *(["devices"] if scenario.has_devices else [])]
    if unmodelled:
        raise NotSimulated(
            f"{scenario.path}: the simulator does not model {' or '.join(unmodelled)}"
            " (it would play as if they were not there); use the real engine"
        )
    wall_start = time.perf_counter()
    chosen = _profile(profile or scenario.profile)
    world = _World(scenario, chosen, seed, lenient)
    world.run()
    result = judge(
        scenario,
        chosen,
        seed,
        world.events,
        run_failures=world.failures,
        phone_errors={c.name: c.phone.errors for c in world.clients.values()},
        virtual_seconds=world.t / _US,
    )
    result.wall_seconds = time.perf_counter() - wall_start
    return result


# --- The world's parts -------------------------------------------------------------------------

_Phase = Literal["idle", "signal", "waking", "connecting", "connected", "backoff"]


class _CallIds:
    """``new_phone_client``'s call ids: seeded by the run's seed and the phone's name.

    The generator is made at the first call: seeding one from a string costs more than
    most of a simulated run, and most phones never call.
    """

    __slots__ = ("_rng", "_seed")

    def __init__(self, seed: str) -> None:
        self._seed = seed
        self._rng: random.Random | None = None

    def __call__(self) -> str:
        if self._rng is None:
            self._rng = random.Random(self._seed)
        return f"{self._rng.getrandbits(64):016x}"


class _Conn:
    """One websocket connection through a phone's link: both ends and the pipe between."""

    __slots__ = (
        "cid",
        "client",
        "cut",
        "hole",
        "hole_gen",
        "opened_us",
        "phone_bye",
        "phone_open",
        "runner_waits",
        "server",
        "server_bye",
        "server_open",
        "who",
    )

    def __init__(self, client: _Client, server: _Server, opened_us: int) -> None:
        self.client = client
        self.server = server
        self.cid = ConnectionId(0)
        self.opened_us = opened_us
        self.phone_open = False
        """The phone's end is open (its websocket is up)."""
        self.server_open = False
        """The server's end is open (its handler runs)."""
        self.hole: tuple[int, int] | None = None
        """When the pipe was black-holed: (time, iteration)."""
        self.cut: tuple[int, int] | None = None
        """When the pipe was reset (or the server's end died): nothing crosses after."""
        self.hole_gen = 0
        self.server_bye: tuple[int, int] | None = None
        """From when the server's end writes nothing more: it sent a close frame, or read
        the phone's. As (time, twice the iteration, plus 1 if it read it: after that iteration's
        tasks)."""
        self.phone_bye: tuple[int, int] | None = None
        """The same for the phone's end."""
        self.who = ""
        """The handler's name for it in the log: its registered name, else ``conn-N``."""
        self.runner_waits: int | None = None
        """The step (airplane mode) waiting for the phone's end to close."""

    def passes(self, sent_us: int, crossing_it: int) -> bool:
        """Whether a frame crossing the link at (``sent_us``, ``crossing_it``) got through."""
        hole = self.hole
        if hole is not None and hole <= (sent_us, crossing_it):
            return False
        cut = self.cut
        return cut is None or cut > (sent_us, crossing_it)


class _Server:
    """One incarnation of ``SignalingServer``: a switchboard, its connections, its timer."""

    __slots__ = (
        "conns",
        "crashed",
        "listening",
        "next_cid",
        "retired",
        "sb",
        "timer_gen",
        "timer_when",
    )

    def __init__(self, sb: Switchboard) -> None:
        self.sb = sb
        self.conns: dict[ConnectionId, _Conn] = {}
        self.next_cid = 1
        self.timer_when: float | None = None
        self.timer_gen = 0
        self.listening = False
        self.crashed = False
        self.retired = False
        """A clean restart replaced it; its timer may still wake the switchboard."""


class _Client:
    """One ``PhoneClient`` with its ``Link``: the phone, its radio and its connection loop."""

    __slots__ = (
        "attempt",
        "attempt_cuts",
        "attempt_gen",
        "conn",
        "cuts",
        "kicked",
        "name",
        "phase",
        "phone",
        "pipes",
        "registered_once",
        "signal",
        "timer_gen",
        "wait_gen",
    )

    def __init__(self, phone: Phone, signal: bool) -> None:
        self.phone = phone
        self.name = phone.name
        self.signal = signal
        self.conn: _Conn | None = None
        """The connection the client's websocket is on, if any."""
        self.pipes: list[_Conn] = []
        """The link's pipes that may still have an open end."""
        self.phase: _Phase = "idle"
        self.kicked = False
        self.attempt = 0
        self.attempt_gen = 0
        self.cuts = 0
        """``Link._cuts``: how often the phone was switched off."""
        self.attempt_cuts = 0
        """``cuts`` when the current attempt began (``Link.open``)."""
        self.wait_gen = 0
        self.timer_gen = 0
        self.registered_once = False


# --- The simulation ----------------------------------------------------------------------------


class _World:
    """Builds the world, plays the steps, settles; leaves the event stream for judging."""

    def __init__(self, scenario: Scenario, profile: Profile, seed: int, lenient: bool) -> None:
        self.scenario = scenario
        self.profile = profile
        self.seed = seed
        self.lenient = lenient
        self.timers = timers = _timers(scenario, profile)
        self.interval_us = round(timers.heartbeat_interval * _US)
        self.pong_us = round(timers.heartbeat_timeout * _US)
        self.open_timeout_us = round((timers.heartbeat_interval + timers.heartbeat_timeout) * _US)
        self.steps = scenario.steps
        self.events: list[Ev] = []
        self.failures: list[tuple[str, str]] = []
        # The clock and the queue.
        self.t = 0
        self.now = 0.0
        self.stamp = 0.0
        """The time as events are stamped with it (``EventStream``: 6 decimals)."""
        self.it = 0
        self.rank = _BY_TASK
        self._seq = 0
        self._queue: list[_Pending] = []
        self.store = MemoryStore()
        self._unstored: list[list[Change]] = []
        settings = switchboard_settings(timers, profile)
        self.server = _Server(Switchboard(settings))
        self.clients: dict[str, _Client] = {}
        # The runner.
        self.pending: tuple[EventKind, str] | None = None
        self.pending_hit = False
        self.waiting: int | None = None
        """The position of the ``when`` step whose event the runner waits for."""
        self.polling = False
        """The runner polls: it waits for a ``when`` event, or settles."""
        self.poll_started_us = 0
        self.poll_limit = 0.0
        self.poll_gen = 0
        self.poll_armed = 0
        """Equal to ``poll_gen`` while no poll that matters is planned."""
        self.moved = True
        """Something was fed to the core since quiet was last checked."""
        self.was_quiet = False
        self.done = False
        self.closing: _Server | None = None
        """The server a clean restart is closing."""
        self.restart_position = 0
        self.starting = True
        self.unregistered = 0

    # --- The clock and the queue ---------------------------------------------------------------

    def soon(self, iterations: int, fn: Callable[..., None], *args: Any) -> None:
        """Runs ``fn(*args)`` ``iterations`` loop iterations from now, at this instant.

        A chain of tasks: after its first hop, each hop was scheduled by a ready callback.
        """
        self._seq += 1
        rank = _FOLLOWS[self.rank] if iterations == 1 else _BY_TASK
        heapq.heappush(self._queue, (self.t, self.it + iterations, rank, 0.0, self._seq, fn, args))

    def deliver(self, iterations: int, fn: Callable[..., None], *args: Any) -> None:
        """Like :meth:`soon`, for a chain whose last hop is woken by I/O (a frame read)."""
        self._seq += 1
        heapq.heappush(
            self._queue, (self.t, self.it + iterations, _BY_IO, 0.0, self._seq, fn, args)
        )

    def at(self, when_us: int, fn: Callable[..., None], *args: Any) -> None:
        """Runs ``fn(*args)`` as a timer at ``when_us`` (the next iteration if it is due)."""
        self.timer(when_us, when_us / _US, 0, fn, *args)

    def timer(
        self, when_us: int, when: float, late: int, fn: Callable[..., None], *args: Any
    ) -> None:
        """A timer set for ``when`` on the loop's clock, which reaches it at ``when_us``."""
        self._seq += 1
        if when_us <= self.t:
            entry = (self.t, self.it + 1, _TIMER, when, self._seq + late, fn, args)
        else:
            entry = (when_us, 0, _TIMER, when, self._seq + late, fn, args)
        heapq.heappush(self._queue, entry)

    def to_us(self, when: float) -> int:
        """The tick at which looptime's clock reaches a deadline on the scenario clock.

        asyncio runs a timer once the clock is within its resolution of the deadline; a
        deadline further than that but under half a tick away costs looptime one tick.
        """
        delta = when - self.now
        if delta < _CLOCK_RESOLUTION:
            return self.t
        step = round(delta * _US)
        return self.t + (step if step > 0 else 1)

    def run(self) -> None:
        self._start()
        queue = self._queue
        pop = heapq.heappop
        while not self.done:
            if not queue or queue[0][0] != self.t:
                # An instant is over: if the runner polls, its next poll that matters.
                if self.polling and self.poll_gen == self.poll_armed:
                    self._plan_poll(queue[0][0] if queue else None)
                if not queue:
                    break  # nothing can happen any more, and nobody waits
            entry = pop(queue)
            if entry[0] != self.t:
                self.t = entry[0]
                self.now = entry[0] / _US
                self.stamp = round(self.now, 6)
            self.it = entry[1]
            self.rank = entry[2]
            entry[5](*entry[6])

    # --- The runner's polls --------------------------------------------------------------------
    # While the runner waits for a ``when`` event, or settles after the last step, it checks
    # every 0.1 s whether all is quiet (nothing in progress, nothing owed to a reachable
    # phone), and gives up after SETTLE_LIMIT. Quiet is stable: once it holds, nothing
    # happens until a step acts. So only two polls can matter: the first after quiet began,
    # and the last one, at the limit. They are planned when an instant is over.

    def _start_polling(self) -> None:
        self.moved = True
        self.polling = True
        self.poll_started_us = self.t
        self.poll_limit = self.now + SETTLE_LIMIT
        self.poll_gen += 1
        self.poll_armed = self.poll_gen

    def _stop_polling(self) -> None:
        self.polling = False
        self.poll_gen += 1

    def _plan_poll(self, next_us: int | None) -> None:
        """Schedules the poll that will end the wait (quiet, or the limit), if one will."""
        started = self.poll_started_us
        check = _WAIT_POLL if self.waiting is not None else _TASK
        if self.moved:  # quiet can only change when something was fed to the core
            self.moved = False
            self.was_quiet = self._quiet()
        if self.was_quiet:
            polls = max(1, -(-(self.t - started) // _POLL_US))
            at_us = started + polls * _POLL_US
            if at_us == self.t and self.it >= check:
                at_us += _POLL_US  # that poll came before the last of this instant
        else:
            polls = -(-_SETTLE_US // _POLL_US)
            at_us = started + polls * _POLL_US
            while at_us / _US < self.poll_limit:  # the runner compares floats
                at_us += _POLL_US
            if next_us is not None and next_us < at_us:
                return  # not yet: something happens before the limit
        self.poll_gen += 1
        self._seq += 1
        rank = _BY_TASK if self.waiting is not None else _BY_TIMER
        heapq.heappush(
            self._queue, (at_us, check, rank, 0.0, self._seq, self._poll, (self.poll_gen,))
        )

    def _poll(self, gen: int) -> None:
        if gen != self.poll_gen:
            return
        if self._quiet() and self.now > 0:
            quiet = True
        elif self.now >= self.poll_limit:
            quiet = False
        else:
            self.poll_armed = self.poll_gen  # things moved on: plan again later
            return
        self._stop_polling()
        position = self.waiting
        if position is not None:
            self.waiting = None
            self._wait_failed(position)
            return
        if not quiet:
            busy = [
                f"{c.name} ({c.phone.screen})"
                for c in self.clients.values()
                if c.phone.active_call is not None
            ]
            self.failures.append(
                (
                    "settles",
                    f"did not settle within {SETTLE_LIMIT:.0f}s after the last step: "
                    f"calls in progress on {', '.join(busy) or 'the server'}",
                )
            )
        self.done = True

    def _wait_failed(self, position: int) -> None:
        """A ``when`` event never came: a failure, or (leniently) a step never pressed."""
        step = self.steps[position]
        assert step.when is not None
        message = f"waited for '{step.when.text}', which never happened"
        self.pending = None
        if not self.lenient:
            self._fail_step(step, message)
            self.done = True
            return
        self.emit(
            "step",
            {"index": step.index, "line": step.line, "do": step.action.text, "skipped": message},
        )
        self._arm_next(position)
        self._top(position + 1)

    # --- Events --------------------------------------------------------------------------------

    def emit(self, event: str, fields: Ev) -> None:
        fields["event"] = event
        fields["level"] = _INFO
        fields["t"] = self.stamp
        self.events.append(fields)

    def _transition(self, transition: Transition) -> None:
        fields = transition.as_event()
        fields["event"] = "transition"
        fields["level"] = _INFO
        fields["t"] = self.stamp
        self.events.append(fields)
        pending = self.pending
        if pending is None or self.pending_hit or fields["who"] != pending[1]:
            return
        kind, phone = pending
        to = fields["to"]
        if kind is EventKind.RINGS:
            hit = fields["callee"] == phone and to == "ringing"
        elif kind is EventKind.HEARS_RINGING:
            hit = fields["caller"] == phone and to == "ringing"
        elif kind is EventKind.IS_IN_CALL:
            hit = to == "answered"
        else:
            hit = to == "ended" and fields["from"] != "new"
        if hit:
            self.pending_hit = True
            if self.waiting is not None:
                position, self.waiting = self.waiting, None
                self._stop_polling()
                self.soon(_WHEN_WAKE, self._after_event, position)

    # --- Starting ------------------------------------------------------------------------------

    def _start(self) -> None:
        self.it = _START_SERVER
        server = self.server
        server.listening = True
        self.emit("server_started", {"url": "ws://127.0.0.1:0"})
        self._server_flush(server)
        rng = random.Random(self.seed)
        profile = self.profile
        timers = self.timers
        sb = server.sb
        for spec in self.scenario.phones.values():
            token = f"{rng.getrandbits(128):032x}"
            sb.provision(spec.name, token, spec.blocks)
            self._server_flush(server)  # SignalingServer.provision keeps it at once
            ids = _CallIds(f"{self.seed}:{spec.name}")
            phone = Phone(
                spec.name,
                token,
                reconnect_grace=timers.reconnect_grace,
                new_call_id=ids,
                blocks=spec.blocks,
                ring_timer=profile.policies.ring_timer,
                ring_timeout=timers.ring_timeout,
                powered=spec.power,
                online=spec.online,
            )
            client = _Client(phone, spec.signal)
            self.clients[spec.name] = client
            if phone.wants_connection and client.signal:
                self.unregistered += 1
            self.soon(_TASK, self._loop_top, client)
        if self.unregistered == 0:
            self.starting = False
            self._top(0)

    def _registered(self, client: _Client) -> None:
        """A phone registered: the runner's start waits for every phone that can connect."""
        client.registered_once = True
        if self.starting:
            self.unregistered -= 1
            if self.unregistered == 0:
                self.starting = False
                self.soon(_REGISTERED_WAKE, self._top, 0)

    # --- The runner ----------------------------------------------------------------------------

    def _top(self, position: int) -> None:
        """The runner at the top of its loop over the steps (or done with them)."""
        steps = self.steps
        if position == len(steps):
            if self._quiet():
                self.done = True
            else:
                self._start_polling()
            return
        step = steps[position]
        if step.when is not None:
            if self.pending is None:
                self._arm(step.when)
            if self.pending_hit:
                self._after_event(position)
                return
            if self._quiet() and self.t > 0:
                self._wait_failed(position)
                return
            self.waiting = position
            self._start_polling()
            return
        assert step.at is not None
        when_us = self.t + round(max(0.0, step.at - self.now) * _US)
        if when_us <= self.t:
            self.soon(_TASK, self._act, position)
        else:
            self.at(when_us, self.soon, _TASK, self._act, position)

    def _arm_next(self, position: int) -> None:
        """Listens for the event the step after ``position`` waits for, if any."""
        steps = self.steps
        following = steps[position + 1] if position + 1 < len(steps) else None
        if following is not None and following.when is not None:
            self._arm(following.when)
        else:
            self.pending = None

    def _arm(self, event: Event) -> None:
        self.pending = (event.kind, event.phone)
        self.pending_hit = False

    def _after_event(self, position: int) -> None:
        after_us = round(self.steps[position].after * _US)
        if after_us <= 0:
            self.soon(_TASK, self._act, position)
        else:
            self.at(self.t + after_us, self.soon, _TASK, self._act, position)

    def _act(self, position: int) -> None:
        steps = self.steps
        step = steps[position]
        self._arm_next(position)
        action = step.action
        self.emit("step", {"index": step.index, "line": step.line, "do": action.text})
        verb = action.verb
        try:
            if verb is Verb.SERVER_RESTARTS:
                self._restart(position)
                return
            if verb is Verb.SERVER_CRASHES:
                self._crash(position)
                return
            assert action.actor is not None
            client = self.clients[action.actor]
            phone = client.phone
            target = action.target
            now = self.now
            # A signaling-only call's SDP is the process's shared offer and answer
            # (peers.media.signaling_sdp): a call or an answer takes no loop pass.
            if verb is Verb.CALLS or verb is Verb.VIDEO_CALLS:
                assert target is not None
                phone.check_call(target)
                phone.place_call(target, action.kind, OFFER_SDP, now)
            elif verb is Verb.ANSWERS:
                if phone.ringing_offer() is None:
                    raise PhoneError(f"{client.name} cannot answer: nothing is ringing")
                phone.answer(ANSWER_SDP, now)
            elif verb is Verb.DECLINES:
                phone.decline(now)
            elif verb is Verb.HANGS_UP:
                phone.hang_up(now)
            elif verb is Verb.BLOCKS:
                assert target is not None
                phone.block(target, now)
            elif verb is Verb.UNBLOCKS:
                assert target is not None
                phone.unblock(target, now)
            elif verb is Verb.POWERS_OFF:
                phone.power_off(now)
                self._cut(client)
            elif verb is Verb.POWERS_ON:
                phone.power_on(now)
                self._kick(client)
            elif verb is Verb.LOSES_SIGNAL or verb is Verb.REGAINS_SIGNAL:
                # The runner checks the radio itself; the phone does not flush.
                if verb is Verb.LOSES_SIGNAL:
                    if not client.signal:
                        raise PhoneError(f"{client.name} has no signal already")
                    self._lose_signal(client)
                else:
                    if client.signal:
                        raise PhoneError(f"{client.name} has signal already")
                    self._regain_signal(client)
                self._top(position + 1)
                return
            elif verb is Verb.GOES_OFFLINE:
                phone.go_offline(now)
                if self._go_offline(client, position):
                    return
            elif verb is Verb.GOES_ONLINE:
                phone.go_online(now)
                self._kick(client)
            self._phone_flush(client)
        except PhoneError as exc:
            self._skip(position, exc)
            return
        self._top(position + 1)

    def _skip(self, position: int, exc: PhoneError) -> None:
        step = self.steps[position]
        if not self.lenient:
            self._fail_step(step, str(exc))
            self.done = True
            return
        self.emit(
            "step",
            {"index": step.index, "line": step.line, "do": step.action.text, "skipped": str(exc)},
        )
        self._top(position + 1)

    def _fail_step(self, step: Step, message: str) -> None:
        self.failures.append(
            ("steps", f"step {step.index + 1} (line {step.line}, '{step.action.text}'): {message}")
        )

    def _quiet(self) -> bool:
        """The runner's rule: nothing in progress, nothing owed to a reachable phone."""
        sb = self.server.sb
        if sb.active_calls:
            return False
        for client in self.clients.values():
            phone = client.phone
            if phone.active_call is not None or phone.next_wakeup() is not None:
                return False
            if client.signal and phone.wants_connection:
                if not phone.registered:
                    return False
                if sb.pending_notices(phone.name):
                    return False
        return True

    # --- The phone's driver --------------------------------------------------------------------

    def _phone_flush(self, client: _Client) -> None:
        """``PhoneClient._flush``: log what the phone recorded, send what it wants sent."""
        self.moved = True
        phone = client.phone
        if phone.registered and not client.registered_once:
            self._registered(client)
        for transition in phone.transitions_received():
            self._transition(transition)
        for change in phone.screens_received():
            self.emit(
                "screen",
                {
                    "who": change.who,
                    "screen": str(change.to_screen),
                    "previous": str(change.from_screen),
                },
            )
        messages = phone.messages_to_send()
        conn = client.conn
        if messages and conn is not None and conn.phone_open:
            self.deliver(_TO_SERVER, self._to_server, conn, messages, self.t, self.it)
        client.timer_gen += 1
        wakeup = phone.next_wakeup()
        if wakeup is not None:
            when = self.now + (wakeup - self.now)
            gen = client.timer_gen
            self.timer(self.to_us(wakeup), when, 0, self._phone_timer, client, gen, wakeup)

    def _phone_timer(self, client: _Client, gen: int, wakeup: float) -> None:
        if gen != client.timer_gen:
            return
        # The clock is rounded to the microsecond: the deadline has come all the same.
        self.moved = True
        client.phone.wake(max(self.now, wakeup))
        self.soon(_TASK, self._phone_flush, client)

    def _to_phone(self, conn: _Conn, messages: list[ServerMessage], sent_us: int, it: int) -> None:
        client = conn.client
        if not conn.phone_open or client.conn is not conn:
            return
        if not conn.passes(sent_us, it + _CROSS_TO_PHONE):
            return
        bye = conn.server_bye
        # The flush writes it one iteration after the switchboard decided (group commit),
        # straight to the socket: a close frame sent before, or in that iteration, goes
        # first, and websockets' broadcast skips a closing connection.
        if bye is not None and (sent_us, 2 * (it + _TASK)) >= bye:
            return  # the connection was closing: nothing more is sent
        phone = client.phone
        for message in messages:
            phone.receive(message, self.now)
            self._phone_flush(client)

    def _kick(self, client: _Client) -> None:
        client.kicked = True
        if client.phase == "idle":
            self._wake_loop(client, _TASK)
        elif client.phase == "backoff":
            self._wake_loop(client, _KICK_IN_BACKOFF)

    def _wake_loop(self, client: _Client, iterations: int) -> None:
        """Whatever the client loop waits for has come: it goes round again."""
        client.phase = "waking"
        client.wait_gen += 1
        self.soon(iterations, self._loop_top, client)

    def _loop_top(self, client: _Client) -> None:
        """The top of ``PhoneClient._run``'s loop."""
        client.kicked = False
        if not client.phone.wants_connection:
            client.phase = "idle"
        elif not client.signal:
            client.phase = "signal"
        else:
            client.phase = "connecting"
            client.attempt_gen += 1
            client.attempt_cuts = client.cuts
            self.soon(_ATTEMPT_TO_TCP, self._tcp_connect, client, client.attempt_gen)

    def _tcp_connect(self, client: _Client, gen: int) -> None:
        if gen != client.attempt_gen:
            return
        server = self.server
        if not server.listening:
            self._attempt_failed(client, "[Errno 111] Connect call failed ('127.0.0.1', 0)", gen)
            return
        if client.cuts != client.attempt_cuts:
            error = f"{client.name} was switched off while connecting"
            self._attempt_failed(client, error, gen)
            return
        conn = _Conn(client, server, self.t)
        client.pipes.append(conn)
        if not client.signal:  # lost while connecting: in the air already
            conn.hole = (self.t, self.it)
        self.deliver(_ATTEMPT_TO_OPEN - _ATTEMPT_TO_TCP, self._server_open, conn, gen)

    def _attempt_failed(self, client: _Client, error: str, gen: int) -> None:
        if gen != client.attempt_gen:
            return
        self.emit("connection", {"who": client.name, "state": "failed", "error": error})
        delay = RECONNECT_DELAYS[min(client.attempt, len(RECONNECT_DELAYS) - 1)]
        client.attempt += 1
        client.phase = "backoff"
        client.wait_gen += 1
        if client.kicked:
            self._wake_loop(client, _KICK_IN_BACKOFF)
            return
        self.at(self.t + round(delay * _US), self._backoff_over, client, client.wait_gen)

    def _backoff_over(self, client: _Client, gen: int) -> None:
        if gen == client.wait_gen and client.phase == "backoff":
            self._wake_loop(client, _BACKOFF_WAKE)

    def _server_open(self, conn: _Conn, gen: int) -> None:
        """The server's handler starts: the opening handshake is over on its side."""
        client = conn.client
        server = conn.server
        gone = server is not self.server or not server.listening or conn.cut is not None
        if conn.hole is not None or gone:
            # The handshake never completes (black hole), or the server went away.
            if client.attempt_gen == gen:
                if gone:
                    self._attempt_failed(client, "server rejected WebSocket connection", gen)
                else:
                    self.at(
                        conn.opened_us + self.open_timeout_us,
                        self._attempt_failed,
                        client,
                        "timed out during opening handshake",
                        gen,
                    )
            return
        cid = ConnectionId(server.next_cid)
        server.next_cid += 1
        conn.cid = cid
        conn.who = f"conn-{cid}"
        conn.opened_us = self.t
        conn.server_open = True
        server.conns[cid] = conn
        self.emit("connection", {"conn": cid, "state": "opened"})
        server.sb.connect(cid, self.now)
        self._server_flush(server)
        self.deliver(_OPEN_TO_UP, self._link_up, conn, gen)

    def _link_up(self, conn: _Conn, gen: int) -> None:
        client = conn.client
        if gen != client.attempt_gen or client.phase != "connecting":
            return
        if conn.hole is not None:
            # The handshake's answer went into the air: the client times out.
            self.at(
                conn.opened_us + self.open_timeout_us,
                self._attempt_failed,
                client,
                "timed out during opening handshake",
                gen,
            )
            return
        if not conn.server_open or conn.cut is not None or conn.server_bye is not None:
            self._attempt_failed(client, "connection closed during opening handshake", gen)
            return
        client.phase = "connected"
        client.conn = conn
        conn.phone_open = True
        client.phone.link_up(self.now)
        self._phone_flush(client)

    def _phone_end_closed(self, conn: _Conn) -> None:
        """The phone's end of a connection is gone: ``_connect_once`` returns."""
        if not conn.phone_open:
            return
        conn.phone_open = False
        client = conn.client
        if conn.runner_waits is not None:
            self.soon(_TASK, self._offline_done, conn.runner_waits, client)
        if client.conn is not conn:
            return
        client.conn = None
        client.attempt = 0
        client.phone.link_down(self.now)
        self._phone_flush(client)
        self._loop_top(client)

    # --- The link ------------------------------------------------------------------------------

    def _cut(self, client: _Client) -> None:
        """``Link.cut``: every connection reset (the phone was switched off)."""
        client.cuts += 1
        for conn in client.pipes:
            self._reset(conn)
        client.pipes = []
        self.emit("link", {"phone": client.name, "state": "cut"})

    def _reset(self, conn: _Conn) -> None:
        conn.hole_gen += 1
        if conn.cut is None:
            conn.cut = (self.t, self.it)
        if conn.phone_open:
            self.soon(_RESET, self._phone_end_closed, conn)
        if conn.server_open:
            self.soon(_RESET, self._server_end_closed, conn, False, 1006)

    def _lose_signal(self, client: _Client) -> None:
        self.moved = True
        client.signal = False
        for conn in client.pipes:
            if conn.hole is None:
                conn.hole = (self.t, self.it)
                self._watch(conn)
        self.emit("link", {"phone": client.name, "state": "no_signal"})

    def _regain_signal(self, client: _Client) -> None:
        kept = []
        for conn in client.pipes:
            if conn.hole is not None:
                self._reset(conn)
            else:
                kept.append(conn)
        client.pipes = kept
        client.signal = True
        self.moved = True
        if client.phase == "signal":
            self._wake_loop(client, _TASK)
        self.emit("link", {"phone": client.name, "state": "signal"})
        self._kick(client)

    def _go_offline(self, client: _Client, position: int) -> bool:
        """Airplane mode: the client closes its websocket; True if the step waits for it."""
        conn = client.conn
        if conn is None or not conn.phone_open:
            return False
        conn.runner_waits = position  # ``ws.close()`` returns once the phone's end is gone
        if conn.cut is not None or conn.phone_bye is not None:
            return True  # going already
        if conn.hole is None and conn.server_open:
            conn.phone_bye = (self.t, 2 * self.it)
            conn.server_bye = (self.t, 2 * (self.it + _BYE_READ) + 1)
            self.soon(_PHONE_CLOSE, self._phone_end_closed, conn)
            self.soon(_PHONE_CLOSE, self._server_end_closed, conn, True, 1001)
            return True
        # No close frame comes back: the client gives up after its close timeout, unless
        # its heartbeat finds the link dead first.
        conn.phone_bye = (self.t, 2 * self.it)
        deadline = self.t + self.pong_us
        found = self._found_dead_us(conn)
        if found is not None and found <= deadline:
            return True  # the heartbeat's verdict is armed already
        self.at(deadline, self.soon, _ABORT, self._phone_end_closed, conn)
        return True

    def _offline_done(self, position: int, client: _Client) -> None:
        self._phone_flush(client)
        self._top(position + 1)

    # --- Heartbeats ----------------------------------------------------------------------------

    def _found_dead_us(self, conn: _Conn) -> int | None:
        """When the heartbeat finds a black-holed connection dead (both ends alike)."""
        hole = conn.hole
        if hole is None:
            return None
        hole_us, hole_it = hole
        interval = self.interval_us
        since = hole_us - conn.opened_us
        pings = max(1, -(-since // interval))
        ping_us = conn.opened_us + pings * interval
        if ping_us == hole_us and hole_it > _PING_LOST_BEFORE:
            ping_us += interval  # that ping and its pong got through before the hole
        return ping_us + self.pong_us

    def _watch(self, conn: _Conn) -> None:
        """Arms the heartbeat's verdict on a black-holed connection."""
        if not (conn.phone_open or conn.server_open):
            return
        found = self._found_dead_us(conn)
        assert found is not None
        self.at(found, self._heartbeat_timed_out, conn, conn.hole_gen)

    def _heartbeat_timed_out(self, conn: _Conn, gen: int) -> None:
        if gen != conn.hole_gen:
            return
        self.soon(_ABORT_LOG, self._heartbeat_log, conn, gen)
        if conn.phone_open:
            self.soon(_ABORT, self._hb_phone_closed, conn, gen)
        if conn.server_open:
            self.soon(_ABORT, self._hb_server_closed, conn, gen)

    def _heartbeat_log(self, conn: _Conn, gen: int) -> None:
        if gen != conn.hole_gen:
            return
        if conn.phone_open:
            self.emit("heartbeat", {"who": conn.client.name, "state": "timed_out"})
        if conn.server_open:
            self.emit("heartbeat", {"who": f"server/conn-{conn.cid}", "state": "timed_out"})

    def _hb_phone_closed(self, conn: _Conn, gen: int) -> None:
        if gen == conn.hole_gen:
            self._phone_end_closed(conn)

    def _hb_server_closed(self, conn: _Conn, gen: int) -> None:
        if gen == conn.hole_gen:
            self._server_end_closed(conn, False, 1006)

    # --- The server's driver -------------------------------------------------------------------

    def _to_server(
        self, conn: _Conn, messages: list[PhoneMessage], sent_us: int, sent_it: int
    ) -> None:
        server = conn.server
        if not conn.server_open or server.crashed:
            return
        if not conn.passes(sent_us, sent_it + _CROSS_TO_SERVER):
            return
        bye = conn.phone_bye
        if bye is not None and (sent_us, 2 * sent_it) >= bye:
            return  # the client's websocket is closing: ``send`` raises, and it is dropped
        sb = server.sb
        cid = conn.cid
        for message in messages:
            sender = message.name if isinstance(message, Register) else self._name(server, cid)
            self.emit(
                "frame",
                {
                    "sender": sender,
                    "receiver": "server",
                    "type": message_type(message),
                    "call_id": getattr(message, "call_id", None),
                },
            )
            sb.receive(cid, message, self.now)
            self._server_flush(server)
            conn.who = sb.name_of(cid) or conn.who
            if sb.is_closing(cid):
                return  # the handler reads no more from it

    @staticmethod
    def _name(server: _Server, cid: ConnectionId) -> str:
        return server.sb.name_of(cid) or f"conn-{cid}"

    def _server_flush(self, server: _Server) -> None:
        """``SignalingServer._flush``: carry out what the switchboard decided, in order."""
        self.moved = True
        sb = server.sb
        changes = sb.changes_to_keep()
        if changes:
            # Write-ahead, as the server does; kept as batches and applied only when a
            # crash needs the store (applying costs more than the rest of a flush).
            self._unstored.append(changes)
        for transition in sb.transitions_received():
            self._transition(transition)
        for record in sb.records_received():
            fields = record.as_event()
            self.emit("cdr", fields)
        out = sb.messages_to_send()
        if out:
            conns = server.conns
            batches: dict[ConnectionId, list[ServerMessage]] = {}
            for cid, message in out:
                if cid not in conns:
                    continue  # gone meanwhile; no outbox
                self.emit(
                    "frame",
                    {
                        "sender": "server",
                        "receiver": self._name(server, cid),
                        "type": message_type(message),
                        "call_id": getattr(message, "call_id", None),
                    },
                )
                batch = batches.get(cid)
                if batch is None:
                    batches[cid] = [message]
                else:
                    batch.append(message)
            for cid, batch in batches.items():
                self.deliver(_TO_PHONE, self._to_phone, conns[cid], batch, self.t, self.it)
        for cid, code, _reason in sb.connections_to_close():
            conn = server.conns.get(cid)
            if conn is not None:
                self.soon(_TASK, self._server_closes, conn, code, _SWITCHBOARD_CLOSE - _TASK)
        if server.retired or server.crashed:
            # _arm_timer: a closing or crashed server arms no timer. Its successor owns the
            # shared switchboard's timers; a retired server's timer firing first would
            # send what the switchboard decides to its own dead connections (exploration
            # seed 1018555: a ring timer after a clean restart sent no call_ended).
            return
        # _arm_timer: keep a timer already set for the same deadline. The deadline on the
        # loop's clock as ``_loop_time`` computes it.
        wakeup = sb.next_wakeup()
        when = None if wakeup is None else self.now + (wakeup - self.now)
        if server.timer_when is not None and when == server.timer_when:
            return
        server.timer_gen += 1
        server.timer_when = when
        if wakeup is None or when is None:
            return
        self.timer(
            self.to_us(wakeup), when, 0, self._server_timer, server, server.timer_gen, wakeup
        )

    def _server_timer(self, server: _Server, gen: int, wakeup: float) -> None:
        if gen != server.timer_gen or server.retired or server.crashed:
            return  # _on_timer: a closing or crashed server does nothing
        server.timer_when = None
        server.sb.wake(max(self.now, wakeup))
        self._server_flush(server)

    def _server_closes(self, conn: _Conn, code: int, delay: int) -> None:
        """The server closes a connection cleanly (close frame, then the handshake)."""
        if conn.server_bye is not None or not conn.server_open:
            return  # closing already
        conn.server_bye = (self.t, 2 * self.it)
        if conn.hole is None and conn.cut is None and not conn.phone_open:
            # The phone has not finished its opening handshake: it reads the close right
            # after it (``_link_up`` sees ``server_bye``) and tries again later.
            self.soon(delay, self._server_end_closed, conn, True, code)
            return
        if conn.hole is None and conn.phone_open:
            conn.phone_bye = (self.t, 2 * (self.it + _BYE_READ) + 1)
            self.soon(delay, self._phone_end_closed, conn)
            self.soon(delay, self._server_end_closed, conn, True, code)
            return
        # Nobody answers the close frame: the server aborts after its close timeout,
        # unless its heartbeat finds the link dead first.
        deadline = self.t + _SERVER_CLOSE_TIMEOUT_US
        found = self._found_dead_us(conn)
        if found is not None and found <= deadline:
            return  # the heartbeat's verdict is armed already
        self.at(deadline, self.soon, _ABORT, self._close_timed_out, conn, conn.hole_gen)

    def _close_timed_out(self, conn: _Conn, gen: int) -> None:
        if gen == conn.hole_gen:
            self._server_end_closed(conn, False, 1006)

    def _server_end_closed(self, conn: _Conn, clean: bool, code: int) -> None:
        """The server's handler ends: ``_lost`` (unless the process crashed)."""
        if not conn.server_open:
            return
        conn.server_open = False
        server = conn.server
        del server.conns[conn.cid]
        if server.crashed:
            return
        sb = server.sb
        who = conn.who
        sb.disconnect(conn.cid, self.now)
        self.emit(
            "connection",
            {"conn": conn.cid, "who": who, "state": "closed" if clean else "lost", "code": code},
        )
        self._server_flush(server)
        if server is self.closing and not server.conns:
            self._restart_closed(server)

    # --- Restarts and crashes ------------------------------------------------------------------

    def _restart(self, position: int) -> None:
        """``SignalingServer.restart(crash=False)``: close cleanly, then a successor."""
        server = self.server
        server.retired = True
        server.timer_gen += 1  # close() cancels the timer (closing connections re-arm it)
        server.timer_when = None
        self.closing = server
        self.restart_position = position
        self.soon(_TASK, self._stop_listening, server)

    def _stop_listening(self, server: _Server) -> None:
        server.listening = False
        if not server.conns:
            self._restart_closed(server)
            return
        for conn in list(server.conns.values()):
            self.soon(_TASK, self._server_closes, conn, 1001, _RESTART_CLOSE)

    def _restart_closed(self, server: _Server) -> None:
        """Every old connection is gone: the successor starts on the same switchboard."""
        self.closing = None
        self.soon(_RESTART_LOG, self._restarting, server.sb)

    def _restarting(self, sb: Switchboard) -> None:
        self.emit("server", {"state": "restarting"})
        self.soon(_RESTART_LISTEN - _RESTART_LOG, self._listening, _Server(sb))

    def _listening(self, server: _Server) -> None:
        server.listening = True
        self.server = server
        self.soon(_SERVING - _RESTART_LISTEN, self._serving, server)

    def _serving(self, server: _Server) -> None:
        self.emit("server_started", {"url": "ws://127.0.0.1:0"})
        self._server_flush(server)
        self._top(self.restart_position + 1)

    def _crash(self, position: int) -> None:
        """``SignalingServer.restart(crash=True)``: every socket reset, a new switchboard."""
        old = self.server
        old.crashed = True
        old.listening = False
        old.timer_gen += 1
        old.timer_when = None
        for conn in list(old.conns.values()):
            conn.server_open = False
            if conn.cut is None:
                conn.cut = (self.t, self.it)
            if conn.phone_open and conn.hole is None:
                # Woken by the reset reaching its socket: after what the runner's task
                # scheduled for that iteration (a step pressed then finds it connected).
                self.deliver(_CRASH_PHONE, self._phone_end_closed, conn)
        old.conns.clear()
        store = self.store
        for batch in self._unstored:
            try:
                store.apply(batch)
            except ValueError as exc:  # the server would have failed on it at the time
                self.failures.append(("internal", f"internal error: ValueError: {exc}"))
        self._unstored = []
        sb = Switchboard(old.sb.settings, limits=old.sb.limits, durable=store.load())
        sb.recover(self.now)
        self.emit("server", {"state": "crashed"})
        self.restart_position = position
        self.soon(_CRASH_LISTEN, self._crash_listening, _Server(sb))

    def _crash_listening(self, server: _Server) -> None:
        server.listening = True
        self.server = server
        self.soon(_CRASH_DONE - _CRASH_LISTEN, self._serving, server)
