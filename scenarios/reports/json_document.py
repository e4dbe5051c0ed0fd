"""The JSON document of DESIGN.md: the counts, and per scenario its verdict and call logs."""

from __future__ import annotations

import json
from collections.abc import Sequence

from scenarios.runner import ScenarioResult


__all__ = ["render_json"]


def render_json(results: Sequence[ScenarioResult]) -> str:
    """The JSON document of DESIGN.md."""
    passed = sum(r.passed for r in results)
    document = {
        "passed": passed,
        "failed": len(results) - passed,
        "scenarios": [r.as_json() for r in results],
    }
    return json.dumps(document, indent=2)
