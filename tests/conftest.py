"""Fixtures shared by the tests."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _history_in_tmp(tmp_path_factory):
    """Runs record themselves in a history database: never the real one in the user data dir."""
    old = os.environ.get("OPTBENCH_HISTORY")
    os.environ["OPTBENCH_HISTORY"] = str(tmp_path_factory.mktemp("history") / "history.db")
    yield
    if old is None:
        os.environ.pop("OPTBENCH_HISTORY", None)
    else:
        os.environ["OPTBENCH_HISTORY"] = old


@pytest.fixture
def pm():
    from optbench import manager

    return manager.load()


@pytest.fixture
def write_suite(tmp_path):
    def write(text: str, name: str = "suite.yaml") -> Path:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text).lstrip())
        return p

    return write
