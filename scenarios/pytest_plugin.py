"""The voip-sandbox pytest plugin, registered through the ``pytest11`` entry point.

Installing voip-sandbox is enough: pytest loads this module in every project (disable it
with ``-p no:voip_sandbox``). It offers two ways to test call flows.

**Python tests** (need pytest-asyncio; shown for ``asyncio_mode = "auto"``)::

    @pytest.mark.voip_sandbox                      # virtual time, for the whole test
    async def test_cancel(phone):
        alice, bob = await phone("alice"), await phone("bob")
        await alice.call(bob)
        await alice.wait_for_screen(Screen.RINGING)
        await alice.hang_up()
        await alice.sandbox.settle()
        alice.assert_log([{"label": "canceled", "with": "bob", "reached": True}])
        bob.assert_log(["missed"])

- ``sandbox``: a factory of :class:`~scenarios.sandbox.Sandbox` objects, each entered *in
  the test*: ``async with sandbox(ring_timeout="10s") as sb:``. It is a plain fixture on
  purpose: the server, the phones and their timers then live in the test's own loop and
  in its time, whatever marks or scopes the test uses. A sandbox started and never
  closed fails the test.
- ``phone``: ``alice = await phone("alice")`` makes a phone in a default sandbox, which
  the first call starts in the test's loop and the fixture closes after the test (it is
  an async fixture on the function's loop; ``phone.sandbox`` is that sandbox).

**Virtual time**: ``@pytest.mark.voip_sandbox`` makes pytest-asyncio (1.4 or later) run
the test in a looptime loop that starts at 0 and jumps to the next timer whenever nothing
is runnable, through pytest-asyncio's ``pytest_asyncio_loop_factories`` hook. The whole
loop is virtual: fixtures set up and torn down in it are too. Every party of the test must
run in that loop (shared/reference/tools.md §5); a test that also talks to another
process or thread must not use it. The marker takes keyword arguments:
``virtual_time`` (default true; false keeps the marker's settings in real time),
``profile``, ``seed`` and the timers ``dial_timeout``, ``ring_timeout``,
``reconnect_grace``, ``heartbeat_interval``, ``heartbeat_timeout`` (seconds or ``"45s"``),
which become the defaults of ``sandbox()`` and the sandbox of ``phone``.

The hook is a wrapper around every other implementation: a project's own
``pytest_asyncio_loop_factories`` keeps deciding for the tests without the marker, and
when no implementation answers, the test gets pytest-asyncio's usual loop (made by the
current event-loop policy). Because a hook implementation exists, pytest-asyncio
parametrizes each async test over one (hidden) loop factory; test ids do not change.
looptime's own plugin (``@pytest.mark.looptime``, ``--looptime``) is left alone on other
tests, and switched off on marked ones, whose loop is virtual already.

**YAML scenarios**: files named ``scenario_*.yaml`` or ``*.scenario.yaml`` (and ``.yml``)
are collected as tests, played by :func:`scenarios.runner.run_scenario` in their own
virtual-time loop (synchronous: no pytest-asyncio needed). A file is one item per
profile it runs under, as with ``voip-sandbox run``: its own, named after the scenario,
or, when it has ``expect_profiles``, each of them, named ``<scenario name>[<profile>]``.
Every item carries the ``voip_sandbox`` marker (``-m voip_sandbox`` selects them, with
the marked Python tests). The ini option ``voip_sandbox_scenarios`` replaces the list of
globs; a glob matches the file's name, or, when it has a ``/``, the end of its path. A
file named on the command line is collected whatever its name. A failing scenario
reports ``file:line`` of the scenario and of each failed expectation, with the
expected-against-actual table; a file that does not load is a collection error naming
``file:line``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import os
import pathlib
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import looptime
import pytest
import yaml

from scenarios.expectations import compare_logs
from scenarios.loader import ScenarioError, load_scenario
from scenarios.model import Scenario
from scenarios.profiles import ProfileError, load_profile
from scenarios.runner import ScenarioResult, profiles_to_run, run_scenario
from scenarios.sandbox import Duration, PhoneHandle, Sandbox


__all__ = [
    "DEFAULT_SCENARIO_GLOBS",
    "MARKER",
    "PhoneFactory",
    "SandboxFactory",
    "ScenarioFailed",
    "ScenarioFile",
    "ScenarioItem",
]

MARKER = "voip_sandbox"
"""The marker's name."""

