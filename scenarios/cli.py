"""The ``voip-sandbox`` command.

Exit codes, for every subcommand: 0 when everything passed, 1 when a scenario failed,
2 on bad input (a scenario or profile that does not load, a bad flag).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Literal, Never

import click
import msgspec
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from scenarios.profiles import (
    DEFAULT_PROFILE,
    ProfileError,
    load_profile,
    profile_names,
    switchboard_settings,
)
from signaling.server import DEFAULT_HOST, DEFAULT_MAX_FRAME_SIZE, SignalingServer
from signaling.store import MemoryStore, SqliteStore, Store
from signaling.switchboard import Switchboard, SwitchboardLimits


# What only `run` needs is imported inside it: the runner brings the phones' client, hence
# aiortc and PyAV, and looptime (hence pytest); the loader brings the phones' link. That is
# ~50 MB that `serve` must not carry: the idle-memory budget is per server process.
if TYPE_CHECKING:
    from scenarios.model import Scenario
    from scenarios.runner import ScenarioResult


__all__ = ["main"]

_DEFAULT_LIMITS = SwitchboardLimits()

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
    "--profiles",
    "profile_list",
    metavar="NAMES",
    help="Run every scenario under each of these profiles (comma-separated, or 'all'). "
    "Default: the scenario's own profile and those of its expect_profiles.",
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
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write an HTML report (index.html) and each run's Mermaid ladder (*.mmd) here.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write JUnit XML: one test case per scenario and profile.",
)
@click.option(
    "--lenient",
    is_flag=True,
    help="Skip a step that cannot be done (answering with nothing ringing) instead of "
    "failing: how exploration plays, for its reproducers.",
)
@click.option("-v", "--verbose", is_flag=True, help="Print each scenario's timeline.")
def run(
    paths: tuple[Path, ...],
    seed: int,
    profile: str | None,
    profile_list: str | None,
    output: str,
    log_path: Path | None,
    report_dir: Path | None,
    junit_path: Path | None,
    lenient: bool,
    verbose: bool,
) -> None:
    """Run scenario files (or folders of them) in virtual time and judge both ends' logs."""
    from scenarios.loader import ScenarioError, discover, load_scenario
    from scenarios.reports import render_json, render_scenario, render_summary
    from scenarios.runner import run_scenario

    requested = _requested_profiles(profile, profile_list)
    try:
        files = discover(paths)
        scenarios = [load_scenario(path, known_labels=_known_labels) for path in files]
    except ScenarioError as exc:
        _bad_input(str(exc))
    if not scenarios:
        _bad_input(f"no scenario files (*.yaml) in {', '.join(map(str, paths))}")
    plan = [(scenario, _profiles_of(scenario, requested)) for scenario in scenarios]
    if report_dir is not None:
        _prepare_folder(report_dir)
    results: list[ScenarioResult] = []
    with (
        _open_for_writing(log_path, "the log") as log_file,
        _open_for_writing(junit_path, "the JUnit file") as junit_file,
    ):
        with _Progress(sum(len(names) for _, names in plan)) as progress:
            for scenario, names in plan:
                for name in names:
                    progress.running(f"{scenario.name} [{name}]")
                    result = run_scenario(
                        scenario, seed=seed, profile=name, log_file=log_file, lenient=lenient
                    )
                    results.append(result)
                    progress.finished()
                    if output == "text":
                        several = len(names) > 1
                        click.echo(render_scenario(result, verbose=verbose, show_profile=several))
        click.echo(render_json(results) if output == "json" else render_summary(results))
        # The files last: one that fails to be written exits 2, after the runs are told.
        if junit_file is not None:
            _write(f"the JUnit file {junit_path}", lambda: _write_junit(junit_file, results))
    if report_dir is not None:
        _write(f"the report to {report_dir}", lambda: _write_report(report_dir, results))
    sys.exit(0 if all(r.passed for r in results) else EXIT_FAILED)


def _bad_input(message: str) -> Never:
    """Bad input (a file, a flag): says what is wrong on stderr and exits 2."""
    click.echo(click.style(f"error: {message}", fg="red"), err=True)
    sys.exit(EXIT_BAD_INPUT)


def _requested_profiles(single: str | None, names: str | None) -> list[str] | None:
    """The profiles asked for on the command line; ``None`` when none was."""
    if single is not None and names is not None:
        _bad_input("--profile and --profiles cannot be used together")
    if single is not None:
        return [single]
    if names is None:
        return None
    known = profile_names()
    if names.strip() == "all":
        return known
    requested = [name.strip() for name in names.split(",")]
    if not all(requested):
        _bad_input(f"--profiles {names!r}: an empty name (write NAME,NAME or 'all')")
    unknown = [name for name in requested if name not in known]
    if unknown:
        _bad_input(
            f"--profiles: unknown profile{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; known profiles: {', '.join(known)}, or 'all'"
        )
    return list(dict.fromkeys(requested))


def _profiles_of(scenario: Scenario, requested: Sequence[str] | None) -> list[str]:
    """The profiles ``scenario`` runs under (:func:`~scenarios.runner.profiles_to_run`)."""
    from scenarios import runner  # through the module: a test can stand in for the function

    names = runner.profiles_to_run(scenario, requested)
    known = profile_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        _bad_input(
            f"{scenario.path}: unknown profile {', '.join(map(repr, unknown))}; "
            f"known profiles: {', '.join(known)}"
        )
    return names


