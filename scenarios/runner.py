"""Plays a scenario: a real server, phones and links in one event loop, in virtual time.

The loop is a ``looptime`` loop: whenever nothing is runnable, its clock jumps to the next
timer, so a 45 s ring timeout costs microseconds of wall time. That is only sound when every
party runs in this one loop (shared/reference/tools.md §5), which is why the server, every
phone client and every link are built here, in-process, on 127.0.0.1.

Step semantics: steps run in file order. An ``at`` step runs at that scenario time (or at
once, if an earlier ``when`` step already took the run past it). A ``when`` step runs
``after`` seconds after the first matching event that follows the previous step's moment.
After the last step the run *settles*: it goes on until no call is in progress anywhere,
every phone that can connect is registered, and no missed-call notice waits for a
connected phone; a run that does not settle within :data:`SETTLE_LIMIT` fails.

A run is reproducible from its seed: tokens and call ids come from it, and so do the
random parts of ``fault:`` steps (jitter, drops with a probability, media loss), each
phone's link drawing from its own generator seeded by the run's seed and its name.

Faults (``fault:`` steps) are applied to the phone's :class:`~peers.link.Link` and its
media shim; see that module for what each does on the wire.

Media scenarios (``settings: {media: true}``) run in **real time** on a plain asyncio loop:
aiortc's tracks pace themselves on the wall clock and encode in worker threads, which a
virtual clock cannot follow (shared/reference/tools.md §5). Their results say so
(:attr:`ScenarioResult.real_time`). Keep their timers short.

Devices: a phone with ``devices: N`` (N > 1) becomes N phone clients sharing its name and
token, registering as devices ``"1"`` … ``"N"``; each is an end of the run (``bob#2``), with
its own call log, screen and steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final

import looptime

from peers.client import PhoneClient
from peers.link import DIRECTIONS, DropRule, Link
from peers.phone import Phone, PhoneError
from scenarios.expectations import compare_logs
from scenarios.model import Action, Event, EventKind, Fault, PhoneSpec, Scenario, Step, Verb
from scenarios.observers import EventStream, LogEntry, event_logger, observe
from scenarios.profiles import Profile, Timers, load_profile, switchboard_settings
from signaling.calls import end_name, party_name
from signaling.messages import Error, ErrorCode
from signaling.server import DEFAULT_HOST, SignalingServer
from signaling.switchboard import Switchboard


__all__ = [
    "DEFAULT_MEDIA_TIMEOUT",
    "SETTLE_LIMIT",
    "ScenarioResult",
    "judge",
    "new_phone_client",
    "profiles_to_run",
    "run_scenario",
    "run_scenario_async",
    "switchboard_settings",  # defined with the profiles, where `serve` takes it from
]

NOOP_CYCLES: Final = 5
"""How many idle loop passes looptime makes before it moves the clock to the next timer.

