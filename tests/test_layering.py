"""The layering of DESIGN.md, checked on the source.

Rule 1: ``signaling/messages``, ``signaling/calls``, ``signaling/switchboard`` and
``peers/phone`` import neither asyncio, websockets, aiortc nor the clock, not even through
another module of the project. And the tests mirror the modules: each module of
``signaling/``, ``peers/`` and ``scenarios/`` has its test file.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("signaling", "peers", "scenarios")
SANS_IO = ("signaling.messages", "signaling.calls", "signaling.switchboard", "peers.phone")
FORBIDDEN = frozenset({"asyncio", "websockets", "aiortc", "looptime", "time"})


def module_path(module: str) -> Path | None:
    """The source file of a project module, or None if ``module`` is not one."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(module: str) -> set[str]:
    """Every module ``module`` imports, anywhere in its source, as absolute names.

    ``from x import y`` counts as importing ``x`` and, if it exists, the submodule ``x.y``.
    """
    path = module_path(module)
    assert path is not None, module
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                assert node.module is not None
                base = node.module
            found.add(base)
            for alias in node.names:
                if module_path(f"{base}.{alias.name}") is not None:
                    found.add(f"{base}.{alias.name}")
    return found


def forbidden_imports(root: str) -> list[str]:
    """Each forbidden import reachable from ``root``, with the chain of project modules."""
    problems: list[str] = []
    seen: set[str] = set()
    queue: list[tuple[str, tuple[str, ...]]] = [(root, (root,))]
    while queue:
        module, chain = queue.pop(0)
        if module in seen:
            continue
        seen.add(module)
        for imported in sorted(imports_of(module)):
            if imported.split(".")[0] in FORBIDDEN:
                problems.append(f"{' -> '.join(chain)} imports {imported}")
            elif module_path(imported) is not None:
                # Importing a.b.c runs a/__init__ and a/b/__init__ too.
                parts = imported.split(".")
                for depth in range(1, len(parts) + 1):
                    name = ".".join(parts[:depth])
                    if module_path(name) is not None and name not in seen:
                        queue.append((name, (*chain, name)))
    return problems


@pytest.mark.parametrize("module", SANS_IO)
def test_the_sans_io_core_imports_no_io_and_no_clock(module: str) -> None:
    assert module_path(module) is not None, f"{module} is gone: update DESIGN.md and this test"
    problems = forbidden_imports(module)
    assert not problems, "\n".join(problems)


def test_the_import_checker_sees_direct_relative_and_transitive_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checker itself must be able to fail: a fake project in which the core reaches
    # time through a relative import of a helper, which imports it inside a function.
    (tmp_path / "signaling").mkdir()
    (tmp_path / "signaling" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "signaling" / "core.py").write_text(
        "from . import helper\nfrom .other import thing\n", encoding="utf-8"
    )
    (tmp_path / "signaling" / "helper.py").write_text(
        "def now():\n    from time import monotonic\n    return monotonic()\n", encoding="utf-8"
    )
    (tmp_path / "signaling" / "other.py").write_text("import asyncio.tasks\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    problems = forbidden_imports("signaling.core")
    assert problems == [
        "signaling.core -> signaling.helper imports time",
        "signaling.core -> signaling.other imports asyncio.tasks",
    ]


# --- Tests mirror the modules ------------------------------------------------------------------


def expected_test_files(source: Path) -> list[Path]:
    """Where the tests of one source file may live (the first is the canonical place)."""
    parts = source.relative_to(ROOT).with_suffix("").parts
    package, *folders, name = parts
    if name == "__init__":
        name = folders.pop()  # scenarios/profiles/__init__.py -> test_profiles.py
    places = [ROOT / "tests" / package / Path(*folders) / f"test_{name}.py"]
    if folders:
        places.append(ROOT / "tests" / package / f"test_{name}.py")
    return places


def modules_needing_tests() -> list[Path]:
    sources = []
    for package in PACKAGES:
        for source in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" in source.parts:
                continue
            if source == ROOT / package / "__init__.py":
                continue  # the package itself: nothing to test on its own
            sources.append(source)
    return sources


def test_there_are_modules_to_check() -> None:
    names = {source.relative_to(ROOT).as_posix() for source in modules_needing_tests()}
    assert {"signaling/calls.py", "peers/phone.py", "scenarios/runner.py"} <= names
    assert "scenarios/profiles/__init__.py" in names


def test_every_module_has_a_matching_test_file() -> None:
    missing = [
        f"{source.relative_to(ROOT).as_posix()} -> "
        f"{expected_test_files(source)[0].relative_to(ROOT).as_posix()}"
        for source in modules_needing_tests()
        if not any(place.is_file() for place in expected_test_files(source))
    ]
    assert not missing, "modules without a test file:\n  " + "\n  ".join(missing)