def _prepare_folder(path: Path) -> None:
    """Makes the report folder before anything runs, so a bad one is found at once."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _bad_input(f"cannot write the report to {path}: {exc.strerror or exc}")
    if not os.access(path, os.W_OK | os.X_OK):  # found now rather than after every run
        _bad_input(f"cannot write the report to {path}: permission denied")


def _write_report(folder: Path, results: Sequence[ScenarioResult]) -> None:
    from scenarios import reports  # through the module: a test can stand in for the function

    reports.write_html_report(folder, results)
    reports.write_mermaid_files(folder, results)


def _write_junit(handle: IO[str], results: Sequence[ScenarioResult]) -> None:
    from scenarios.reports import render_junit

    handle.write(render_junit(results))
    handle.flush()


def _write(what: str, write: Callable[[], None]) -> None:
    """Writes an output after the runs; failing to is bad input (exit 2), not a crash."""
    try:
        write()
    except OSError as exc:
        _bad_input(f"cannot write {what}: {exc.strerror or exc}")


@contextlib.contextmanager
def _open_for_writing(path: Path | None, what: str) -> Iterator[IO[str] | None]:
    """Opens an output file before any scenario runs: a bad path is bad input (exit 2)."""
    if path is None:
        yield None
        return
    try:
        handle = path.open("w", encoding="utf-8")
    except OSError as exc:
        _bad_input(f"cannot write {what} {path}: {exc.strerror or exc}")
    with handle:
        yield handle


class _Progress:
    """A progress bar on stderr while several runs go on, gone when they are done.

    Shown only when stderr is a terminal, so pipes, CI logs and tests never see it. If
    stdout is that terminal too, what is echoed meanwhile is printed above the bar.
    """

    def __init__(self, total: int) -> None:
        self.bar: Progress | None = None
        if total > 1 and sys.stderr.isatty():
            self.bar = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=sys.stderr),
                transient=True,
                redirect_stdout=sys.stdout.isatty(),
                redirect_stderr=False,
            )
            self.task = self.bar.add_task("", total=total)

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def running(self, description: str) -> None:
        """Names the run that starts now."""
        if self.bar is not None:
            self.bar.update(self.task, description=description)

    def finished(self) -> None:
        """Counts the run that just ended."""
        if self.bar is not None:
            self.bar.advance(self.task)

    def reached(self, done: int) -> None:
        """Shows that ``done`` runs have ended (for work that finishes in batches)."""
        if self.bar is not None:
            self.bar.update(self.task, completed=done)


def _json_line(event: Mapping[str, Any], *, default: Callable[[Any], Any]) -> bytes:
    """``json.dumps`` for structlog's JSONRenderer, done by msgspec (~14x faster).

    Under load ``serve`` logs several events per call, and rendering them with the
    standard library's ``json`` was most of the log's cost. The events it logs hold only
    strings, numbers, booleans and ``None``, which both write as the same JSON (msgspec
    without the spaces after separators, and non-ASCII as UTF-8 rather than escaped);
    anything else still goes through structlog's ``default``, as with ``json.dumps``.
    """
    return msgspec.json.encode(event, enc_hook=default)


class _LinesPerLoopPass:
    """The end of ``serve``'s event log: one line per event, written once per loop pass.

    structlog's own loggers write and flush each event, a system call per event: 9% of
    the server's time under load. This one keeps the lines logged during one pass of the
    event loop and writes them together from a callback that the loop runs in its next
    pass; with no loop running, a line is written at once. Nothing is dropped or
    reordered; :meth:`write_pending` writes what is left when the server stops. (A
    process killed outright loses the lines of its last pass, under a millisecond.)

    Args:
        file: Where the lines go.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._pending: list[bytes] = []

    def msg(self, message: bytes) -> None:
        """Logs one rendered event."""
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.write_pending)
            except RuntimeError:  # no loop: nothing would call write_pending
                self._file.write(message + b"\n")
                self._file.flush()
                return
        self._pending.append(message + b"\n")

    # The methods a structlog bound logger calls for each level.
    debug = info = warning = error = critical = exception = msg

    def write_pending(self) -> None:
        """Writes the lines logged so far."""
        if self._pending:
            lines, self._pending = self._pending, []
            self._file.write(b"".join(lines))
            self._file.flush()


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
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("voip-sandbox.db"),
    show_default=True,
    help="SQLite file for accounts, blocks, missed-call notices and call records.",
)
@click.option("--memory", is_flag=True, help="Keep nothing on disk (state dies with the process).")
@click.option(
    "--sync",
    type=click.Choice(["NORMAL", "FULL"]),
    default="NORMAL",
    show_default=True,
    help="NORMAL survives a killed process; FULL also a power loss (an fsync per change).",
)
@click.option(
    "--max-frame-size",
    type=int,
    default=DEFAULT_MAX_FRAME_SIZE,
    show_default=True,
    help="Largest frame in bytes; a larger one closes the connection (1009).",
)
@click.option(
    "--rate",
    type=float,
    default=_DEFAULT_LIMITS.messages_per_second,
    show_default=True,
    help="Frames per second per connection (bursts up to --burst).",
)
@click.option("--burst", type=int, default=_DEFAULT_LIMITS.burst, show_default=True)
@click.option(
    "--max-calls",
    type=int,
    default=_DEFAULT_LIMITS.max_calls_per_phone,
    show_default=True,
    help="Calls in progress a phone may be party to.",
)
@click.option(
    "--max-notices",
    type=int,
    default=_DEFAULT_LIMITS.max_pending_notices,
    show_default=True,
    help="Missed-call notices kept per phone; the oldest goes first.",
)
@click.option(
    "--register-timeout",
    type=float,
    default=_DEFAULT_LIMITS.register_timeout,
    show_default=True,
    help="Seconds a connection has to register.",
)
def serve(
    host: str,
    port: int,
    profile: str,
    heartbeat_interval: float | None,
    heartbeat_timeout: float | None,
    db_path: Path,
    memory: bool,
    sync: str,
    max_frame_size: int,
    rate: float,
    burst: int,
    max_calls: int,
    max_notices: int,
    register_timeout: float,
) -> None:
    """Run the signaling server on its own, in real time, until Ctrl-C.

    State is kept in a SQLite file (--db): after a crash, the server starts again from
    it, ends the calls that were in progress, and still delivers every missed-call notice.
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise click.BadParameter("the sandbox serves on loopback only", param_hint="--host")
    loaded = load_profile(profile)
    timers = loaded.timers
    event_lines = _LinesPerLoopPass(sys.stderr.buffer)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(serializer=_json_line),
        ],
        logger_factory=lambda *names: event_lines,
        # Every frame in and out is logged: binding the server's logger once, rather than
        # on each event through structlog's lazy proxy, was 8% of the server's time.
        cache_logger_on_first_use=True,
    )
    try:
        synchronous: Literal["NORMAL", "FULL"] = "FULL" if sync == "FULL" else "NORMAL"
        store: Store = MemoryStore() if memory else SqliteStore(db_path, synchronous=synchronous)
    except (OSError, ValueError) as exc:  # sqlite3 errors are reported as ValueError by the store
        click.echo(
            click.style(f"error: cannot open the store {db_path}: {exc}", fg="red"), err=True
        )
        sys.exit(EXIT_BAD_INPUT)
    limits = SwitchboardLimits(
        messages_per_second=rate,
        burst=burst,
        max_calls_per_phone=max_calls,
        max_pending_notices=max_notices,
        register_timeout=register_timeout,
    )
    switchboard = Switchboard(
        switchboard_settings(timers, loaded), limits=limits, durable=store.load()
    )
    server = SignalingServer(
        switchboard,
        host=host,
        port=port,
        heartbeat_interval=heartbeat_interval or timers.heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout or timers.heartbeat_timeout,
        store=store,
        max_frame_size=max_frame_size,
    )

    async def serve_forever() -> None:
        # Calls that were in progress when the last process died end now, on this clock.
        switchboard.recover(server.now())
        async with server:
            kept = "in memory only" if memory else f"kept in {db_path}"
            click.echo(
                f"voip-sandbox signaling server on {server.url}, state {kept} (Ctrl-C to stop)",
                err=True,
            )
            await asyncio.Future()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_forever())
    finally:
        store.close()
        event_lines.write_pending()


@main.command()
@click.option(
    "--seed", default=0, show_default=True, help="The same seed explores the same scenarios."
)
@click.option("--count", default=1000, show_default=True, help="How many scenarios to generate.")
@click.option(
    "--engine",
    type=click.Choice(["sim", "real"]),
    default="sim",
    show_default=True,
    help="sim: the in-memory simulator (fast); real: the websockets server and phones.",
)
@click.option(
    "--profile",
    type=click.Choice(profile_names()),
    help="Every scenario under this profile (default: a random one each).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("explore-findings"),
    show_default=True,
    help="Where the shrunk reproducers are written.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes that play scenarios side by side (the results do not depend on it).",
)
def explore(
    seed: int, count: int, engine: str, profile: str | None, out_dir: Path, jobs: int
) -> None:
    """Play random scenarios, check every invariant on both ends, shrink what fails.

    Exit 0 when every scenario held, 1 when one failed (its shrunk reproducer is in --out).
    """
    from scenarios import exploration  # the generator and simulator load only when needed

    if count < 1:
        _bad_input("--count must be at least 1")
    chosen: exploration.Engine = "real" if engine == "real" else "sim"
    started = time.perf_counter()
    with _Progress(total=count) as bar:
        bar.running(f"exploring ({engine} engine)")
        report = exploration.explore(
            seed=seed,
            count=count,
            engine=chosen,
            profile=profile,
            jobs=jobs,
            progress=bar.reached,
        )
    elapsed = time.perf_counter() - started
    rate = report.scenarios / elapsed if elapsed > 0 else float("inf")
    processes = f", {jobs} processes" if jobs > 1 else ""
    click.echo(
        f"{report.scenarios} scenarios ({engine} engine{processes}, seed {seed}) "
        f"in {elapsed:.1f}s: "
        f"{rate:,.0f} scenarios/s, {report.virtual_seconds:,.0f}s of scenario time"
    )
    outcomes = ", ".join(f"{label} {n}" for label, n in report.outcomes.most_common())
    click.echo(f"outcomes seen: {outcomes or 'none'}")
    if not report.findings:
        click.echo(click.style("no invariant violated", fg="green"))
        sys.exit(0)
    violations = ", ".join(f"{check} {n}" for check, n in report.violations.most_common())
    click.echo(click.style(f"violations: {violations}", fg="red"))
    for finding in report.findings:
        path = exploration.write_reproducer(finding, out_dir, engine=chosen)
        steps = len((finding.shrunk or finding.scenario).steps)
        click.echo(f"  {finding.check}: {finding.failure}")
        click.echo(f"    shrunk to {steps} steps in {finding.runs} runs: {path}")
    sys.exit(EXIT_FAILED)


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


# --- Teaching demo (issue 6): the `demo` and `phone` commands; their bodies live in
# scenarios/demo/app.py and scenarios/terminal_phone.py. ---------------------------------------


@main.command()
@click.option("--port", default=8000, show_default=True, help="The page's port on 127.0.0.1.")
@click.option(
    "--signaling-port", default=8765, show_default=True, help="The signaling server's port."
)
@click.option(
    "--profile",
    type=click.Choice(profile_names()),
    default=DEFAULT_PROFILE,
    show_default=True,
    help="The profile free play runs under (the page can show any profile's labels).",
)
@click.option(
    "--audio-phone",
    default="dave",
    show_default=True,
    help="Free play's phone with real aiortc audio, to call a browser phone ('' for none).",
)
@click.option("--ring-timeout", type=float, help="Free play's ring timeout, in seconds.")
@click.option("--dial-timeout", type=float, help="Free play's dial timeout, in seconds.")
@click.option("--reconnect-grace", type=float, help="Free play's reconnect grace, in seconds.")
@click.option(
    "--heartbeat",
    type=float,
    help="Free play's heartbeat interval and pong timeout, in seconds (how soon a lost "
    "signal is noticed).",
)
def demo(
    port: int,
    signaling_port: int,
    profile: str,
    audio_phone: str,
    ring_timeout: float | None,
    dial_timeout: float | None,
    reconnect_grace: float | None,
    heartbeat: float | None,
) -> None:
    """Serve the teaching demo page on 127.0.0.1, with its signaling server and phones."""
    from scenarios.demo.app import run_demo

    given = {
        "ring_timeout": ring_timeout,
        "dial_timeout": dial_timeout,
        "reconnect_grace": reconnect_grace,
        "heartbeat_interval": heartbeat,
        "heartbeat_timeout": heartbeat,
    }
    if any(value is not None and value <= 0 for value in given.values()):
        _bad_input("timers must be longer than 0 seconds")
    run_demo(
        port=port,
        signaling_port=signaling_port,
        profile=profile,
        audio_phone=audio_phone or None,
        timers={key: value for key, value in given.items() if value is not None},
    )


@main.command()
@click.argument("name")
@click.option(
    "--server", default="ws://127.0.0.1:8765", show_default=True, help="The signaling server."
)
@click.option("--token", help="The name's token (default: one kept in --tokens).")
@click.option(
    "--profile",
    type=click.Choice(profile_names()),
    default=DEFAULT_PROFILE,
    show_default=True,
    help="The labels of your call log, and your phone's timers.",
)
def phone(name: str, server: str, token: str | None, profile: str) -> None:
    """An interactive phone in this terminal: call bob, answer, hangup, signal off..."""
    from scenarios.terminal_phone import run_terminal_phone

    run_terminal_phone(name, server, token=token, profile=profile)


# --- voip-sandbox load (issue 8): the command's body lives in scenarios/load.py -----------------
from scenarios.load import load_command  # noqa: E402  (registered after the group exists)


main.add_command(load_command)
