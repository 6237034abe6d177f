"""Shared fixtures for the harness benchmarks (run: pytest benchmarks/ --benchmark-only -s).

These measure optbench itself (CLI start-up, suite validation, report rendering, the
per-cell process overhead), never a model. They print figures and assert behaviour only:
nothing here fails because something was slow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_FIGURES: list[str] = []


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def optbench_exe() -> Path:
    """The console script installed next to the interpreter running pytest."""
    exe = Path(sys.executable).parent / "optbench"
    if not exe.exists():
        pytest.skip(f"no optbench console script at {exe}; install the project (pip install -e .)")
    return exe


@pytest.fixture(scope="session")
def pm():
    """One plugin manager for the session, with every registry collected (kept out of timings)."""
    from optbench import manager

    m = manager.load(strict=True)
    m.collect_all()
    return m


@pytest.fixture
def figure():
    """Print one line of figures now (visible with -s) and keep it for the end-of-run summary."""

    def emit(line: str) -> None:
        print(f"\n[optbench] {line}", flush=True)
        _FIGURES.append(line)

    return emit


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # With output capture on (no -s) the lines printed by the tests are swallowed;
    # repeat them here so the figures are never lost.
    if _FIGURES and config.getoption("capture") != "no":
        terminalreporter.section("optbench harness figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