DEFAULT_SCENARIO_GLOBS = (
    "scenario_*.yaml",
    "scenario_*.yml",
    "*.scenario.yaml",
    "*.scenario.yml",
)
"""The files collected as scenarios unless ``voip_sandbox_scenarios`` says otherwise."""

_SETTINGS = (
    "profile",
    "seed",
    "dial_timeout",
    "ring_timeout",
    "reconnect_grace",
    "heartbeat_interval",
    "heartbeat_timeout",
)
_MARKER_KEYS = ("virtual_time", *_SETTINGS)
_FACTORY_NAME = "voip_sandbox_virtual_time"


# --- Configuration -------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "voip_sandbox_scenarios",
        type="args",
        default=list(DEFAULT_SCENARIO_GLOBS),
        help="Globs of the YAML files collected as voip-sandbox scenarios "
        f"(default: {' '.join(DEFAULT_SCENARIO_GLOBS)}).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(virtual_time=True, profile=..., seed=..., ring_timeout=..., ...): run this "
        "async test in a virtual-time loop; the keywords configure the sandbox and phone "
        "fixtures.",
    )


@dataclass(frozen=True)
class _Mark:
    """What a test's ``voip_sandbox`` marker says."""

    virtual_time: bool
    settings: Mapping[str, Any]


def _read_marker(node: pytest.Item) -> _Mark | None:
    marker = node.get_closest_marker(MARKER)
    if marker is None:
        return None
    if marker.args:
        pytest.fail(
            f"{node.nodeid}: @pytest.mark.{MARKER} takes keyword arguments only "
            f"({', '.join(_MARKER_KEYS)})",
            pytrace=False,
        )
    unknown = sorted(set(marker.kwargs) - set(_MARKER_KEYS))
    if unknown:
        pytest.fail(
            f"{node.nodeid}: unknown keyword {unknown[0]!r} of @pytest.mark.{MARKER}; "
            f"expected any of: {', '.join(_MARKER_KEYS)}",
            pytrace=False,
        )
    settings = {key: value for key, value in marker.kwargs.items() if key in _SETTINGS}
    return _Mark(virtual_time=bool(marker.kwargs.get("virtual_time", True)), settings=settings)


def _settings_of(node: pytest.Item) -> dict[str, Any]:
    mark = _read_marker(node)
    return dict(mark.settings) if mark is not None else {}


# --- Virtual time --------------------------------------------------------------------------------


def _virtual_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop = looptime.new_event_loop(start=0.0)
    return loop


@pytest.hookimpl(wrapper=True, optionalhook=True)
def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Generator[None, Mapping[str, Callable[[], asyncio.AbstractEventLoop]] | None, Any]:
    """A virtual-time loop for tests marked ``voip_sandbox``; the others as they would be.

    A wrapper, because the hook is ``firstresult``: a project's own implementation (in a
    conftest, say) answers first and would otherwise shadow this one.
    """
    answer = yield
    mark = _read_marker(item)
    if mark is not None and mark.virtual_time:
        return {_FACTORY_NAME: _virtual_loop}
    if answer is None:
        # Nobody else decides: the loop pytest-asyncio makes without the hook, from the
        # event-loop policy in force while its runner starts.
        return {"asyncio": asyncio.new_event_loop}
    return answer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    looptime_plugin = config.pluginmanager.hasplugin("looptime_plugin")
    if not looptime_plugin:
        return
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        mark = _read_marker(item)
        if mark is not None and mark.virtual_time:
            # The loop is virtual from its creation: looptime's plugin must not switch it
            # on a second time (it would raise) nor off after the test.
            item.add_marker(pytest.mark.looptime(False))


def pytest_runtest_setup(item: pytest.Item) -> None:
    mark = _read_marker(item)
    if mark is None or not mark.virtual_time or not isinstance(item, pytest.Function):
        return
    if not inspect.iscoroutinefunction(item.obj):
        return
    hook = getattr(item.config.hook, "pytest_asyncio_loop_factories", None)
    if hook is None or not hook.has_spec():
        pytest.fail(
            f"@pytest.mark.{MARKER} needs pytest-asyncio 1.4 or later (for its "
            "pytest_asyncio_loop_factories hook) to run this test in virtual time",
            pytrace=False,
        )


# --- Fixtures ------------------------------------------------------------------------------------


