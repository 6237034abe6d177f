"""Every hook is documented in docs/plugins.md and has a test of its own (test_hook_<name>)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from optbench import hookspecs
from optbench.api import REGISTRY_TYPES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"


def hookspec_names() -> list[str]:
    return sorted(n for n, f in vars(hookspecs).items() if n.startswith("optbench_") and hasattr(f, "optbench_spec"))


def headings() -> list[str]:
    return re.findall(r"^#{2,4} (.+)$", DOCS.read_text(), flags=re.MULTILINE)


def names_of_tests() -> set[str]:
    names: set[str] = set()
    for path in Path(__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    return names


def test_there_are_hooks_to_check():
    assert len(hookspec_names()) >= 9 and "optbench_register_techniques" in hookspec_names()


@pytest.mark.parametrize("hook", hookspec_names())
def test_hook_is_documented_with_its_signature(hook):
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    documented = [h for h in headings() if re.search(rf"\b{hook}\b", h)]
    assert documented, f"{hook} has no heading in {DOCS.relative_to(ROOT)}"
    assert f"{hook}({params})" in documented[0], f"the heading of {hook} should show its arguments: {hook}({params})"


@pytest.mark.parametrize("hook", hookspec_names())
def test_hook_has_a_test_of_its_own(hook):
    wanted = "test_hook_" + hook.removeprefix("optbench_")
    assert wanted in names_of_tests(), f"{hook} has no test named {wanted} under tests/"


def test_documented_hooks_all_exist():
    documented = {m for h in headings() for m in re.findall(r"\boptbench_\w+(?=\()", h)}
    assert documented <= set(hookspec_names()), f"documented but not in hookspecs.py: {sorted(documented - set(hookspec_names()))}"


@pytest.mark.parametrize("cls", sorted(c.__name__ for c in REGISTRY_TYPES.values()))
def test_object_protocol_is_documented(cls):
    assert any(re.search(rf"\b{cls}\b", h) for h in headings()), f"the {cls} protocol has no heading in docs/plugins.md"


def test_testing_fixtures_are_documented():
    text = DOCS.read_text()
    for fixture in ("optbench_pm", "register_plugin", "run_suite_text"):
        assert f"`{fixture}" in text
