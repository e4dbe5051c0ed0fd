"""The simulator: the same core without I/O, giving the runner's call logs, fast."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from scenarios.loader import load_scenario, load_scenario_text
from scenarios.model import Scenario
from scenarios.profiles import ProfileError, load_profile, profile_names
from scenarios.runner import ScenarioResult, run_scenario
from scenarios.simulator import simulate


LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"
# The simulator models neither link faults, real media (Scenario.extensions) nor several
# devices per name: the
# library scenarios that use them are the real engine's alone (tests/scenarios/test_library.py).
FILES = [
    path
    for path in sorted(LIBRARY.glob("*.yaml"))
    if not (load_scenario(path).extensions or load_scenario(path).has_devices)
]
PROFILES = profile_names()


def _known_labels(profile: str) -> list[str] | None:
    try:
        return list(load_profile(profile).labels)
    except ProfileError:
        return None


def library(path: Path) -> Scenario:
    return load_scenario(path, known_labels=_known_labels)


def scenario(text: str) -> Scenario:
    return load_scenario_text(textwrap.dedent(text))


def call_logs(result: ScenarioResult) -> dict[str, list[tuple[Any, ...]]]:
    """Each phone's log as the engines must agree on it (durations to the millisecond)."""
    return {
        name: [
            (
                e.label,
                e.with_,
                e.direction,
                e.kind,
                e.reached,
                None if e.duration is None else round(e.duration, 3),
            )
            for e in log
        ]
        for name, log in result.logs.items()
    }


def call_ids(result: ScenarioResult) -> list[str]:
    return list(dict.fromkeys(e["call_id"] for e in result.events if e["event"] == "transition"))


def both(sc: Scenario, **kwargs: Any) -> tuple[ScenarioResult, ScenarioResult]:
    """The same scenario, seed and profile through the real engine and the simulator."""
    return run_scenario(sc, **kwargs), simulate(sc, **kwargs)


def assert_same(real: ScenarioResult, sim: ScenarioResult) -> None:
    assert call_logs(sim) == call_logs(real)
    assert sim.failures == real.failures
    assert call_ids(sim) == call_ids(real)


# --- The library -------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_library_scenario_passes_under_every_profile(path: Path, profile: str) -> None:
    result = simulate(library(path), profile=profile)
    assert result.passed, f"{path.name} [{profile}] failed:\n" + "\n".join(result.failures)
    assert result.profile == profile


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_library_call_logs_are_the_runners(path: Path) -> None:
    sc = library(path)
    for profile in PROFILES:
        real, sim = both(sc, seed=3, profile=profile)
        assert call_logs(sim) == call_logs(real), profile
        assert sim.failures == real.failures, profile
        assert call_ids(sim) == call_ids(real), profile


def test_the_events_are_the_runners_in_kind_and_time() -> None:
    real, sim = both(library(LIBRARY / "13-answered-caller-hangs-up.yaml"))

    def shape(result: ScenarioResult) -> list[tuple[Any, ...]]:
        kept = ("transition", "cdr", "frame", "screen", "step", "link")
        return [(e["event"], e["t"]) for e in result.events if e["event"] in kept]

    assert shape(sim) == shape(real)
    transitions = [e for e in sim.events if e["event"] == "transition"]
    assert transitions == [e for e in real.events if e["event"] == "transition"]


# --- Races: where the drivers' timing decides ------------------------------------------------

