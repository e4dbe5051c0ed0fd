"""Exploration: random scenarios, every check on both ends, failures shrunk to a file.

Hand-written scenarios find the bugs their authors thought of. Exploration generates
scenarios from a seed (:mod:`scenarios.generator`), plays each in an engine — the pure
in-memory simulator (:mod:`scenarios.simulator`, fast) or the real one (the websockets
server, phones and links in virtual time, as ``voip-sandbox run`` plays them) — and judges
it by the invariants alone. A scenario that fails is shrunk: steps, phones, starting
states, settings and time gaps are taken away one at a time for as long as the same check
still fails, and the smallest scenario left is written as a scenario file that
``voip-sandbox run --lenient --seed S`` reproduces.

Generated timelines contain presses that do nothing (answering with nothing ringing):
exploration plays *leniently*, skipping them, as a person's phone would.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from scenarios.generator import generate
from scenarios.model import Action, Scenario, Settings, Step, Verb
from scenarios.runner import ScenarioResult, run_scenario
from scenarios.simulator import simulate
from scenarios.writer import scenario_to_yaml


__all__ = [
    "Engine",
    "ExplorationReport",
    "Finding",
    "Played",
    "explore",
    "play",
    "play_generated",
    "scenario_seed",
    "shrink",
    "with_closing_hangups",
    "write_reproducer",
]

Engine = Literal["sim", "real"]
"""Which engine plays a scenario: the in-memory simulator or the real drivers."""

SHRINK_BUDGET = 400
"""Runs a shrink may spend: enough for a dozen steps several times over."""


def play(scenario: Scenario, engine: Engine, *, seed: int, profile: str | None) -> ScenarioResult:
    """Plays a scenario leniently in one engine."""
    if engine == "sim":
        return simulate(scenario, seed=seed, profile=profile, lenient=True)
    return run_scenario(scenario, seed=seed, profile=profile, lenient=True)


def scenario_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th scenario of an exploration seeded ``seed``."""
    return seed * 1_000_003 + index


@dataclass
class Finding:
    """A scenario that failed a check, and its shrunk form.

    Attributes:
        seed: The scenario's seed (it generated the scenario and seeds its run).
        check: The name of the first check that failed.
        failure: That check's first failure text.
        scenario: The scenario as generated.
        shrunk: The smallest scenario found that still fails ``check``.
        shrunk_failure: Its failure text.
        runs: How many runs the shrink took.
    """

    seed: int
    check: str
    failure: str
    scenario: Scenario
    shrunk: Scenario | None = None
    shrunk_failure: str = ""
    runs: int = 0


@dataclass
class ExplorationReport:
    """What an exploration saw."""

    engine: Engine
    seed: int
    scenarios: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    """Label counts over every phone's log, across all scenarios."""
    violations: Counter[str] = field(default_factory=Counter)
    """Failed checks, by name."""
    findings: list[Finding] = field(default_factory=list)
    """The first failing scenario of each check, shrunk."""
    virtual_seconds: float = 0.0


CHUNK = 200
"""Scenarios a worker plays per task when exploration runs on several processes: large
enough that handing out tasks costs nothing, small enough for a lively progress bar."""


@dataclass(frozen=True, slots=True)
class Played:
    """What exploration keeps of one played scenario: small, so it crosses processes cheaply.

    Attributes:
        index: The scenario's index in the exploration.
        virtual_seconds: Scenario time it covered.
        labels: Every phone's log labels (``"in progress"`` for an entry with none).
        violated: The names of the checks it failed, first first.
        failure: The first failure text, or ``""``.
    """

    index: int
    virtual_seconds: float
    labels: tuple[str, ...]
    violated: tuple[str, ...]
    failure: str


def play_generated(seed: int, index: int, engine: Engine, profile: str | None) -> Played:
    """Generates the ``index``-th scenario of an exploration seeded ``seed`` and plays it."""
    s = scenario_seed(seed, index)
    result = play(
        with_closing_hangups(generate(s, profile=profile)), engine, seed=s, profile=profile
    )
    return Played(
        index=index,
        virtual_seconds=result.virtual_seconds,
        labels=tuple(
            entry.label or "in progress" for entries in result.logs.values() for entry in entries
        ),
        violated=tuple(result.violated),
        failure=result.failures[0] if result.failures else "",
    )


def _play_range(task: tuple[int, int, int, Engine, str | None]) -> list[Played]:
    """A worker's task: the scenarios ``start`` to ``stop`` of an exploration."""
    seed, start, stop, engine, profile = task
    return [play_generated(seed, index, engine, profile) for index in range(start, stop)]


