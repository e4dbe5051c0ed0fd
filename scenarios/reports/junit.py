"""JUnit XML for CI: one ``testsuite``, one ``testcase`` per scenario and profile."""

from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from scenarios.runner import ScenarioResult


__all__ = ["render_junit"]


# Characters XML 1.0 cannot carry at all, not even escaped (an error message may hold any).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_junit(results: Sequence[ScenarioResult]) -> str:
    """The run as JUnit XML: one ``testsuite``, one ``testcase`` per scenario and profile.

    A test case is named ``<scenario name> [<profile>]``, its ``classname`` is the scenario
    file's path in dotted form, its ``time`` the wall seconds; a failed one has a ``failure``
    with every failure text, and every one has its call logs as ``system-out``.
    """
    failed = sum(not r.passed for r in results)
    counts = {
        "tests": str(len(results)),
        "failures": str(failed),
        "errors": "0",
        "skipped": "0",
        "time": f"{sum(r.wall_seconds for r in results):.3f}",
    }
    root = ET.Element("testsuites", {"name": "voip-sandbox", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "voip-sandbox", **counts})
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": _xml(f"{result.scenario.name} [{result.profile}]"),
                "classname": _xml(_classname(result.scenario.path)),
                "time": f"{result.wall_seconds:.3f}",
            },
        )
        if result.failures:
            first = (result.failures[0].splitlines() or [""])[0]
            failure = ET.SubElement(
                case,
                "failure",
                {"message": _xml(first), "type": "ScenarioFailure"},
            )
            failure.text = _xml("\n\n".join(result.failures))
        out = ET.SubElement(case, "system-out")
        out.text = _xml(_plain_call_logs(result))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _classname(path: str) -> str:
    """``scenarios/library/01-cancel.yaml`` -> ``scenarios.library.01-cancel``.

    An absolute path under the working folder is taken relative to it.
    """
    file = Path(path)
    if file.is_absolute():
        with contextlib.suppress(ValueError):  # elsewhere: keep it whole
            file = file.relative_to(Path.cwd())
    parts = [part for part in file.with_suffix("").parts if part not in ("/", ".", "..")]
    return ".".join(part.strip("/\\") for part in parts) or path


def _plain_call_logs(result: ScenarioResult) -> str:
    lines = [
        f"profile {result.profile}, seed {result.seed}, "
        f"{result.virtual_seconds:.1f}s of scenario time"
    ]
    for name, entries in result.logs.items():
        log = "; ".join(entry.describe() for entry in entries) or "(no entry)"
        lines.append(f"{name}: {log}")
    return "\n".join(lines) + "\n"