RACES = {
    "signal lost between pings": """\
        name: signal lost between pings
        settings: {heartbeat_interval: 5s, heartbeat_timeout: 5s, reconnect_grace: 10s}
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            after: 1s
            do: bob answers
          - at: 7.5s
            do: bob loses signal
          - at: 40s
            do: bob regains signal
        """,
    "signal lost at a ping": """\
        name: signal lost at a ping
        settings: {heartbeat_interval: 5s, heartbeat_timeout: 3s, reconnect_grace: 10s}
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - at: 1s
            do: bob answers
          - at: 10s
            do: alice loses signal
          - at: 14s
            do: bob hangs up
          - at: 40s
            do: alice regains signal
        """,
    "signal back during the grace": """\
        name: signal back during the grace
        settings: {heartbeat_interval: 5s, heartbeat_timeout: 5s, reconnect_grace: 10s}
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - at: 2s
            do: bob answers
          - at: 12s
            do: bob loses signal
          - at: 25s
            do: bob regains signal
          - when: bob is in call
            after: 5s
            do: alice hangs up
        """,
    "crash while ringing": """\
        name: crash while ringing
        phones: {alice: {}, bob: {}, carol: {}, dave: {power: off}}
        steps:
          - at: 0s
            do: alice calls bob
          - at: 1s
            do: carol calls dave
          - at: 3s
            do: server crashes
          - at: 4s
            do: dave powers on
        """,
    "restart during a call, hang-up while away": """\
        name: restart during a call, hang-up while away
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            do: bob answers
          - at: 12s
            do: server restarts
          - at: 12.2s
            do: alice hangs up
        """,
    "restart with a black-holed phone": """\
        name: restart with a black-holed phone
        phones: {alice: {}, bob: {}, carol: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            do: bob answers
          - at: 1s
            do: carol loses signal
          - at: 2s
            do: server restarts
          - at: 2.5s
            do: bob hangs up
        """,
    "airplane mode while ringing": """\
        name: airplane mode while ringing
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            after: 5s
            do: bob goes offline
          - at: 9s
            do: bob goes online
          - when: bob rings
            after: 2s
            do: bob answers
          - when: alice is in call
            after: 3s
            do: bob hangs up
        """,
    "airplane mode without signal": """\
        name: airplane mode without signal
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - at: 1s
            do: bob loses signal
          - at: 2s
            do: bob goes offline
          - at: 30s
            do: bob regains signal
          - at: 31s
            do: bob goes online
        """,
    "hang-up the moment the callee rings": """\
        name: hang-up the moment the callee rings
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            do: alice hangs up
        """,
    "hang-up the moment the callee picks up": """\
        name: hang-up the moment the callee picks up
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            after: 1s
            do: bob answers
          - when: bob is in call
            do: alice hangs up
        """,
    "steps that pile up at one instant": """\
        name: steps that pile up at one instant
        phones: {alice: {}, bob: {}, carol: {power: off}}
        steps:
          - at: 1s
            do: bob loses signal
          - at: 2s
            do: bob goes offline
          - at: 2.001s
            do: alice calls carol
          - at: 2.002s
            do: server crashes
          - at: 2.003s
            do: carol powers on
        """,
    # The press and the phone's end noticing the reset come in one loop iteration: the
    # runner's step was scheduled first (exploration seed 1, scenario 185).
    "a call pressed as the crash reaches the phone": """\
        name: a call pressed as the crash reaches the phone
        phones: {alice: {}, bob: {}, carol: {}}
        steps:
          - at: 1s
            do: server crashes
          - at: 1s
            do: alice loses signal
          - at: 1s
            do: bob calls carol
        """,
    # The restart's close frame and the writer's call_ended leave in one iteration: the
    # close goes first, and alice never hears of the decline (exploration seed 7, 247).
    "a restart as a decline is on its way": """\
        name: a restart as a decline is on its way
        phones: {alice: {}, bob: {}, carol: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - at: 5s
            do: bob declines
          - at: 5s
            do: carol loses signal
          - at: 5s
            do: carol regains signal
          - at: 5s
            do: server restarts
        """,
}


@pytest.mark.parametrize("profile", ["whatsapp", "signal", "element", "telegram"])
@pytest.mark.parametrize("name", list(RACES))
def test_races_end_alike_in_both_engines(name: str, profile: str) -> None:
    real, sim = both(scenario(RACES[name]), seed=11, profile=profile)
    assert_same(real, sim)


def test_the_ping_that_meets_the_black_hole_is_lost() -> None:
    # Pings at 5 s, 10 s...: lost at 10 s exactly, so found dead at 10 + 3 s.
    sim = simulate(scenario(RACES["signal lost at a ping"]))
    lost = [e for e in sim.events if e["event"] == "heartbeat"]
    assert {e["t"] for e in lost} == {13.0}
    assert [(e.label, e.duration) for e in sim.logs["alice"]] == [("dropped", 12.0)]


