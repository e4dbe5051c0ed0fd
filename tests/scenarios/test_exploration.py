"""Exploration: generated scenarios, both engines, shrinking, reproducers."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios import exploration
from scenarios.exploration import (
    explore,
    play,
    scenario_seed,
    shrink,
    with_closing_hangups,
    write_reproducer,
)
from scenarios.generator import generate
from scenarios.loader import load_scenario
from scenarios.runner import run_scenario
from signaling import calls
from signaling.calls import CallState, Cause


AGREEMENT_SEEDS = range(60)

LIVENESS = {"every_call_ends_on_every_end", "settles", "screens_come_to_rest"}


def _log_lines(result):
    return {
        phone: [
            (
                e.label,
                e.with_,
                e.direction,
                e.kind,
                e.reached,
                None if e.duration is None else round(e.duration, 3),
            )
            for e in entries
        ]
        for phone, entries in result.logs.items()
    }


@pytest.mark.parametrize("index", AGREEMENT_SEEDS)
def test_both_engines_label_generated_scenarios_alike(index):
    seed = scenario_seed(7, index)
    scenario = with_closing_hangups(generate(seed))
    sim = play(scenario, "sim", seed=seed, profile=None)
    real = play(scenario, "real", seed=seed, profile=None)
    assert _log_lines(sim) == _log_lines(real)
    assert sim.violated == real.violated


def test_exploration_reaches_the_outcomes_that_matter():
    report = explore(seed=3, count=300, engine="sim", shrink_findings=False)
    assert report.scenarios == 300
    for label in ("canceled", "missed", "outgoing", "incoming"):
        assert report.outcomes[label] > 0, report.outcomes


@pytest.fixture
def planted_bug(monkeypatch):
    """A copy of the transition table with one transition wrong: a cancel while ringing
    "answers" the call instead of ending it (for every party: phones and server)."""
    planted = {state: dict(causes) for state, causes in calls.TRANSITIONS.items()}
    planted[CallState.RINGING][Cause.CANCELED] = CallState.ANSWERED
    monkeypatch.setattr(calls, "TRANSITIONS", planted)


@pytest.mark.usefixtures("planted_bug")
def test_exploration_finds_a_planted_bug_and_shrinks_it_to_a_few_steps(tmp_path: Path):
    report = explore(seed=1, count=200, engine="sim")
    # A cancel that "answers" leaves calls that never end: a liveness check catches it.
    planted = [f for f in report.findings if f.check in LIVENESS]
    assert planted, f"the planted bug went unnoticed: {report.violations}"
    finding = planted[0]
    assert finding.shrunk is not None
    assert len(finding.shrunk.steps) <= 4, finding.shrunk.steps
    assert (
        len(finding.shrunk.steps) < len(finding.scenario.steps) or len(finding.scenario.steps) <= 4
    )
    # The reproducer is a scenario file that the real engine fails the same way.
    path = write_reproducer(finding, tmp_path, engine="sim")
    reloaded = load_scenario(path)
    result = run_scenario(reloaded, seed=finding.seed, lenient=True)
    assert finding.check in result.violated, result.failures
    text = path.read_text(encoding="utf-8")
    assert f"--lenient --seed {finding.seed}" in text


def test_shrinking_keeps_the_failing_check(planted_bug):
    report = explore(seed=1, count=200, engine="sim", shrink_findings=False)
    finding = next(f for f in report.findings if f.check in LIVENESS)
    shrunk, result, runs = shrink(
        finding.scenario, finding.check, engine="sim", seed=finding.seed, profile=None
    )
    assert finding.check in result.violated
    assert runs <= exploration.SHRINK_BUDGET
    assert len(shrunk.steps) <= len(finding.scenario.steps)


def test_a_scenario_that_passes_is_not_shrunk():
    seed = scenario_seed(3, 0)
    scenario = generate(seed)
    shrunk, result, runs = shrink(scenario, "settles", engine="sim", seed=seed, profile=None)
    assert (shrunk, runs) == (scenario, 1)
    assert "settles" not in result.violated


def test_several_processes_give_the_report_one_process_gives():
    count = exploration.CHUNK + 40  # two batches, the second one short
    seen: list[int] = []
    one = explore(seed=5, count=count, engine="sim", shrink_findings=False)
    two = explore(
        seed=5, count=count, engine="sim", shrink_findings=False, jobs=2, progress=seen.append
    )
    assert two.scenarios == one.scenarios == count
    assert two.outcomes == one.outcomes and sum(one.outcomes.values()) > count
    assert (two.violations, two.virtual_seconds) == (one.violations, one.virtual_seconds)
    assert [(f.seed, f.check, f.failure) for f in two.findings] == [
        (f.seed, f.check, f.failure) for f in one.findings
    ]
    assert seen == [exploration.CHUNK, count]  # progress in batches, in order


def test_exploration_refuses_no_scenarios_or_no_processes():
    with pytest.raises(ValueError, match="at least 1"):
        explore(seed=1, count=0)
    with pytest.raises(ValueError, match="at least 1"):
        explore(seed=1, count=1, jobs=0)
