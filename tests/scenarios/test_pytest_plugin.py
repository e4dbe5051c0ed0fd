"""The pytest plugin, used the way another project uses it: installed, and nothing else.

Each test writes a throwaway project (no conftest, its own pytest configuration) and runs
pytest on it in a subprocess, with the installed voip-sandbox, pytest-asyncio in auto mode
and looptime's own plugin enabled as they would be in any project that installed them.
"""

from __future__ import annotations

import textwrap

import pytest


pytest_plugins = ["pytester"]

CONFIG = """
[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
filterwarnings = [
    "error",
    "ignore::DeprecationWarning:av.*",
    "ignore::DeprecationWarning:aiortc.*",
    "ignore::DeprecationWarning:aioice.*",
]
{extra}
"""

CALL_TESTS = """
import asyncio
import time

import pytest

from scenarios.sandbox import Screen

pytestmark = pytest.mark.voip_sandbox


async def test_cancel_before_pickup_with_phone(phone):
    alice = await phone("alice")
    bob = await phone("bob")
    await alice.call(bob)
    await alice.wait_for_screen(Screen.RINGING)
    await asyncio.sleep(3)
    await alice.hang_up()
    await phone.sandbox.settle()
    alice.assert_log([{"label": "canceled", "with": "bob", "reached": True}])
    bob.assert_log([{"label": "missed", "with": "alice", "reached": True}])


async def test_cancel_before_pickup_with_sandbox(sandbox):
    async with sandbox() as sb:
        alice = await sb.phone("alice")
        bob = await sb.phone("bob")
        await alice.call(bob)
        await bob.wait_for_screen(Screen.INCOMING)
        await alice.hang_up()
        await sb.settle()
        sb.assert_logs({"alice": ["canceled"], "bob": ["missed"]})


@pytest.mark.voip_sandbox(ring_timeout="45s")
async def test_a_ring_timeout_costs_no_wall_time(sandbox):
    started = time.perf_counter()
    async with sandbox() as sb:
        alice = await sb.phone("alice")
        bob = await sb.phone("bob")
        await alice.call(bob)
        await sb.settle()
        assert sb.now() >= 45
        sb.assert_logs({"alice": ["no_answer"], "bob": ["missed"]})
    assert time.perf_counter() - started < 10


async def test_a_wrong_expectation(phone):
    alice = await phone("alice")
    bob = await phone("bob")
    await alice.call(bob)
    await bob.wait_for_screen(Screen.INCOMING)
    await alice.hang_up()
    await phone.sandbox.settle()
    bob.assert_log([{"label": "declined", "with": "alice"}])
"""

PASSING = """
name: caller cancels while ringing
phones:
  alice: {}
  bob: {}
steps:
  - at: 0s
    do: alice calls bob
  - when: alice hears ringing
    after: 3s
    do: alice hangs up
expect:
  alice: [{label: canceled, with: bob, reached: true}]
  bob: [{label: missed, with: alice, reached: true}]
"""

FAILING = PASSING.replace("caller cancels while ringing", "bob declines, supposedly").replace(
    "label: missed", "label: declined"
)


def project(pytester: pytest.Pytester, extra_config: str = "", **files: str) -> None:
    pytester.makepyprojecttoml(CONFIG.format(extra=extra_config))
    for name, text in files.items():
        pytester.path.joinpath(name).write_text(textwrap.dedent(text), encoding="utf-8")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", *args, timeout=120)


def test_both_styles_pass_and_fail_with_the_expected_against_actual_diff(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        **{
            "test_calls.py": CALL_TESTS,
            "scenario_cancel.yaml": PASSING,
            "declines.scenario.yaml": FAILING,
            "config.yaml": "not: a scenario\n",  # matches no glob: not collected
        },
    )
    result = run(pytester)
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "PASSED scenario_cancel.yaml::caller cancels while ringing",
            "PASSED test_calls.py::test_cancel_before_pickup_with_phone",
            "PASSED test_calls.py::test_cancel_before_pickup_with_sandbox",
            "PASSED test_calls.py::test_a_ring_timeout_costs_no_wall_time",
        ],
        consecutive=False,
    )
    # The Python test: the assertion's message is the table.
    result.stdout.fnmatch_lines(
        [
            "E   *AssertionError: bob: expected [[]declined], got [[]missed]",
            "E   *!! 1. expected declined with alice * got missed with alice (reached)",
        ]
    )
    # The YAML scenario: file:line of the scenario, then of the expectation that failed.
    result.stdout.fnmatch_lines(
        [
            "*_ scenario: bob declines, supposedly _*",
            "declines.scenario.yaml:2: scenario 'bob declines, supposedly' failed "
            "(profile whatsapp, seed 0, *s of scenario time)",
            "declines.scenario.yaml:14: bob: expected [[]declined], got [[]missed]",
            "    !! 1. expected declined with alice (reached) * got missed with alice (reached)",
            "call logs:",
            "    alice: canceled with bob (reached)",
            "    bob:   missed with alice (reached)",
        ]
    )
    result.stdout.no_fnmatch_line("*config.yaml*")


