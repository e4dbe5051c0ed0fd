"""The real-time player: play, pause, step and speed over a scenario's steps."""

from __future__ import annotations

import asyncio

import structlog

from scenarios.demo.playback import Player, PlayerState
from scenarios.loader import load_scenario_text
from scenarios.model import Step
from scenarios.observers import EventStream, event_logger


SCENARIO = """
name: three steps
phones: {alice: {}, bob: {}}
steps:
  - {at: 0s, do: alice calls bob}
  - {when: bob rings, after: 2s, do: alice hangs up}
  - {at: 4s, do: bob blocks alice}
"""


class World:
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.stream = EventStream(loop.time)
        self.log = event_logger(self.stream)
        self.done: list[str] = []
        self.changed = asyncio.Event()

    async def act(self, step: Step) -> None:
        self.done.append(step.action.text)
        if step.action.text == "alice calls bob":
            # The world answers the call with bob ringing, as a real one would.
            self.log.info("transition", who="bob", callee="bob", caller="alice", to="ringing")

    def player(self) -> Player:
        return Player(
            load_scenario_text(SCENARIO),
            stream=self.stream,
            act=self.act,
            clock=asyncio.get_running_loop().time,
            on_change=self.changed.set,
            logger=self.log,
        )


async def until(world: World, predicate, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            world.changed.clear()
            await world.changed.wait()


async def test_play_at_speed_does_every_step_in_scaled_time() -> None:
    world = World()
    player = world.player()
    player.set_speed(20)  # 4 s of script in 0.2 s
    started = asyncio.get_running_loop().time()
    player.play()
    await until(world, lambda: player.state is PlayerState.DONE)
    elapsed = asyncio.get_running_loop().time() - started
    assert world.done == ["alice calls bob", "alice hangs up", "bob blocks alice"]
    assert 0.15 < elapsed < 2.0
    steps = [e["do"] for e in world.stream.events if e.get("event") == "step"]
    assert steps == world.done
    await player.close()


async def test_step_does_one_step_at_once_then_pauses() -> None:
    world = World()
    player = world.player()
    player.step()
    await until(world, lambda: world.done == ["alice calls bob"])
    await until(world, lambda: player.state is PlayerState.PAUSED)
    player.step()  # the 2 s wait after bob rings is skipped
    await until(world, lambda: len(world.done) == 2, within=1.0)
    await until(world, lambda: player.next_index == 2)
    assert player.state is PlayerState.PAUSED
    player.step()
    await until(world, lambda: player.state is PlayerState.DONE, within=1.0)
    assert player.as_json("whatsapp")["next"] == 3
    await player.close()


async def test_pause_holds_the_script_until_play() -> None:
    world = World()
    player = world.player()
    player.set_speed(10)
    player.play()
    await until(world, lambda: world.done == ["alice calls bob"])
    player.pause()
    held_at = player.play_time
    await asyncio.sleep(0.4)  # paused: the steps' clock must not move
    assert world.done == ["alice calls bob"]
    assert player.play_time == held_at
    player.play()
    await until(world, lambda: player.state is PlayerState.DONE)
    assert len(world.done) == 3
    await player.close()


async def test_a_refused_step_ends_playback_with_the_reason() -> None:
    world = World()

    async def refuse(step: Step) -> None:
        raise ValueError("alice is off")

    world.act = refuse  # type: ignore[method-assign]
    player = world.player()
    player.play()
    await until(world, lambda: player.state is PlayerState.DONE)
    assert player.failure == "step 1 ('alice calls bob'): alice is off"
    await player.close()


def test_speed_out_of_range_is_refused() -> None:
    async def main() -> None:
        player = World().player()
        try:
            player.set_speed(0)
        except ValueError as exc:
            assert "between 0.1 and 100" in str(exc)
        else:
            raise AssertionError("speed 0 accepted")

    asyncio.run(main())
    structlog.reset_defaults()