def _played(
    seed: int, count: int, engine: Engine, profile: str | None, jobs: int
) -> Iterator[list[Played]]:
    """Every scenario played, in index order, in batches (one per scenario when ``jobs`` is 1)."""
    if jobs <= 1:
        for index in range(count):
            yield [play_generated(seed, index, engine, profile)]
        return
    tasks = [
        (seed, start, min(start + CHUNK, count), engine, profile)
        for start in range(0, count, CHUNK)
    ]
    # spawn, not fork: a forked child would inherit whatever loop, threads or open sockets
    # the caller has (the pytest plugin, a demo); the cost is one import per worker.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        # map() hands the batches back in order, so the report is the same for any jobs.
        yield from pool.map(_play_range, tasks)


def explore(
    *,
    seed: int,
    count: int,
    engine: Engine = "sim",
    profile: str | None = None,
    shrink_findings: bool = True,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> ExplorationReport:
    """Generates and plays ``count`` scenarios; shrinks the first failure of each check.

    Args:
        seed: The exploration's seed: the same seed explores the same scenarios.
        count: How many scenarios.
        engine: Which engine plays them.
        profile: Every scenario under this profile (else each gets a random one).
        shrink_findings: Shrink each check's first failing scenario.
        jobs: How many processes play them (the report is the same for any number).
        progress: Called as scenarios finish, with how many have been played so far.

    Raises:
        ValueError: ``count`` or ``jobs`` is less than 1.
    """
    if count < 1 or jobs < 1:
        raise ValueError(f"count and jobs must be at least 1 (count={count}, jobs={jobs})")
    report = ExplorationReport(engine=engine, seed=seed)
    for batch in _played(seed, count, engine, profile, jobs):
        _tally(report, batch, profile)
        if progress is not None:
            progress(report.scenarios)
    if shrink_findings:
        for finding in report.findings:
            shrunk, result, runs = shrink(
                finding.scenario,
                finding.check,
                engine=engine,
                seed=finding.seed,
                profile=profile,
            )
            finding.shrunk, finding.runs = shrunk, runs
            finding.shrunk_failure = next((text for text in result.failures), finding.failure)
    return report


def _tally(report: ExplorationReport, batch: Iterable[Played], profile: str | None) -> None:
    """Adds played scenarios to the report; the first failure of each check is a finding."""
    for played in batch:
        report.scenarios += 1
        report.virtual_seconds += played.virtual_seconds
        report.outcomes.update(played.labels)
        report.violations.update(played.violated)
        if played.violated and played.violated[0] not in {f.check for f in report.findings}:
            s = scenario_seed(report.seed, played.index)
            # Generated again rather than sent back by a worker: the same seed gives the
            # same scenario, and only the few findings need it.
            scenario = with_closing_hangups(generate(s, profile=profile))
            report.findings.append(Finding(s, played.violated[0], played.failure, scenario))


def with_closing_hangups(scenario: Scenario) -> Scenario:
    """Ends a timeline with every phone hanging up, a second after its last ``at`` step.

    An answered call that nobody ends goes on forever, rightly: without this, liveness
    could not be told from two people still talking. Presses with nothing to hang up are
    skipped, as every impossible press is when exploring.
    """
    last_at = max((step.at for step in scenario.steps if step.at is not None), default=0.0)
    closing_at = round(last_at + 1.0, 3)
    line = max((step.line for step in scenario.steps), default=0)
    closing = tuple(
        Step(
            index=len(scenario.steps) + offset,
            line=line + 1 + offset,
            at=closing_at,
            when=None,
            after=0.0,
            action=Action(Verb.HANGS_UP, name, None, f"{name} hangs up"),
        )
        for offset, name in enumerate(scenario.phones)
    )
    return dataclasses.replace(scenario, steps=scenario.steps + closing)


# --- Shrinking ---------------------------------------------------------------------------------


def shrink(
    scenario: Scenario,
    check: str,
    *,
    engine: Engine,
    seed: int,
    profile: str | None,
    budget: int = SHRINK_BUDGET,
) -> tuple[Scenario, ScenarioResult, int]:
    """Takes away what a failing scenario does not need to fail ``check``.

    Candidates are tried in order — drop a step, drop a phone, reset a phone's start,
    drop a block, drop a setting, shorten a gap — and each one that still fails the
    same check is kept, until a whole pass keeps nothing or the budget is spent.

    Returns:
        The smallest failing scenario found, its result, and the runs spent.
    """
    runs = 0
    best = scenario
    best_result = play(best, engine, seed=seed, profile=profile)
    runs += 1
    if check not in best_result.violated:
        return best, best_result, runs  # it does not fail (as given): nothing to shrink
    progress = True
    while progress and runs < budget:
        progress = False
        for candidate in _candidates(best):
            if runs >= budget:
                break
            result = play(candidate, engine, seed=seed, profile=profile)
            runs += 1
            if check in result.violated:
                best, best_result, progress = candidate, result, True
                break  # restart from the smaller scenario: earlier cuts may work now
    return best, best_result, runs


def _candidates(scenario: Scenario) -> Iterator[Scenario]:
    steps = scenario.steps
    # Later steps first: removing them leaves the earlier timeline (and its cause) intact.
    for index in reversed(range(len(steps))):
        yield _with_steps(scenario, steps[:index] + steps[index + 1 :])
    used = {name for step in steps for name in _names_in(step)}
    for name in scenario.phones:
        if name not in used and len(scenario.phones) > 2:
            yield _without_phone(scenario, name)
    for name, spec in scenario.phones.items():
        if not (spec.power and spec.signal and spec.online):
            phones = dict(scenario.phones)
            phones[name] = dataclasses.replace(spec, power=True, signal=True, online=True)
            yield dataclasses.replace(scenario, phones=phones)
        for blocked in spec.blocks:
            phones = dict(scenario.phones)
            phones[name] = dataclasses.replace(
                spec, blocks=tuple(b for b in spec.blocks if b != blocked)
            )
            yield dataclasses.replace(scenario, phones=phones)
    for key, value in dataclasses.asdict(scenario.settings).items():
        if value is not None:
            settings = dataclasses.replace(scenario.settings, **{key: None})
            yield dataclasses.replace(scenario, settings=settings)
    yield from _shorter_gaps(scenario)


def _shorter_gaps(scenario: Scenario) -> Iterator[Scenario]:
    """Halves the wait before one step (an ``at`` gap, or an ``after``), keeping the order."""
    steps = list(scenario.steps)
    previous_at = 0.0
    for index, step in enumerate(steps):
        if step.at is not None:
            gap = step.at - previous_at
            if gap >= 0.002:
                shorter = round(gap / 2, 3)
                moved = [
                    dataclasses.replace(s, at=round(s.at - shorter, 3)) if s.at is not None else s
                    for s in steps[index:]
                ]
                yield _with_steps(scenario, tuple(steps[:index] + moved))
            previous_at = step.at
        elif step.after >= 0.002:
            changed = dataclasses.replace(step, after=round(step.after / 2, 3))
            yield _with_steps(scenario, (*steps[:index], changed, *steps[index + 1 :]))


def _with_steps(scenario: Scenario, steps: tuple[Step, ...]) -> Scenario:
    renumbered = tuple(dataclasses.replace(s, index=i) for i, s in enumerate(steps))
    return dataclasses.replace(scenario, steps=renumbered)


def _names_in(step: Step) -> set[str]:
    names = {step.action.actor, step.action.target}
    if step.when is not None:
        names.add(step.when.phone)
    return {name for name in names if name is not None}


def _without_phone(scenario: Scenario, name: str) -> Scenario:
    phones = {
        other: dataclasses.replace(spec, blocks=tuple(b for b in spec.blocks if b != name))
        for other, spec in scenario.phones.items()
        if other != name
    }
    return dataclasses.replace(scenario, phones=phones)


# --- Reproducers -------------------------------------------------------------------------------


def write_reproducer(finding: Finding, directory: Path, *, engine: Engine) -> Path:
    """Writes a finding's shrunk scenario as a scenario file; returns its path."""
    scenario = finding.shrunk or finding.scenario
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{finding.check}-{finding.seed}.yaml"
    scenario = dataclasses.replace(
        scenario,
        name=f"{finding.check} (found from seed {finding.seed})",
        about=finding.shrunk_failure or finding.failure,
        path=str(path),
        settings=scenario.settings if scenario.settings != Settings() else Settings(),
    )
    comment = (
        f"Found by exploration ({engine} engine), shrunk from {len(finding.scenario.steps)} to "
        f"{len(scenario.steps)} steps in {finding.runs} runs.\n"
        f"Check that fails: {finding.check}\n"
        f"Reproduce: voip-sandbox run {path} --lenient --seed {finding.seed}"
    )
    path.write_text(scenario_to_yaml(scenario, comment=comment), encoding="utf-8")
    return path
