"""The docs are checked against the code, so a setting, a command, a flag or
an endpoint cannot be added without being documented (Datasette's habit).

When one of these fails, the message says what to add, ready to paste.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import detection  # noqa: F401 - subsystems declare their endpoints on import, as a node loads them
import media  # noqa: F401
import royalties  # noqa: F401
from node.api import build_api
from node.api.routing import _PARAM
from node.cli import build_parser
from node.config import SETTINGS, settings_markdown

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_settings_doc_is_generated_from_the_settings():
    text = (DOCS / "settings.md").read_text()
    missing = [s.dotted for s in SETTINGS if f"`{s.dotted}`" not in text or s.env_name not in text]
    hint = (
        "docs/settings.md is stale; regenerate it with\n"
        "  python -c 'from node.config import settings_markdown as m; print(m(), end=\"\")' > docs/settings.md"
    )
    assert not missing, f"undocumented settings {missing}. {hint}"
    assert text == settings_markdown(), hint


# ---- the CLI ---------------------------------------------------------------


def leaf_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command (`init`, `user create`, ...) with its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    out = []
    for name, sub in subs[0].choices.items():
        out += leaf_commands(sub, (*path, name))
    return out


def documented_names(parser: argparse.ArgumentParser) -> list[str]:
    """How each argument is written in the docs: `--flag`, or the positional in capitals."""
    names = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            names.append(max(action.option_strings, key=len))
        else:
            names.append(action.dest.upper())
    return names


def cli_sections() -> dict[str, str]:
    """docs/cli.md split at its `## \\`nycmg ...\\`` headings."""
    text = (DOCS / "cli.md").read_text()
    sections: dict[str, str] = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        heading, _, body = part.partition("\n")
        match = re.fullmatch(r"`nycmg ([a-z -]+)`", heading.strip())
        if match:
            sections[match.group(1)] = body
    return sections


def test_every_command_and_flag_is_in_docs_cli():
    sections = cli_sections()
    problems = []
    commands = leaf_commands(build_parser())
    for path, parser in commands:
        name = " ".join(path)
        body = sections.get(name)
        if body is None:
            problems.append(f"no section '## `nycmg {name}`'")
            continue
        for flag in documented_names(parser):
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", body):
                problems.append(f"`nycmg {name}`: {flag} is not described")
    stale = set(sections) - {" ".join(path) for path, _ in commands}
    problems += [
        f"docs/cli.md documents `nycmg {name}`, which does not exist" for name in sorted(stale)
    ]
    assert not problems, "docs/cli.md:\n  " + "\n  ".join(problems)


def test_the_cli_doc_lists_what_it_covers_in_order_of_the_parser():
    """A reader meets the commands in the order `nycmg --help` shows them."""
    order = [" ".join(path) for path, _ in leaf_commands(build_parser())]
    documented = [name for name in cli_sections() if name in order]
    assert documented == order


# ---- the API ---------------------------------------------------------------


def public_path(route: str) -> str:
    """`/api/v1/auth/tokens/{id:\\d+}` as a reader sees it: `/api/v1/auth/tokens/{id}`."""
    return _PARAM.sub(r"{\1}", route)


ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|", re.M)


def test_every_api_endpoint_is_in_docs_api():
    text = (DOCS / "api.md").read_text()
    documented = set(ROW.findall(text))
    endpoints = [(ep, public_path(ep.path)) for ep in build_api().endpoints]
    actual = {(ep.method, path) for ep, path in endpoints}
    missing = [
        f"| {ep.method} | `{path}` | {ep.role or 'anyone'} | {ep.summary} |"
        for ep, path in endpoints
        if (ep.method, path) not in documented
    ]
    assert not missing, "add to docs/api.md (section for its tag):\n" + "\n".join(missing)
    stale = sorted(documented - actual)
    assert not stale, f"docs/api.md lists endpoints that do not exist: {stale}"


def test_the_api_doc_explains_the_conventions():
    text = (DOCS / "api.md").read_text()
    for must in (
        "Authorization: Bearer",
        "application/problem+json",
        "cursor",
        '"next"',
        "minor units",
        "openapi.json",
    ):
        assert must in text, must


# ---- README and links ------------------------------------------------------


def test_readme_starts_with_the_two_commands_a_newcomer_runs():
    lines = (ROOT / "README.md").read_text().splitlines()
    head = "\n".join(lines[:6])
    assert lines[0] == "# nycmg"
    assert "make demo" in head and "make test" in head
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_in_the_docs_point_at_files_that_exist():
    broken = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken
