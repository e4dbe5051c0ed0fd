#!/usr/bin/env python3
"""Signaling throughput: this server against a bare Python relay and a bare Node ``ws`` relay.

Every server runs as its own process on 127.0.0.1 and is driven by the same load generator
(:func:`scenarios.load.run_load`), in the same run, with the same settings: ``N`` call pairs
placing calls back to back for ``--duration`` seconds, each call's outcome drawn from the
same seeded mix (answered, canceled while ringing, declined: the outcomes a bare relay can
do), every call judged on both ends. The servers:

- ``voip-sandbox``: ``voip-sandbox serve`` as shipped (SQLite store, every change committed
  before a frame is sent, every frame logged as JSON), rate limits raised;
- ``voip-sandbox --memory``: the same with no store (``serve --memory``);
- ``python relay``: ``benchmarks/relay_python.py``, websockets and ``json``;
- ``node relay``: ``benchmarks/relay_node.js``, Node and ``ws`` (``npm install`` into a
  temporary folder here; skipped, with the reason, when ``node`` or ``npm`` is missing).

Prints a table (calls/s, offer-to-ringing p50/p99, both processes' CPU) and the ratios of
this server to each relay, and writes everything as JSON::

    python benchmarks/throughput.py [--pairs 10,100] [--duration 10] [--json throughput.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from scenarios.load import LoadReport, LoadSettings, parse_mix, run_load
from scenarios.load_process import ServerProcess, serve_command


__all__ = ["THROUGHPUT_MIX", "Row", "ThroughputResult", "install_ws", "main", "run_throughput"]

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parent

THROUGHPUT_MIX: Final = "answer=60,cancel=25,decline=15"
"""Outcomes every server can do at once: no timers, no presence, no notices."""

SERVER_RATE: Final = "100000"
"""The raised frame-rate limit of this server (a load phone is no person)."""

OURS: Final = "voip-sandbox"
OURS_MEMORY: Final = "voip-sandbox --memory"
PYTHON_RELAY: Final = "python relay"
NODE_RELAY: Final = "node relay"
TARGETS: Final = (OURS, OURS_MEMORY, PYTHON_RELAY, NODE_RELAY)


@dataclass
class Row:
    """One server at one concurrency."""

    target: str
    pairs: int
    calls_per_second: float
    ringing_p50_ms: float | None
    ringing_p99_ms: float | None
    server_cpu_percent: float | None
    generator_cpu_percent: float | None
    calls: int
    wrong: int
    report: dict[str, Any]
    """The full load report of the median round."""
    rounds: list[float] = field(default_factory=list)
    """Calls/s of every round, in order; the row's figures are the median round's."""
    load_averages: list[float] = field(default_factory=list)
    """The machine's 1-minute load average after each round: other work on the machine
    shows here (2 cores: above 2, something else competed for them)."""


@dataclass
class ThroughputResult:
    """Every row, the ratios, and what was skipped and why."""

    duration: float
    mix: str
    repeat: int = 1
    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def row(self, target: str, pairs: int) -> Row | None:
        """The row of ``target`` at ``pairs``, if it ran."""
        return next((r for r in self.rows if r.target == target and r.pairs == pairs), None)

    def ratios(self) -> list[dict[str, Any]]:
        """This server's calls/s over each relay's, and its p99 against theirs, per pairs."""
        out = []
        for pairs in sorted({r.pairs for r in self.rows}):
            for ours in (OURS, OURS_MEMORY):
                mine = self.row(ours, pairs)
                if mine is None:
                    continue
                for relay in (PYTHON_RELAY, NODE_RELAY):
                    theirs = self.row(relay, pairs)
                    if theirs is None or not theirs.calls_per_second:
                        continue
                    out.append(
                        {
                            "pairs": pairs,
                            "server": ours,
                            "against": relay,
                            "calls_per_second_ratio": round(
                                mine.calls_per_second / theirs.calls_per_second, 3
                            ),
                            "p99_ms": [mine.ringing_p99_ms, theirs.ringing_p99_ms],
                        }
                    )
        return out

    def as_json(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return {
            "benchmark": "throughput",
            "duration": self.duration,
            "mix": self.mix,
            "repeat": self.repeat,
            "rows": [r.__dict__ for r in self.rows],
            "ratios": self.ratios(),
            "skipped": self.skipped,
        }

    def table(self) -> str:
        """The figures and ratios as Markdown tables."""

        def num(value: float | None, digits: int = 1) -> str:
            return "n/a" if value is None else f"{value:,.{digits}f}"

        lines = [
            "| server | pairs | calls/s (median) | every round | offer→ringing p50 / p99 ms | "
            "server CPU | generator CPU | calls judged wrong | load average |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            every = ", ".join(f"{x:,.0f}" for x in r.rounds)
            lines.append(
                f"| {r.target} | {r.pairs} | {num(r.calls_per_second)} | {every} | "
                f"{num(r.ringing_p50_ms, 2)} / {num(r.ringing_p99_ms, 2)} | "
                f"{num(r.server_cpu_percent, 0)}% | {num(r.generator_cpu_percent, 0)}% | "
                f"{r.wrong} of {r.calls} | {', '.join(f'{x:.1f}' for x in r.load_averages)} |"
            )
        ratios = self.ratios()
        if ratios:
            lines += ["", "| pairs | server | against | calls/s ratio | p99 ms (ours / theirs) |"]
            lines.append("|---|---|---|---|---|")
            for x in ratios:
                p99 = " / ".join(num(v, 2) for v in x["p99_ms"])
                lines.append(
                    f"| {x['pairs']} | {x['server']} | {x['against']} | "
                    f"{x['calls_per_second_ratio']:.2f}x | {p99} |"
                )
        for target, reason in self.skipped.items():
            lines.append(f"\nskipped {target}: {reason}")
        return "\n".join(lines)


def install_ws(folder: Path) -> Path | str:
    """``npm install --prefix FOLDER ws``; the ``node_modules`` folder, or why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not installed (apt-get install nodejs npm)"
    done = subprocess.run(
        ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--silent", "ws"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        return f"npm install ws failed: {done.stderr.strip()[-500:]}"
    return folder / "node_modules"


def _command(target: str, workdir: Path, node_modules: Path | None) -> list[str]:
    if target in (OURS, OURS_MEMORY):
        store = ["--memory"] if target == OURS_MEMORY else ["--db", str(workdir / "ours.db")]
        return serve_command("--port", "0", *store, "--rate", SERVER_RATE, "--burst", SERVER_RATE)
    if target == PYTHON_RELAY:
        return [sys.executable, str(HERE / "relay_python.py"), "0"]
    assert node_modules is not None
    return ["env", f"NODE_PATH={node_modules}", "node", str(HERE / "relay_node.js"), "0"]


async def _one(
    target: str, pairs: int, settings: LoadSettings, workdir: Path, node_modules: Path | None
) -> LoadReport:
    log = workdir / f"{target.replace(' ', '_').replace('-', '')}-{pairs}.log"
    process = ServerProcess(_command(target, workdir, node_modules), log_path=log, cwd=ROOT)
    if target == OURS:
        (workdir / "ours.db").unlink(missing_ok=True)
    url = await process.start()
    try:
        return await run_load(settings, server=url, server_pid=process.pid)
    finally:
        await process.stop()


async def run_throughput(
    *,
    pairs: Sequence[int] = (10, 100),
    duration: float = 10.0,
    targets: Sequence[str] = TARGETS,
    seed: int = 0,
    repeat: int = 3,
    workdir: Path | None = None,
    echo: Any = None,
) -> ThroughputResult:
    """Runs every target at every concurrency, one after the other.

    Args:
        pairs: Concurrent call pairs.
        duration: Seconds of calling per row.
        targets: Which servers (names from :data:`TARGETS`).
        seed: The outcome draws' seed, the same for every row.
        repeat: Rounds; each row reports its median round.
        workdir: Where logs, the database and ``ws`` go (a temporary folder if not given).
        echo: Called with a line of progress per row, if given.
    """
    result = ThroughputResult(duration=duration, mix=THROUGHPUT_MIX, repeat=repeat)
    with tempfile.TemporaryDirectory() as scratch:
        folder = workdir or Path(scratch)
        node_modules: Path | None = None
        if NODE_RELAY in targets:
            installed = install_ws(folder / "npm")
            if isinstance(installed, str):
                result.skipped[NODE_RELAY] = installed
            else:
                node_modules = installed
        runs: dict[tuple[str, int], list[LoadReport]] = {}
        loads: dict[tuple[str, int], list[float]] = {}
        # Rounds are interleaved (every server once, then again) so that a disturbance on
        # the machine hits each server alike; each row is its median round.
        for round_number in range(repeat):
            for n in pairs:
                settings = LoadSettings(
                    phones=2 * n, duration=duration, mix=parse_mix(THROUGHPUT_MIX), seed=seed
                )
                for target in targets:
                    if target in result.skipped:
                        continue
                    report = await _one(target, n, settings, folder, node_modules)
                    runs.setdefault((target, n), []).append(report)
                    loads.setdefault((target, n), []).append(round(os.getloadavg()[0], 2))
                    if echo is not None:
                        echo(
                            f"round {round_number + 1}: {target:>21} {n:>4} pairs: "
                            f"{report.calls_per_second:>8,.1f} calls/s, "
                            f"p99 {report.offer_to_ringing.get('p99')} ms, {report.wrong} wrong"
                        )
        for n in pairs:
            for target in targets:
                reports = runs.get((target, n))
                if not reports:
                    continue
                ordered = sorted(reports, key=lambda r: r.calls_per_second)
                median = ordered[(len(ordered) - 1) // 2]
                result.rows.append(
                    Row(
                        target=target,
                        pairs=n,
                        calls_per_second=round(median.calls_per_second, 1),
                        ringing_p50_ms=_ms(median.offer_to_ringing.get("p50")),
                        ringing_p99_ms=_ms(median.offer_to_ringing.get("p99")),
                        server_cpu_percent=median.server_cpu_percent(),
                        generator_cpu_percent=median.generator_cpu_percent(),
                        calls=sum(r.calls_placed for r in reports),
                        wrong=sum(r.wrong for r in reports),
                        report=median.as_json(),
                        rounds=[round(r.calls_per_second, 1) for r in reports],
                        load_averages=loads[(target, n)],
                    )
                )
    return result


def _ms(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; exit 1 when a call was judged wrong."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default="10,100", help="comma-separated concurrencies")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated servers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; rows show the median")
    parser.add_argument("--json", type=Path, default=Path("throughput.json"))
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",")]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    result = asyncio.run(
        run_throughput(
            pairs=[int(p) for p in args.pairs.split(",")],
            duration=args.duration,
            targets=targets,
            seed=args.seed,
            repeat=max(1, args.repeat),
            echo=lambda line: print(line, file=sys.stderr, flush=True),
        )
    )
    print(result.table())
    args.json.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.json}")
    return 1 if any(r.wrong for r in result.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
