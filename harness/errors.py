"""Errors the CLI turns into one line each (kept import-light for fast start-up)."""

from __future__ import annotations


class SuiteError(Exception):
    """One or more ``FILE:LINE: message`` lines."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("\n".join(lines))


class ReportError(Exception):
    pass