def test_a_restart_costs_the_phones_a_failed_attempt_and_half_a_second() -> None:
    # The successor is not listening yet when the phones come back at once.
    sim = simulate(scenario(RACES["restart during a call, hang-up while away"]))
    failed = [e["t"] for e in sim.events if e["event"] == "connection" and e["state"] == "failed"]
    opened = [e["t"] for e in sim.events if e["event"] == "connection" and e["state"] == "opened"]
    assert failed == [12.0, 12.0]
    assert opened[-2:] == [12.5, 12.5]


# --- Lenient runs, failures, determinism -----------------------------------------------------

PRESSES_THAT_DO_NOTHING = """\
    name: presses that do nothing
    phones: {alice: {}, bob: {signal: off}}
    steps:
      - at: 1s
        do: alice answers
      - at: 2s
        do: bob loses signal
      - at: 3s
        do: alice calls bob
      - when: bob rings
        do: bob answers
      - at: 40s
        do: alice hangs up
"""


def test_lenient_runs_skip_what_a_phone_cannot_do_like_the_runner() -> None:
    real, sim = both(scenario(PRESSES_THAT_DO_NOTHING), lenient=True)
    assert_same(real, sim)
    skipped = [(e["index"], e["skipped"]) for e in sim.events if "skipped" in e]
    assert skipped == [
        (0, "alice cannot answer: nothing is ringing"),
        (1, "bob has no signal already"),
        (3, "waited for 'bob rings', which never happened"),
        (4, "alice cannot hang up: it is not in a call"),
    ]
    assert skipped == [(e["index"], e["skipped"]) for e in real.events if "skipped" in e]


def test_strict_runs_stop_at_the_first_step_that_cannot_be_played() -> None:
    real, sim = both(scenario(PRESSES_THAT_DO_NOTHING))
    assert_same(real, sim)
    assert sim.failures == [
        "step 1 (line 4, 'alice answers'): alice cannot answer: nothing is ringing"
    ]
    assert not any(e["event"] == "transition" for e in sim.events)


def test_a_when_that_never_comes_fails_as_in_the_runner() -> None:
    sc = scenario(
        """\
        name: nobody rings
        phones: {alice: {}, bob: {power: off}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            do: bob answers
        """
    )
    real, sim = both(sc)
    assert_same(real, sim)
    assert (
        sim.failures[0]
        == "step 2 (line 6, 'bob answers'): waited for 'bob rings', which never happened"
    )


def test_a_run_that_never_settles_fails_as_in_the_runner() -> None:
    sc = scenario(
        """\
        name: a call nobody ends
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            do: bob answers
        """
    )
    real, sim = both(sc)
    assert_same(real, sim)
    assert sim.violated[:1] == ["settles"]
    assert sim.virtual_seconds == pytest.approx(real.virtual_seconds)


def test_the_same_seed_gives_the_same_run() -> None:
    sc = library(LIBRARY / "18-missed-calls-pile-up.yaml")
    first, second = simulate(sc, seed=5), simulate(sc, seed=5)
    assert first.events == second.events
    assert call_logs(first) == call_logs(second)


def test_seeds_make_the_runners_call_ids() -> None:
    sc = library(LIBRARY / "18-missed-calls-pile-up.yaml")
    one, other = simulate(sc, seed=1), simulate(sc, seed=2)
    assert set(call_ids(one)).isdisjoint(call_ids(other))
    assert call_logs(one) == call_logs(other)
    assert call_ids(one) == call_ids(run_scenario(sc, seed=1))


def test_the_result_is_judged_like_the_runners() -> None:
    sc = library(LIBRARY / "01-cancel-while-ringing.yaml")
    result = simulate(sc, profile="signal", seed=9)
    assert (result.scenario, result.profile, result.seed) == (sc, "signal", 9)
    assert result.passed
    assert (
        result.as_json()["phones"] == run_scenario(sc, profile="signal", seed=9).as_json()["phones"]
    )
    assert result.wall_seconds > 0


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(LIBRARY.glob("*.yaml")) if p not in FILES],
    ids=lambda p: p.name,
)
def test_the_simulator_refuses_what_it_does_not_model(path):
    from scenarios.simulator import NotSimulated

    with pytest.raises(NotSimulated, match="use the real engine"):
        simulate(load_scenario(path))
