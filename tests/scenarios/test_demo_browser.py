"""The demo's browser tests, run in a private network namespace with only loopback.

Chromium reaches out to public hosts on its own (shared/reference/browser-interop.md,
pitfall 1), so the whole browser session, the test's Chromium and the servers it talks to,
runs in one ``unshare -n`` namespace: this test starts pytest again in there, on
``demo_browser_cases.py``. Nothing is skipped: without Playwright, Chromium or ``unshare``
the test fails and says what is missing (``.ci/run`` installs Chromium with apt).

``VOIP_SANDBOX_SCREENSHOT=docs/demo.png`` makes the demo page test also save the README's
screenshot.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).with_name("demo_browser_cases.py")
CHROMIUM = Path("/usr/bin/chromium")


def namespace_command() -> list[str]:
    """``unshare`` into a new network namespace (and a user namespace when not root)."""
    flags = "-n" if os.geteuid() == 0 else "-rn"
    return ["unshare", flags, "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def test_browser_tests_pass_inside_a_loopback_only_network_namespace(tmp_path: Path) -> None:
    missing = [
        what
        for what, there in (
            ("playwright (pip install -e '.[dev]')", importlib.util.find_spec("playwright")),
            ("/usr/bin/chromium (apt-get install chromium)", CHROMIUM.is_file()),
            ("unshare (util-linux)", shutil.which("unshare")),
            ("ip (iproute2)", shutil.which("ip")),
        )
        if not there
    ]
    assert not missing, "the browser tests cannot run without: " + ", ".join(missing)
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # Chromium leaves singleton dirs there
    result = subprocess.run(
        [
            *namespace_command(),
            sys.executable,
            "-m",
            "pytest",
            str(CASES),
            "-p",
            "no:cacheprovider",
            "-q",
            "--timeout=120",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert " passed" in output and "skipped" not in output, output[-3000:]
