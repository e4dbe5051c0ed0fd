"""The ``voip-sandbox`` command.

Exit codes, for every subcommand: 0 when everything passed, 1 when a scenario failed,
2 on bad input (a scenario or profile that does not load, a bad flag).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click
import structlog

from scenarios.loader import ScenarioError, discover, load_scenario
from scenarios.profiles import DEFAULT_PROFILE, ProfileError, load_profile, profile_names
from scenarios.reports import render_json, render_scenario, render_summary
from scenarios.runner import ScenarioResult, run_scenario, switchboard_settings
from signaling.server import DEFAULT_HOST, SignalingServer
from signaling.switchboard import Switchboard


__all__ = ["main"]

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _known_labels(profile: str) -> list[str] | None:
    try:
        return list(load_profile(profile).labels)
    except ProfileError:
        return None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="voip-sandbox")
def main() -> None:
    """Simulated phones, a real signaling server, and how every call ends on both ends."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed for tokens and call ids.")
@click.option(
    "--profile",
    type=click.Choice(profile_names()),
    help="Run every scenario under this label profile instead of its own.",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a block per scenario as it finishes; json: one document at the end.",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the event stream (every frame, transition, screen) as JSON lines.",
)
@click.option("-v", "--verbose", is_flag=True, help="Print each scenario's timeline.")
def run(
    paths: tuple[Path, ...],
    seed: int,
    profile: str | None,
    output: str,
    log_path: Path | None,
    verbose: bool,
) -> None:
    """Run scenario files (or folders of them) in virtual time and judge both ends' logs."""
    try:
        files = discover(paths)
        scenarios = [load_scenario(path, known_labels=_known_labels) for path in files]
    except ScenarioError as exc:
        click.echo(click.style(f"error: {exc}", fg="red"), err=True)
        sys.exit(EXIT_BAD_INPUT)
    if not scenarios:
        click.echo(f"error: no scenario files (*.yaml) in {', '.join(map(str, paths))}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    results: list[ScenarioResult] = []
    with _open_log(log_path) as log_file:
        for scenario in scenarios:
            result = run_scenario(scenario, seed=seed, profile=profile, log_file=log_file)
            results.append(result)
            if output == "text":
                click.echo(render_scenario(result, verbose=verbose))
    if output == "json":
        click.echo(render_json(results))
    else:
        click.echo(render_summary(results))
    sys.exit(0 if all(r.passed for r in results) else EXIT_FAILED)


@contextlib.contextmanager
def _open_log(path: Path | None) -> Iterator[IO[str] | None]:
    if path is None:
        yield None
        return
    try:
        handle = path.open("w", encoding="utf-8")
    except OSError as exc:
        # Bad input, found before any scenario runs: exit 2, like a bad scenario file.
        click.echo(
            click.style(f"error: cannot write the log {path}: {exc.strerror}", fg="red"), err=True
        )
        sys.exit(EXIT_BAD_INPUT)
    with handle:
        yield handle


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, help="Port to bind (0: any free one).")
@click.option(
    "--profile",
    type=click.Choice(profile_names()),
    default=DEFAULT_PROFILE,
    show_default=True,
    help="Take the dial, ring, grace and heartbeat timers from this profile.",
)
@click.option("--heartbeat-interval", type=float, help="Seconds between pings.")
@click.option("--heartbeat-timeout", type=float, help="Seconds before a silent link is dead.")
def serve(
    host: str,
    port: int,
    profile: str,
    heartbeat_interval: float | None,
    heartbeat_timeout: float | None,
) -> None:
    """Run the signaling server on its own, in real time, until Ctrl-C."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise click.BadParameter("the sandbox serves on loopback only", param_hint="--host")
    loaded = load_profile(profile)
    timers = loaded.timers
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    switchboard = Switchboard(switchboard_settings(timers, loaded))
    server = SignalingServer(
        switchboard,
        host=host,
        port=port,
        heartbeat_interval=heartbeat_interval or timers.heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout or timers.heartbeat_timeout,
    )

    async def serve_forever() -> None:
        async with server:
            click.echo(f"voip-sandbox signaling server on {server.url} (Ctrl-C to stop)", err=True)
            await asyncio.Future()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever())


@main.command()
@click.option(
    "--profile",
    type=click.Choice(profile_names()),
    help="Show only this profile (default: all).",
)
def labels(profile: str | None) -> None:
    """Print each profile's label keys, the text its app shows, and the source."""
    for name in [profile] if profile else profile_names():
        loaded = load_profile(name)
        click.echo(click.style(f"{loaded.name} ({loaded.app})", bold=True))
        width = max(len(key) for key in loaded.labels)
        for key, label in loaded.labels.items():
            click.echo(f"  {key:<{width}}  {label.text:<16}  {label.source}")
        click.echo()
