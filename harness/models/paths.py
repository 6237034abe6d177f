"""Where reference checkpoints live (no torch import: used by `validate` and cell keys)."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

SIZE_NAMES = ("tiny", "small", "base")
SHIPPED = ("tiny",)


def cache_dir() -> Path:
    base = os.environ.get("OPTBENCH_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "optbench")
    return Path(base) / "models"


def shipped_path(size: str) -> Path:
    return Path(str(resources.files("optbench.models").joinpath("data", f"{size}.pt")))


def checkpoint_path(size: str) -> Path:
    p = shipped_path(size)
    return p if size in SHIPPED and p.exists() else cache_dir() / f"{size}.pt"


def card(size: str) -> dict | None:
    """The JSON card written beside a checkpoint (hash, perplexities), or None if unbuilt."""
    try:
        return json.loads(checkpoint_path(size).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