Its default (42) leaves time for I/O from threads and other processes to arrive. A run has
none: every socket is a loopback or socketpair within the loop, whose bytes are readable at
the very next poll. Five passes keep a margin and make a run about twice as fast."""

SETTLE_LIMIT = 600.0
"""Scenario seconds a run may take to settle after its last step (or to see a ``when``)."""

DEFAULT_MEDIA_TIMEOUT = 10.0
"""Seconds an answered media call waits for its media to connect before it ends ``failed``
(``settings.media_timeout`` overrides it). Inferred: apps give ICE 10 to 30 s
(labels.md §3: Telegram's connect timer 30 s; Element hangs up with ice_failed after 30 s);
10 s keeps real-time runs short."""

_POLL = 0.1
"""Scenario seconds between checks while waiting for a ``when`` event or settling."""

_US: Final = 1_000_000
"""Ticks per second of looptime's clock (its default resolution, a microsecond)."""

_POLL_US: Final = round(_POLL * _US)


@dataclass
class ScenarioResult:
    """How one scenario went.

    Attributes:
        scenario: The scenario.
        profile: The profile it ran under.
        seed: The seed it ran with.
        failures: What went wrong, for a person; empty when it passed.
        logs: Each phone's call log, labeled, oldest first.
        events: The whole event stream.
        virtual_seconds: Scenario time covered.
        wall_seconds: Real time taken.
    """

    scenario: Scenario
    profile: str
    seed: int
    failures: list[str] = field(default_factory=list)
    violated: list[str] = field(default_factory=list)
    """The names of the checks that failed: invariants (e.g. ``blocks_stay_private``),
    ``settles`` (calls still in progress long after the last step), ``expectations``,
    ``steps`` (a step that could not be played), ``errors`` (an error frame to a phone)."""
    logs: dict[str, list[LogEntry]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    virtual_seconds: float = 0.0
    wall_seconds: float = 0.0
    real_time: bool = False
    """Whether the run went in real time (media scenarios) rather than virtual time."""

    @property
    def passed(self) -> bool:
        """Whether every expectation and check held."""
        return not self.failures

    def as_json(self) -> dict[str, object]:
        """The scenario's entry in the JSON report (DESIGN.md)."""
        return {
            "file": self.scenario.path,
            "name": self.scenario.name,
            "profile": self.profile,
            "seed": self.seed,
            "passed": self.passed,
            "failures": list(self.failures),
            "phones": {
                name: {"log": [entry.as_json() for entry in log]} for name, log in self.logs.items()
            },
            "virtual_seconds": round(self.virtual_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
        } | ({"real_time": True} if self.real_time else {})


def run_scenario(
    scenario: Scenario,
    *,
    seed: int = 0,
    profile: str | None = None,
    log_file: IO[str] | None = None,
    lenient: bool = False,
) -> ScenarioResult:
    """Runs a scenario in its own virtual-time event loop (real time for media scenarios).

    Args:
        scenario: The scenario.
        seed: Makes tokens and call ids; the same seed gives the same run.
        profile: Overrides the scenario's profile.
        log_file: Where to write the event stream as JSON lines, if anywhere.
        lenient: Skip a step the phone cannot do (``PhoneError``), recording a ``step``
            event with ``skipped``, instead of failing the run there.
    """
    factory: Callable[[], asyncio.AbstractEventLoop] = (
        asyncio.new_event_loop
        if scenario.media
        else lambda: looptime.new_event_loop(start=0.0, noop_cycles=NOOP_CYCLES)
    )
    results: list[ScenarioResult] = []

    async def main() -> None:
        # The result is handed back outside the task: asyncio.Runner, ending, looks its
        # SIGINT handler up as a signal enum, whose failure message reprs that handler,
        # its main task and so the task's result, the whole event stream (~0.5 ms a run).
        results.append(
            await run_scenario_async(
                scenario, seed=seed, profile=profile, log_file=log_file, lenient=lenient
            )
        )

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    return results[0]


async def run_scenario_async(
    scenario: Scenario,
    *,
    seed: int = 0,
    profile: str | None = None,
    log_file: IO[str] | None = None,
    lenient: bool = False,
) -> ScenarioResult:
    """Runs a scenario in the running loop, which must be a virtual-time loop for speed.

    See :func:`run_scenario` for the arguments.
    """
    chosen = load_profile(profile or scenario.profile)
    run = _Run(scenario, chosen, seed, log_file, lenient=lenient)
    wall_start = time.perf_counter()
    try:
        await run.play()
        # Judged before the shutdown, whose goodbyes are not part of the scenario.
        result = run.result()
    finally:
        await run.shut_down()
    result.wall_seconds = time.perf_counter() - wall_start
    result.real_time = scenario.media
    return result


def profiles_to_run(scenario: Scenario, requested: Sequence[str] | None) -> list[str]:
    """The profiles a scenario runs under.

    Args:
        scenario: The scenario.
        requested: Profiles asked for on the command line (``None``: none asked for).

    Returns:
        The requested ones if any; else the scenario's own profile, then those its
        ``expect_profiles`` names, each once.
    """
    if requested:
        return list(dict.fromkeys(requested))
    return list(dict.fromkeys([scenario.profile, *scenario.expect_profiles]))


def new_phone_client(
    spec: PhoneSpec,
    *,
    server: SignalingServer,
    timers: Timers,
    profile: Profile,
    token: str,
    seed: int,
    clock: Callable[[], float],
    logger: Any,
    media: bool = False,
    media_timeout: float = DEFAULT_MEDIA_TIMEOUT,
    device: str | None = None,
) -> PhoneClient:
    """Provisions a phone on the server and builds its logic, radio and driver (not started).

    The one place a run's phone is made, for the runner and for :mod:`scenarios.sandbox`.
    Its call ids come from the seed and its end, so they stay the same whatever the
    other phones do; so does its link's generator (jitter, probabilistic drops, media
    loss). A media phone (``media``) brings up real media on every answered call.
    ``device`` makes it one of several devices of ``spec.name`` (the name is provisioned
    once, by its first device).
    """
    if spec.name not in server.switchboard.accounts:
        server.provision(spec.name, token, spec.blocks)
    phone = Phone(
        spec.name,
        token,
        reconnect_grace=timers.reconnect_grace,
        new_call_id=_call_ids(seed, end_name(spec.name, device)),
        blocks=spec.blocks,
        ring_timer=profile.policies.ring_timer,
        ring_timeout=timers.ring_timeout,
        powered=spec.power,
        online=spec.online,
        media_timeout=media_timeout if media else None,
        device=device,
    )
    link = Link(
        DEFAULT_HOST,
        server.port,
        phone=phone.end,
        logger=logger,
        signal=spec.signal,
        rng=random.Random(f"{seed}:link:{phone.end}"),
    )
    return PhoneClient(
        phone,
        link,
        heartbeat_interval=timers.heartbeat_interval,
        heartbeat_timeout=timers.heartbeat_timeout,
        clock=clock,
        logger=logger,
        media=media,
    )


def _call_ids(seed: int, end: str) -> Callable[[], str]:
    ids = random.Random(f"{seed}:{end}")
    return lambda: f"{ids.getrandbits(64):016x}"


def _timers(scenario: Scenario, profile: Profile) -> Timers:
    overrides = {
        key: value
        for key, value in dataclasses.asdict(scenario.settings).items()
        if value is not None and key != "media_timeout"  # a phone's, not a profile timer
    }
    return dataclasses.replace(profile.timers, **overrides)


class _Run:
    """One run of one scenario: builds the world, plays the steps, settles, judges."""

    def __init__(
        self,
        scenario: Scenario,
        profile: Profile,
        seed: int,
        log_file: IO[str] | None,
        *,
        lenient: bool = False,
    ) -> None:
        self.scenario = scenario
        self.profile = profile
        self.seed = seed
        self.lenient = lenient
        self.timers = _timers(scenario, profile)
        self.rng = random.Random(seed)
        self.loop = asyncio.get_running_loop()
        self.origin = self.loop.time()
        self.stream = EventStream(self.now)
        self.log = event_logger(self.stream, log_file)
        self.failures: list[tuple[str, str]] = []
        """``(check name, text)`` of what went wrong while playing."""
        self.switchboard = Switchboard(switchboard_settings(self.timers, profile))
        self.server: SignalingServer | None = None
        self.clients: dict[str, PhoneClient] = {}
        # An exception in a callback or task would otherwise only be printed, and the
        # run would go on to a plausible but wrong result: make it fail the scenario.
        self.loop.set_exception_handler(self._on_loop_error)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        detail = f"{type(exc).__name__}: {exc}" if exc is not None else context.get("message")
        self.failures.append(("internal", f"internal error at {self.now():.3f}s: {detail}"))
        self.log.error("internal_error", message=str(detail))

    def now(self) -> float:
        return self.loop.time() - self.origin

    # --- Building the world --------------------------------------------------------------------

    async def start(self) -> None:
        self.server = self._new_server(self.switchboard, port=0)
        await self.server.start()
        for spec in self.scenario.phones.values():
            token = f"{self.rng.getrandbits(128):032x}"
            devices = [None] if spec.devices == 1 else [str(d) for d in range(1, spec.devices + 1)]
            for device in devices:
                client = new_phone_client(
                    spec,
                    server=self.server,
                    timers=self.timers,
                    profile=self.profile,
                    token=token,
                    seed=self.seed,
                    clock=self.now,
                    logger=self.log,
                    media=self.scenario.media,
                    media_timeout=self.scenario.settings.media_timeout or DEFAULT_MEDIA_TIMEOUT,
                    device=device,
                )
                self.clients[client.name] = client
                client.start()
        # Phones that can connect are registered before the first step (at t = 0).
        await asyncio.gather(
            *(c.wait_registered() for c in self.clients.values() if self._can_connect(c))
        )

    def _new_server(self, switchboard: Switchboard, port: int) -> SignalingServer:
        return SignalingServer(
            switchboard,
            host=DEFAULT_HOST,
            port=port,
            heartbeat_interval=self.timers.heartbeat_interval,
            heartbeat_timeout=self.timers.heartbeat_timeout,
            clock=self.now,
            logger=self.log,
        )

    # --- Playing ----------------------------------------------------------------------------------

    async def play(self) -> None:
        await self.start()
        steps = self.scenario.steps
        pending: asyncio.Future[dict[str, Any]] | None = None
        for position, step in enumerate(steps):
            if step.when is not None:
                if pending is None:
                    pending = self.stream.wait_for(_matcher(step.when))
                if not await self._await_event(step, pending):
                    if not self.lenient:
                        return
                    # Exploring: the event never came, so the person never pressed; the
                    # timeline goes on from here.
                    pending = self._arm_next(position)
                    continue
                await asyncio.sleep(step.after)
            elif step.at is not None:
                await asyncio.sleep(max(0.0, step.at - self.now()))
            # Arm the next step's event before this step acts: what this step causes
            # (the callee ringing after a call, say) is exactly what the next may wait for.
            pending = self._arm_next(position)
            if not await self._do(step):
                return
        await self._settle()

    def _arm_next(self, position: int) -> asyncio.Future[dict[str, Any]] | None:
        """Starts listening for the event the step after ``position`` waits for, if any."""
        steps = self.scenario.steps
        following = steps[position + 1] if position + 1 < len(steps) else None
        if following is None or following.when is None:
            return None
        return self.stream.wait_for(_matcher(following.when))

    async def _await_event(self, step: Step, pending: asyncio.Future[dict[str, Any]]) -> bool:
        assert step.when is not None
        deadline = self.now() + SETTLE_LIMIT
        with self._polls(deadline) as polls:
            while not pending.done():
                if self._quiet() and self.now() > 0:
                    # Nothing is going on, so nothing will: no point in waiting any longer.
                    break
                if self.now() >= deadline:
                    break
                await polls.next(pending)
        if pending.done():
            return True
        pending.cancel()
        message = f"waited for '{step.when.text}', which never happened"
        if self.lenient:
            self.log.info(
                "step", index=step.index, line=step.line, do=step.action.text, skipped=message
            )
        else:
            self._fail(step, message)
        return False

    async def _do(self, step: Step) -> bool:
        action = step.action
        self.log.info("step", index=step.index, line=step.line, do=action.text)
        try:
            if step.fault is not None:
                self._apply_fault(step.fault)
            else:
                await self._act(action)
        except PhoneError as exc:
            if self.lenient:
                # A press that does nothing, as on a real phone: noted, and the run goes on.
                self.log.info(
                    "step", index=step.index, line=step.line, do=action.text, skipped=str(exc)
                )
                return True
            self._fail(step, str(exc))
            return False
        return True

    async def _act(self, action: Action) -> None:
        verb = action.verb
        if verb is Verb.SERVER_RESTARTS:
            await self._restart_server(crash=False)
            return
        if verb is Verb.SERVER_CRASHES:
            await self._restart_server(crash=True)
            return
        assert action.actor is not None
        client = self.clients[action.actor]
        target = action.target
        match verb:
            case Verb.CALLS | Verb.VIDEO_CALLS:
                assert target is not None
                await client.call(target, "video" if verb is Verb.VIDEO_CALLS else "audio")
            case Verb.ANSWERS:
                await client.answer()
            case Verb.DECLINES:
                await client.decline()
            case Verb.HANGS_UP:
                await client.hang_up()
            case Verb.BLOCKS:
                assert target is not None
                await client.block(target)
            case Verb.UNBLOCKS:
                assert target is not None
                await client.unblock(target)
            case Verb.POWERS_OFF:
                await client.power_off()
            case Verb.POWERS_ON:
                await client.power_on()
            case Verb.LOSES_SIGNAL:
                if not client.link.signal:
                    raise PhoneError(f"{client.name} has no signal already")
                client.lose_signal()
            case Verb.REGAINS_SIGNAL:
                if client.link.signal:
                    raise PhoneError(f"{client.name} has signal already")
                client.regain_signal()
            case Verb.GOES_OFFLINE:
                await client.go_offline()
            case Verb.GOES_ONLINE:
                await client.go_online()

    def _apply_fault(self, fault: Fault) -> None:
        """Puts a ``fault:`` step on the phone's link or media shim (see peers/link.py)."""
        link = self.clients[fault.phone].link
        directions = DIRECTIONS if fault.direction == "both" else (fault.direction,)
        self.log.info("fault", who=fault.phone, fault=fault.describe())
        if fault.delay is not None:
            for direction in directions:
                link.set_delay(direction, fault.delay, fault.jitter)
        elif fault.drop:
            types = None if "any" in fault.drop else frozenset(fault.drop)
            # One rule for both directions, so that 'count' counts frames either way.
            rule = DropRule(types, fault.count, fault.probability)
            for direction in directions:
                link.add_drop(direction, rule)
        elif fault.black_hole:
            for direction in directions:
                link.set_black_hole(direction)
        elif fault.reset:
            link.reset()
        elif fault.slow_close is not None:
            link.set_slow_close(fault.slow_close)
        elif fault.media_loss is not None:
            link.media.loss = fault.media_loss
        elif fault.media_black_hole:
            link.media.black_hole = True
        elif fault.clear:
            link.clear()

    async def _restart_server(self, *, crash: bool) -> None:
        assert self.server is not None
        self.server = await self.server.restart(crash=crash)
        self.switchboard = self.server.switchboard

    # --- Settling and judging -------------------------------------------------------------------

    def _can_connect(self, client: PhoneClient) -> bool:
        return client.phone.wants_connection and client.link.signal

    def _quiet(self) -> bool:
        """Whether nothing is in progress and nothing is owed to a reachable phone."""
        if self.switchboard.active_calls:
            return False
        for client in self.clients.values():
            phone = client.phone
            if phone.active_call is not None or phone.next_wakeup() is not None:
                return False
            if self._can_connect(client):
                if not phone.registered:
                    return False
                if self.switchboard.pending_notices(phone.name):  # the name's, not the end's
                    return False
        return True

    async def _settle(self) -> None:
        deadline = self.now() + SETTLE_LIMIT
        with self._polls(deadline) as polls:
            await self._settle_polling(polls, deadline)

    async def _settle_polling(self, polls: _Polls, deadline: float) -> None:
        while not self._quiet():
            if self.now() >= deadline:
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
                return
            await polls.next()

    def _polls(self, deadline: float) -> _Polls:
        """The checks of a wait that gives up at ``deadline`` (scenario time)."""
        origin = self.origin
        return _Polls(self.loop, self._quiet, past=lambda time: time - origin >= deadline)

    def _fail(self, step: Step, message: str) -> None:
        self.failures.append(
            ("steps", f"step {step.index + 1} (line {step.line}, '{step.action.text}'): {message}")
        )

    async def shut_down(self) -> None:
        # All at once: each stop is a close handshake through the link, and one after the
        # other they cost a tenth of a run. Nothing here is judged (see run_scenario_async).
        await asyncio.gather(*(client.stop() for client in self.clients.values()))
        if self.server is not None:
            await self.server.close()

    def result(self) -> ScenarioResult:
        return judge(
            self.scenario,
            self.profile,
            self.seed,
            list(self.stream.events),
            run_failures=self.failures,
            phone_errors={c.name: c.phone.errors for c in self.clients.values()},
            virtual_seconds=self.now(),
        )


class _Polls:
    """The runner's checks every :data:`_POLL` seconds while it waits, made only where one
    can matter.

    What a wait does, and must keep doing: from the moment it starts, check every 0.1 s
    whether the run is quiet (nothing in progress, nothing owed to a reachable phone),
    and stop at the first check that finds it so, or at the limit. Each check is a timer,
    and under virtual time each timer is a jump of the clock with its idle loop passes:
    a third of a generated run went into checks that could only find what the previous
    one had found.

    A check can only see something new if something ran since the last one, and under
    virtual time nothing runs between timers. So this plans one check at a time, each
    time the loop runs out of work (it is about to wait for its next timer: we see that
    as the timeout its selector is called with):

    - quiet now: the next check, as it would have come;
    - not quiet, and the loop's next timer falls on a check's instant: that check, so
      that it runs in the same loop iteration as ever, after what that timer starts;
    - otherwise none: the next timer will run something, and we plan again then;
    - and always, at the latest, the check at the limit.

    Each check is armed with the deadline and the wake-up chain of the timer it replaces
    (``asyncio.wait_for`` or ``asyncio.sleep`` of :data:`_POLL`, re-armed at each check),
    so what a check sees is what it saw when every check was made. The simulator plans
    its polls by the same rule (``scenarios.simulator``: "only polls that matter").

    In real time (media scenarios) the clock does not wait for us: every check is made.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        quiet: Callable[[], bool],
        *,
        past: Callable[[float], bool],
    ) -> None:
        self.loop = loop
        self.quiet = quiet
        self.virtual = isinstance(loop, looptime.LoopTimeEventLoop)
        self._start = round(loop.time() * _US)
        # The check at the limit: the first whose time is past it (``past`` compares as
        # the waiting runner does: in floats, on the loop's clock).
        last = -(-round(SETTLE_LIMIT * _US) // _POLL_US)
        while not past((self._start + last * _POLL_US) / _US):
            last += 1
        self._last = last
        self._armed: int | None = None
        """The check whose timer is set (its number from the start), if any."""
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._busy = True
        """The loop ran something since the last plan."""
        self._select: Callable[[float | None], Any] | None = None

    def __enter__(self) -> _Polls:
        if self.virtual:
            # asyncio's selector loops call their selector once per pass, with how long
            # they may wait: zero while there is work, else until the next timer.
            # looptime hooks the very same call to move its clock.
            selector = self.loop._selector  # type: ignore[attr-defined]
            self._select = selector.select
            selector.select = self._on_select
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._select is not None:
            self.loop._selector.select = self._select  # type: ignore[attr-defined]
            self._select = None
        self._disarm()

    async def next(self, pending: asyncio.Future[Any] | None = None) -> None:
        """Returns at the next check that can matter, or soon after ``pending`` is done."""
        if not self.virtual:
            if pending is None:
                await asyncio.sleep(_POLL)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(pending), _POLL)
            return
        waiter = self.loop.create_future()
        self._waiter = waiter
        self._busy = True
        outer: asyncio.Future[Any] | None = None
        if pending is not None:
            outer = asyncio.shield(pending)
            outer.add_done_callback(self._release)
        try:
            await waiter
        finally:
            self._waiter = None
            self._disarm()
        if outer is None or outer.done():
            return
        # Timed out: asyncio.wait_for then cancels the shield and waits for it, two more
        # loop passes before its caller checks; so do we, to check in the same pass.
        outer.remove_done_callback(self._release)
        outer.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    def _on_timer(self) -> None:
        self._timer = None
        self._armed = None
        self._release()

    def _release(self, _: object = None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed = None

    def _on_select(self, timeout: float | None) -> Any:
        assert self._select is not None
        if timeout == 0:  # work to do
            self._busy = True
            return self._select(timeout)
        if self._busy and self._waiter is not None:
            self._busy = False
            timeout = self._plan(timeout)
        before = self.loop.time()
        events = self._select(timeout)
        # I/O, or the clock moved on to a timer that runs in this pass.
        if events or self.loop.time() != before:
            self._busy = True
        return events

    def _plan(self, timeout: float | None) -> float | None:
        """Sets the timer of the next check that can matter; returns the loop's timeout."""
        now = round(self.loop.time() * _US)
        following = (now - self._start) // _POLL_US + 1
        if self.quiet():
            check = following
        else:
            check = self._last
            if timeout is not None:
                timer = now + round(timeout * _US)
                if timer > now and (timer - self._start) % _POLL_US == 0:
                    check = (timer - self._start) // _POLL_US
        check = min(check, self._last)
        if check != self._armed:
            self._disarm()
            # The deadline the check always had: the previous check's time plus the poll.
            when = (self._start + (check - 1) * _POLL_US) / _US + _POLL
            self._timer = self.loop.call_at(when, self._on_timer)
            self._armed = check
        assert self._timer is not None
        wait = max(0.0, self._timer.when() - self.loop.time())
        return wait if timeout is None else min(timeout, wait)


def judge(
    scenario: Scenario,
    profile: Profile,
    seed: int,
    events: list[dict[str, Any]],
    *,
    run_failures: Sequence[tuple[str, str]],
    phone_errors: Mapping[str, Sequence[Error]],
    virtual_seconds: float,
) -> ScenarioResult:
    """Judges one run from its event stream, whichever engine played it.

    Args:
        scenario: The scenario.
        profile: The profile it ran under.
        seed: Its seed.
        events: The whole event stream.
        run_failures: ``(check name, text)`` for what went wrong while playing
            (``steps``, ``settles``, ``internal``).
        phone_errors: The error frames each phone received.
        virtual_seconds: Scenario time covered.
    """
    obs = observe(events, scenario.ends, profile)
    failures = [text for _, text in run_failures]
    violated = list(dict.fromkeys(name for name, _ in run_failures))
    failures.extend(obs.violations)
    violated.extend(obs.violated)
    refused = False
    for name, errors in phone_errors.items():
        ended = {s.info.call_id for s in obs.summaries.get(name, []) if s.end_cause is not None}
        for error in errors:
            if error.code == ErrorCode.UNKNOWN_CALL and error.call_id in ended:
                # Crossing frames: the phone acted on a call the server had just ended,
                # and it ended on the phone too. The protocol at work, not a fault.
                continue
            refused = True
            failures.append(f"{name} was sent an error: {error.code}: {error.message}")
    if refused:
        violated.append("errors")
    expected = scenario.expectations_for(profile.name)
    if expected is not None:
        mismatches = compare_logs(expected, obs.logs)
        failures.extend(mismatches)
        if mismatches:
            violated.append("expectations")
    return ScenarioResult(
        scenario=scenario,
        profile=profile.name,
        seed=seed,
        failures=failures,
        violated=violated,
        logs=obs.logs,
        events=events,
        virtual_seconds=virtual_seconds,
    )


def _matcher(event: Event) -> Callable[[dict[str, Any]], bool]:
    """The predicate over the event stream for a ``when:`` event."""
    phone = event.phone  # an end: the transitions' ``who``
    name = party_name(phone)  # a call's caller and callee are names

    def is_transition_of(e: dict[str, Any]) -> bool:
        return e.get("event") == "transition" and e.get("who") == phone

    match event.kind:
        case EventKind.RINGS:
            return lambda e: is_transition_of(e) and e["callee"] == name and e["to"] == "ringing"
        case EventKind.HEARS_RINGING:
            return lambda e: is_transition_of(e) and e["caller"] == name and e["to"] == "ringing"
        case EventKind.IS_IN_CALL:
            return lambda e: is_transition_of(e) and e["to"] == "answered"
        case EventKind.CALL_ENDS:
            return lambda e: is_transition_of(e) and e["to"] == "ended" and e["from"] != "new"
    raise AssertionError(f"unhandled event kind {event.kind}")
