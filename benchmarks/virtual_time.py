#!/usr/bin/env python3
"""Virtual-time speed: scenario seconds played per wall-clock second, over the library.

Plays every scenario of ``scenarios/library`` (under its own profile, or every profile with
``--profiles all``) through :func:`scenarios.runner.run_scenario`: the real websockets
server, phones and links in one virtual-time event loop. Reports the scenario seconds
covered, the wall seconds taken (each run's own, and the whole loop's including loading
the files), and their ratio; the target is at least 1000x faster than real time. Scenarios
with real media (``settings: {media: true}``) run in real time by design and are left out
(the table counts them)::

    python benchmarks/virtual_time.py [--profiles own|all] [--repeat 3] [--json virtual_time.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from scenarios.loader import discover, load_scenario
from scenarios.profiles import profile_names
from scenarios.runner import profiles_to_run, run_scenario


__all__ = ["LIBRARY", "VirtualTimeResult", "main", "run_virtual_time"]

LIBRARY: Final = Path(__file__).resolve().parent.parent / "scenarios" / "library"

TARGET: Final = 1000.0
"""Scenario seconds per wall second the issue asks for."""


@dataclass
class VirtualTimeResult:
    """What one pass (the best of ``repeat``) measured."""

    runs: int = 0
    failed: int = 0
    real_time_left_out: int = 0
    """Scenarios with real media, which run in real time and are not played here."""
    virtual_seconds: float = 0.0
    run_wall_seconds: float = 0.0
    """The sum of each run's own wall time (as ``run --format json`` reports it)."""
    total_wall_seconds: float = 0.0
    """The whole pass, loading the files included."""
    slowest: list[tuple[str, float, float]] = field(default_factory=list)
    """The five slowest runs: name, scenario seconds, wall seconds."""

    @property
    def speed(self) -> float:
        """Scenario seconds per wall second of the whole pass."""
        return self.virtual_seconds / self.total_wall_seconds if self.total_wall_seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return {
            "benchmark": "virtual_time",
            "runs": self.runs,
            "failed": self.failed,
            "real_time_left_out": self.real_time_left_out,
            "virtual_seconds": round(self.virtual_seconds, 1),
            "run_wall_seconds": round(self.run_wall_seconds, 3),
            "total_wall_seconds": round(self.total_wall_seconds, 3),
            "speed": round(self.speed, 1),
            "speed_per_run_time": round(self.virtual_seconds / self.run_wall_seconds, 1)
            if self.run_wall_seconds
            else None,
            "target": TARGET,
            "met": self.speed >= TARGET,
            "slowest": self.slowest,
        }

    def table(self) -> str:
        """The figures as a Markdown table."""
        rows = [
            ("scenario runs", f"{self.runs} ({self.failed} failed)"),
            ("left out (real media, real time)", f"{self.real_time_left_out} scenarios"),
            ("scenario time", f"{self.virtual_seconds:,.0f} s"),
            ("wall time (runs only)", f"{self.run_wall_seconds:.2f} s"),
            ("wall time (whole pass)", f"{self.total_wall_seconds:.2f} s"),
            ("speed", f"{self.speed:,.0f}x real time (target {TARGET:,.0f}x)"),
        ]
        lines = ["| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in rows]
        return "\n".join(lines)


def run_virtual_time(
    *, paths: Sequence[Path] = (LIBRARY,), all_profiles: bool = False, repeat: int = 1
) -> VirtualTimeResult:
    """Plays every scenario under ``paths``; the fastest of ``repeat`` passes is kept."""
    best: VirtualTimeResult | None = None
    for _ in range(repeat):
        result = VirtualTimeResult()
        timings: list[tuple[str, float, float]] = []
        started = time.perf_counter()
        for path in discover(list(paths)):
            scenario = load_scenario(path)
            if scenario.media:
                result.real_time_left_out += 1
                continue
            profiles = profile_names() if all_profiles else profiles_to_run(scenario, None)
            for profile in profiles:
                run = run_scenario(scenario, profile=profile)
                result.runs += 1
                result.failed += not run.passed
                result.virtual_seconds += run.virtual_seconds
                result.run_wall_seconds += run.wall_seconds
                timings.append(
                    (f"{scenario.name} [{profile}]", run.virtual_seconds, run.wall_seconds)
                )
        result.total_wall_seconds = time.perf_counter() - started
        timings.sort(key=lambda t: t[2], reverse=True)
        result.slowest = [(n, round(v, 1), round(w, 4)) for n, v, w in timings[:5]]
        if best is None or result.total_wall_seconds < best.total_wall_seconds:
            best = result
    assert best is not None
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; exit 1 if a scenario failed or the speed is under the target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[LIBRARY])
    parser.add_argument("--profiles", choices=["own", "all"], default="own")
    parser.add_argument("--repeat", type=int, default=3, help="passes; the fastest is kept")
    parser.add_argument("--json", type=Path, default=Path("virtual_time.json"))
    args = parser.parse_args(argv)
    result = run_virtual_time(
        paths=args.paths, all_profiles=args.profiles == "all", repeat=max(1, args.repeat)
    )
    print(result.table())
    args.json.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.json}")
    return 0 if result.failed == 0 and result.speed >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
