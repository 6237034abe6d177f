"""Helpers for tests: real plugin distributions on disk, CLI runs, small suites."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# A model that needs no checkpoint and runs in milliseconds: keeps end-to-end tests fast.
SMALL_MODEL = "{source: reference, size: tiny, depth: 1, width: 64, heads: 2}"
FAST_MEASURE = "{min_reps: 5, min_time_s: 0.05, max_time_s: 5, eval_tokens: 512, eval_seq_len: 32}"


def make_dist(root: Path, dist: str, version: str, module: str, source: str, entry: str | None = None) -> Path:
    """Write an installed-looking distribution: a module plus its .dist-info with an entry point.

    Putting ``root`` on sys.path (PYTHONPATH) is exactly what an installed package looks like
    to importlib.metadata, so the loader is exercised for real, not monkeypatched.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[optbench]\n{entry or module} = {module}\n")
    (info / "RECORD").write_text("")
    return root


def cli(*args: str, env_extra: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "optbench", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def rows_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


