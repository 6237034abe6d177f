"""results.jsonl: one schema-versioned row per cell, appended and fsynced as each finishes.

A truncated last line (a crash mid-write) is ignored on read, never fatal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = "results.jsonl"
RUN = "run.json"
FINISHED = ("ok", "skipped")  # failed cells are run again on resume


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash mid-write
            if isinstance(row, dict) and "cell" in row:
                rows.append(row)
    return rows


def latest_by_cell(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row written for each cell (a re-run of a failed cell supersedes it)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out[r["cell"]] = r
    return out


class ResultsFile:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / RESULTS
        self._repair()

    def _repair(self) -> None:
        """Make sure the file ends with a newline, so a cut-off line stays isolated."""
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, sort_keys=True, default=str) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def rows(self) -> list[dict[str, Any]]:
        return read_rows(self.path)

    def finished_keys(self) -> set[str]:
        return {k for k, r in latest_by_cell(self.rows()).items() if r.get("status") in FINISHED}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows())


def write_json_atomic(path: str | Path, data: Any) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
