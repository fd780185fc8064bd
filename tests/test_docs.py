"""Every hook is documented in docs/plugins.md and exercised by a test; the README keeps its promises."""

from __future__ import annotations

import inspect
import re

import pytest

from conftest import ROOT
from tuneshift import hookspecs

HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if hasattr(fn, "tuneshift_spec"))
DOCS = (ROOT / "docs" / "plugins.md").read_text()
TEST_SOURCES = {p.name: p.read_text() for p in (ROOT / "tests").glob("*.py") if p.name != "test_docs.py"}
TEST_SOURCES.update({f"template:{p.name}": p.read_text() for p in (ROOT / "plugin_template").rglob("*.py")})


def test_hooks_were_found():
    assert len(HOOKS) >= 11 and "register_scorers" in HOOKS and "on_progress" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"### {hook}({params})" in DOCS, f"docs/plugins.md lacks a '### {hook}({params})' section"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    """A test module (or a plugin a test installs) implements or asserts on the hook."""
    users = [name for name, text in TEST_SOURCES.items() if re.search(rf"\b{hook}\b", text)]
    assert users, f"no test mentions {hook}"


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    head = readme[:600]
    assert "make demo" in head and "make test" in head


def test_every_api_member_is_documented():
    import tuneshift.api as api

    section = DOCS[DOCS.index("## The plugin API: tuneshift.api"):]
    missing = [name for name in api.__all__ if f"`{name}" not in section]
    assert missing == [], f"docs/plugins.md's tuneshift.api section lacks {missing}"


def test_every_test_the_ecosystem_table_names_exists():
    """docs/ecosystem.md names, for each expectation, the tests that prove it: each must be a test there."""
    table = (ROOT / "docs" / "ecosystem.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "tests/" in line]
    assert len(rows) >= 20
    for row in rows:
        proof = row.rstrip(" |").rsplit(" | ", 1)[-1]
        named = 0
        for file, names in re.findall(r"tests/(\w+\.py)((?:::\w+(?:, )?)+)", proof):
            source = (ROOT / "tests" / file).read_text()
            for name in re.findall(r"::(\w+)", names):
                assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{file}::{name} (row: {row[:60]})"
                named += 1
        assert named, f"no test named in: {row[:80]}"