def test_a_scenario_that_does_not_load_is_a_collection_error_naming_file_and_line(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        **{
            "scenario_typo.yaml": """\
                name: a typo
                phones:
                  alice: {}
                steps:
                  - at: 0s
                    do: alice dances
            """,
            "scenario_not_yaml.yaml": "name: [unclosed\n",
            "scenario_fine.yaml": PASSING,
        },
    )
    result = run(pytester, "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting scenario_not_yaml.yaml*",
            "scenario_not_yaml.yaml:1: invalid YAML: *",
            "*ERROR collecting scenario_typo.yaml*",
            "scenario_typo.yaml:6: steps[[]0].do: unknown action 'alice dances'*",
        ]
    )
    # The message alone: no traceback into the plugin.
    result.stdout.no_fnmatch_line("*pytest_plugin.py*")


def test_a_scenario_runs_once_per_profile_it_has_expectations_for(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        **{
            "scenario_profiles.yaml": PASSING
            + textwrap.dedent("""\
                expect_profiles:
                  signal: {alice: unanswered, bob: missed}
                  telegram:
                    alice: missed
                    bob: missed
            """),
        },
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "PASSED scenario_profiles.yaml::caller cancels while ringing[[]whatsapp]",
            "PASSED scenario_profiles.yaml::caller cancels while ringing[[]signal]",
            "FAILED scenario_profiles.yaml::caller cancels while ringing[[]telegram]*",
        ],
        consecutive=False,
    )
    # The line of the expectation under that profile, not the one under `expect`.
    result.stdout.fnmatch_lines(
        [
            "scenario_profiles.yaml:2: scenario 'caller cancels while ringing' failed "
            "(profile telegram, *",
            "scenario_profiles.yaml:18: alice: expected [[]missed], got [[]canceled]",
        ]
    )


def test_the_ini_option_chooses_the_scenario_files(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        extra_config='voip_sandbox_scenarios = ["calls/*.yaml"]',
        **{"scenario_ignored.yaml": "this would not load: [\n"},
    )
    pytester.mkdir("calls")
    pytester.path.joinpath("calls", "cancel.yaml").write_text(PASSING, encoding="utf-8")
    result = run(pytester, "-m", "voip_sandbox")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["PASSED calls/cancel.yaml::caller cancels while ringing"])


def test_the_marker_wins_over_a_project_s_own_loop_factories_and_looptime(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        **{
            "conftest.py": """\
                import asyncio

                def pytest_asyncio_loop_factories(config, item):
                    return {"project": asyncio.new_event_loop}
            """,
            "test_loops.py": """\
                import asyncio

                import pytest


                @pytest.mark.voip_sandbox
                async def test_marked_is_virtual_from_zero(sandbox):
                    loop = asyncio.get_running_loop()
                    assert loop.looptime_on and loop.time() < 1
                    async with sandbox() as sb:
                        await sb.phone("alice")
                        await asyncio.sleep(3600)
                        assert sb.now() >= 3600


                async def test_unmarked_keeps_the_project_s_loop():
                    assert not getattr(asyncio.get_running_loop(), "looptime_on", False)


                @pytest.mark.looptime
                async def test_looptime_s_own_marker_still_works(sandbox):
                    async with sandbox() as sb:
                        await sb.phone("alice")
                        await asyncio.sleep(3600)
                        assert sb.now() >= 3600
            """,
        },
    )
    run(pytester).assert_outcomes(passed=3)
    # With looptime's plugin switched on for every test, the marked one is left alone.
    run(pytester, "--looptime", "-k", "test_marked_is").assert_outcomes(passed=1)


def test_misuse_is_reported(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        **{
            "test_marker_typo.py": """\
                import pytest


                @pytest.mark.voip_sandbox(ring_timout="5s")
                async def test_typo_in_the_marker():
                    pass
            """,
            "test_left_open.py": """\
                async def test_a_sandbox_left_open(sandbox):
                    await sandbox().start()
            """,
        },
    )
    result = run(pytester, "--continue-on-collection-errors")
    # The test left open passes, then errors in its teardown.
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_marker_typo.py*",
            "test_marker_typo.py::test_typo_in_the_marker: unknown keyword 'ring_timout' "
            "of @pytest.mark.voip_sandbox; expected any of: virtual_time, profile, *",
            "*ERROR at teardown of test_a_sandbox_left_open*",
            "*a sandbox was started and never closed*",
        ],
        consecutive=False,
    )