class SandboxFactory:
    """The ``sandbox`` fixture: builds sandboxes to enter in the test.

    ``sandbox(**settings)`` returns a new, unstarted :class:`~scenarios.sandbox.Sandbox`;
    its settings are the test's ``voip_sandbox`` marker keywords, then ``settings``.
    """

    def __init__(self, defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        """The settings from the test's marker."""
        self.built: list[Sandbox] = []
        """Every sandbox built, in order."""

    def __repr__(self) -> str:
        return f"<SandboxFactory: {len(self.built)} built>"

    def __call__(
        self,
        *,
        profile: str | None = None,
        seed: int | None = None,
        dial_timeout: Duration | None = None,
        ring_timeout: Duration | None = None,
        reconnect_grace: Duration | None = None,
        heartbeat_interval: Duration | None = None,
        heartbeat_timeout: Duration | None = None,
    ) -> Sandbox:
        given = {
            "profile": profile,
            "seed": seed,
            "dial_timeout": dial_timeout,
            "ring_timeout": ring_timeout,
            "reconnect_grace": reconnect_grace,
            "heartbeat_interval": heartbeat_interval,
            "heartbeat_timeout": heartbeat_timeout,
        }
        settings = {**self.defaults, **{k: v for k, v in given.items() if v is not None}}
        box = Sandbox(**settings)
        self.built.append(box)
        return box

    def unclosed(self) -> list[Sandbox]:
        """The sandboxes started and not closed."""
        return [box for box in self.built if box.started and not box.closed]


class PhoneFactory:
    """The ``phone`` fixture: ``alice = await phone("alice", power=False)``.

    The phones live in one default :class:`~scenarios.sandbox.Sandbox`, started by the first
    call in the running loop (the test's) and closed by the fixture after the test.
    """

    def __init__(self, sandbox: Sandbox, loop: asyncio.AbstractEventLoop) -> None:
        self.sandbox = sandbox
        """The default sandbox (not started until the first phone)."""
        self._loop = loop

    def __repr__(self) -> str:
        return f"<PhoneFactory: {', '.join(self.sandbox.phones) or 'no phone yet'}>"

    async def __call__(
        self,
        name: str,
        *,
        power: bool = True,
        signal: bool = True,
        online: bool = True,
        blocks: Sequence[str] = (),
    ) -> PhoneHandle:
        """Makes a phone; see :meth:`scenarios.sandbox.Sandbox.phone`."""
        if not self.sandbox.started:
            loop = asyncio.get_running_loop()
            if loop is not self._loop:
                raise RuntimeError(
                    "the phone fixture runs on the function's event loop, but this test runs "
                    "on another (a loop_scope other than 'function'?): use "
                    "`async with sandbox() as sb:` and `await sb.phone(...)` instead"
                )
            await self.sandbox.start()
        return await self.sandbox.phone(
            name, power=power, signal=signal, online=online, blocks=blocks
        )


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxFactory]:
    """Builds sandboxes to enter in the test: ``async with sandbox() as sb:``."""
    assert isinstance(request.node, pytest.Item)
    factory = SandboxFactory(_settings_of(request.node))
    yield factory
    if factory.unclosed():
        pytest.fail(
            "a sandbox was started and never closed: use `async with sandbox() as sb:`",
            pytrace=False,
        )


def _async_fixture(func: Callable[..., AsyncIterator[PhoneFactory]]) -> Any:
    """Declares an async fixture on the function's loop, with pytest-asyncio if present.

    Through ``pytest_asyncio.fixture`` it also works in pytest-asyncio's strict mode.
    """
    try:
        import pytest_asyncio
    except ImportError:
        return pytest.fixture(func)
    return pytest_asyncio.fixture(func, loop_scope="function")


@_async_fixture
async def phone(request: pytest.FixtureRequest) -> AsyncIterator[PhoneFactory]:
    """Makes phones in a default sandbox: ``alice = await phone("alice")``."""
    assert isinstance(request.node, pytest.Item)
    factory = PhoneFactory(Sandbox(**_settings_of(request.node)), asyncio.get_running_loop())
    try:
        yield factory
    finally:
        await factory.sandbox.close()


# --- YAML scenarios ------------------------------------------------------------------------------


def pytest_collect_file(file_path: pathlib.Path, parent: pytest.Collector) -> ScenarioFile | None:
    globs = parent.config.getini("voip_sandbox_scenarios")
    explicit = parent.session.isinitpath(file_path) and file_path.suffix in (".yaml", ".yml")
    if explicit or any(_glob_matches(file_path, glob) for glob in globs):
        file: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return file
    return None


def _glob_matches(path: pathlib.Path, glob: str) -> bool:
    if "/" in glob:
        return path.match(glob)
    return fnmatch.fnmatch(path.name, glob)


def _known_labels(profile: str) -> list[str] | None:
    try:
        return list(load_profile(profile).labels)
    except ProfileError:
        return None


