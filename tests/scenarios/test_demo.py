"""The demo package as installed: its commands and the files its page needs."""

from __future__ import annotations

import tomllib
from pathlib import Path

from click.testing import CliRunner

from scenarios.cli import main
from scenarios.demo.web import STATIC


ROOT = Path(__file__).resolve().parents[2]


def test_the_static_files_are_package_data() -> None:
    assert {p.name for p in STATIC.iterdir()} >= {
        "index.html",
        "demo.js",
        "demo.css",
        "phone.html",
        "phone.js",
    }
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "demo/static/*" in config["tool"]["setuptools"]["package-data"]["scenarios"]


def test_the_demo_and_phone_commands_are_registered() -> None:
    runner = CliRunner()
    demo = runner.invoke(main, ["demo", "--help"])
    assert demo.exit_code == 0 and "--signaling-port" in demo.output
    phone = runner.invoke(main, ["phone", "--help"])
    assert phone.exit_code == 0 and "--server" in phone.output


def test_a_timer_of_zero_is_bad_input() -> None:
    result = CliRunner().invoke(main, ["demo", "--ring-timeout", "0"])
    assert result.exit_code == 2 and "longer than 0" in result.output
