#!/usr/bin/env python3
"""Memory per idle connected phone: ``voip-sandbox serve`` holding N registered phones.

Starts the server as shipped (``voip-sandbox serve``, SQLite store; ``--memory`` for none),
reads its resident memory, connects and registers N phones from this process
(:class:`scenarios.load.PhoneFleet`, a batch at a time), waits through a heartbeat round so
that every connection has been pinged, and reads the server's memory again. Reports the
server's RSS with N phones, and the difference per phone; the target is 10,000 idle phones
in at most 300 MB::

    python benchmarks/idle_memory.py [--phones 10000] [--memory] [--json idle_memory.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from scenarios.load import PhoneFleet
from scenarios.load_process import ProcessSampler, ServerProcess, serve_command
from scenarios.profiles import DEFAULT_PROFILE, load_profile


__all__ = ["IdleMemoryResult", "main", "run_idle_memory"]

TARGET_MB: Final = 300.0
"""The server's RSS the issue allows with 10,000 idle phones."""


@dataclass
class IdleMemoryResult:
    """What one run measured."""

    phones: int
    store: str
    baseline_mb: float = 0.0
    """The server's RSS once it listens, before any phone."""
    connected_mb: float = 0.0
    """Its RSS with every phone registered, after a heartbeat round."""
    peak_mb: float = 0.0
    connect_seconds: float = 0.0
    """Connecting and registering every phone."""
    settle_seconds: float = 0.0

    @property
    def per_phone_kb(self) -> float:
        """The server's memory per idle phone, in kB (10^3 bytes)."""
        return (self.connected_mb - self.baseline_mb) * 1000 / self.phones if self.phones else 0.0

    def as_json(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return {
            "benchmark": "idle_memory",
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()},
            "per_phone_kb": round(self.per_phone_kb, 2),
            "target_mb_at_10000": TARGET_MB,
            "projected_mb_at_10000": round(self.baseline_mb + self.per_phone_kb * 10, 1),
        }

    def table(self) -> str:
        """The figures as a Markdown table."""
        rows = [
            ("idle phones", f"{self.phones:,} (server store: {self.store})"),
            (
                "server RSS before / with the phones",
                f"{self.baseline_mb:.0f} / {self.connected_mb:.0f} MB",
            ),
            ("per idle phone", f"{self.per_phone_kb:.1f} kB"),
            ("server peak RSS", f"{self.peak_mb:.0f} MB (target at 10,000: ≤ {TARGET_MB:.0f} MB)"),
            ("connecting and registering them", f"{self.connect_seconds:.1f} s"),
        ]
        lines = ["| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in rows]
        return "\n".join(lines)


async def run_idle_memory(
    phones: int = 10_000, *, memory: bool = False, settle: float | None = None
) -> IdleMemoryResult:
    """Measures the server's memory with ``phones`` idle phones.

    Args:
        phones: Phones to connect.
        memory: Run the server with ``--memory`` (no SQLite store).
        settle: Seconds to wait once every phone is registered (default: one heartbeat
            interval and a second, so that every connection has been pinged).
    """
    profile = load_profile(DEFAULT_PROFILE)
    wait = profile.timers.heartbeat_interval + 1.0 if settle is None else settle
    result = IdleMemoryResult(phones=phones, store="none (--memory)" if memory else "SQLite")
    with tempfile.TemporaryDirectory() as folder:
        store = ["--memory"] if memory else ["--db", str(Path(folder) / "idle.db")]
        process = ServerProcess(
            serve_command("--port", "0", *store), log_path=Path(folder) / "server.log"
        )
        url = await process.start()
        try:
            sampler = ProcessSampler(process.pid)
            await asyncio.sleep(0.5)  # let start-up allocations finish
            result.baseline_mb = sampler.sample().rss_bytes / 1e6
            watcher = asyncio.get_running_loop().create_task(sampler.watch())
            fleet = PhoneFleet(url, profile)
            for _ in range(phones):
                fleet.add()
            started = time.monotonic()
            await fleet.connect_all(within=60.0)
            result.connect_seconds = time.monotonic() - started
            await asyncio.sleep(wait)
            result.settle_seconds = wait
            result.connected_mb = sampler.sample().rss_bytes / 1e6
            result.peak_mb = sampler.peak_rss_bytes / 1e6
            watcher.cancel()
            await fleet.close_all()
        finally:
            await process.stop()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; exit 1 if the target is missed (projected to 10,000 phones)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phones", type=int, default=10_000)
    parser.add_argument("--memory", action="store_true", help="server with no SQLite store")
    parser.add_argument("--json", type=Path, default=Path("idle_memory.json"))
    args = parser.parse_args(argv)
    if not 1 <= args.phones <= 20_000:
        parser.error("--phones must be from 1 to 20000")
    result = asyncio.run(run_idle_memory(args.phones, memory=args.memory))
    print(result.table())
    args.json.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.json}")
    return 0 if result.as_json()["projected_mb_at_10000"] <= TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