class ScenarioFailed(Exception):
    """A scenario ran and did not pass."""

    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.failures)
        self.result = result


class ScenarioFile(pytest.File):
    """A scenario file: one test item per profile it runs under, or a collection error
    naming ``file:line``."""

    def collect(self) -> Iterator[ScenarioItem]:
        scenario = load_scenario(self.path, known_labels=_known_labels)
        # "::" separates the parts of a node id.
        name = scenario.name.replace("::", ": :")
        profiles = profiles_to_run(scenario, None)
        for profile in profiles:
            yield ScenarioItem.from_parent(
                self,
                name=name if len(profiles) == 1 else f"{name}[{profile}]",
                scenario=scenario,
                profile=profile,
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        error = excinfo.value
        if isinstance(error, ScenarioError):
            where = _shown(self.config, self.path)
            if error.line is None:
                return f"{where}: {error.message}"
            return f"{where}:{error.line}: {error.message}"
        return super().repr_failure(excinfo)


class ScenarioItem(pytest.Item):
    """One scenario under one profile, played in its own virtual-time loop by
    :func:`~scenarios.runner.run_scenario`."""

    def __init__(self, *, scenario: Scenario, profile: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        """The scenario."""
        self.profile = profile
        """The profile it runs under: its own, or one its ``expect_profiles`` names."""
        self.result: ScenarioResult | None = None
        """How it went, once run."""
        self.add_marker(MARKER)

    def runtest(self) -> None:
        self.result = run_scenario(self.scenario, profile=self.profile)
        if not self.result.passed:
            raise ScenarioFailed(self.result)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> Any:
        if isinstance(excinfo.value, ScenarioFailed):
            return _describe_failure(self.config, self.path, excinfo.value.result)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        lines = _lines(self.path)
        return self.path, lines.name - 1, f"scenario: {self.name}"


@dataclass
class _Lines:
    """Where things are in a scenario file (1-based)."""

    name: int = 1
    expect: dict[str, int] = field(default_factory=dict)
    """The line of each phone under ``expect``."""
    expect_profiles: dict[str, dict[str, int]] = field(default_factory=dict)
    """The line of each phone under each profile of ``expect_profiles``."""

    def of(self, scenario: Scenario, profile: str) -> dict[str, int]:
        """The lines of the expectations a run under ``profile`` is judged against."""
        if profile in scenario.expect_profiles:
            return self.expect_profiles.get(profile, {})
        return self.expect


def _lines(path: pathlib.Path) -> _Lines:
    found = _Lines()
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return found
    if not isinstance(root, yaml.MappingNode):
        return found
    for key, value in root.value:
        if key.value == "name":
            found.name = key.start_mark.line + 1
        elif key.value == "expect":
            found.expect = _key_lines(value)
        elif key.value == "expect_profiles" and isinstance(value, yaml.MappingNode):
            found.expect_profiles = {k.value: _key_lines(v) for k, v in value.value}
    return found


def _key_lines(node: yaml.Node) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in node.value}


def _shown(config: pytest.Config, path: pathlib.Path) -> str:
    """The path as a person in the invocation folder would type it."""
    try:
        return os.path.relpath(path, config.invocation_params.dir)
    except ValueError:  # another drive
        return str(path)


def _describe_failure(config: pytest.Config, path: pathlib.Path, result: ScenarioResult) -> str:
    where = _shown(config, path)
    lines = _lines(path)
    scenario = result.scenario
    out = [
        f"{where}:{lines.name}: scenario {scenario.name!r} failed "
        f"(profile {result.profile}, seed {result.seed}, "
        f"{result.virtual_seconds:.1f}s of scenario time)"
    ]
    # Each phone's expectation that failed is reported at its own line.
    at_line: dict[str, int] = {}
    phone_lines = lines.of(scenario, result.profile)
    for phone, expected in (scenario.expectations_for(result.profile) or {}).items():
        line = phone_lines.get(phone)
        if line is not None:
            for failure in compare_logs({phone: expected}, result.logs):
                at_line[failure] = line
    for failure in result.failures:
        line = at_line.get(failure)
        out.append(f"{where}:{line}: {failure}" if line else f"{where}: {failure}")
    out.append("call logs:")
    width = max((len(name) for name in result.logs), default=0)
    for name, log in result.logs.items():
        entries = ", ".join(entry.describe() for entry in log) or "no entry"
        out.append(f"    {name + ':':<{width + 1}} {entries}")
    return "\n".join(out)
