"""The dependency rules of DESIGN.md 1, checked on the source: `web` and `admin`
may use the subsystems, the subsystems may use the core, and the core uses
none of them; only the composition root (`node/app.py`, `node/cli.py`) knows
every part. A stray import would make the core untestable alone and let a
subsystem grow a hidden dependency on pages."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUBSYSTEMS = {"federation", "media", "royalties", "detection"}
PAGES = {"web", "admin"}
COMPOSITION_ROOT = {ROOT / "node" / "app.py", ROOT / "node" / "cli.py"}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports (absolute imports; relative ones stay inside)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def offences(package: str, forbidden: set[str], skip: set[Path] = frozenset()) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {sorted(imported_packages(path) & forbidden)}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if path not in skip and imported_packages(path) & forbidden
    ]


def test_the_core_imports_no_subsystem_and_no_pages():
    assert offences("node", SUBSYSTEMS | PAGES, COMPOSITION_ROOT) == []


def test_no_subsystem_imports_the_pages():
    problems = [p for package in sorted(SUBSYSTEMS) for p in offences(package, PAGES)]
    assert problems == []


def test_the_check_sees_an_import_where_it_is():
    """The scan is not vacuous: the composition root does import every part."""
    app = imported_packages(ROOT / "node" / "app.py") | imported_packages(ROOT / "node" / "cli.py")
    assert SUBSYSTEMS | PAGES <= app
