"""The environment fingerprint recorded per run (no torch import: versions from metadata)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from typing import Any

PACKAGES = ("torch", "torchao", "numpy", "optbench")
#: environment variables that change how fast the same code runs: thread pools and malloc
ENV_PREFIXES = ("OMP_", "KMP_", "MKL_", "GOMP_", "MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD")
FINGERPRINT_KEYS = ("cpu", "cpu_count", "gpu", "python", "packages", "threads", "omp")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[str]:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no driver, no library: no GPU
        return []


def git_commit(cwd: str = ".") -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if commit.returncode:
            return {}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=5)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def fingerprint(threads: int | None, env: dict[str, str], plugins: dict[str, str], cwd: str = ".") -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": affinity,
        "gpu": gpus(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "threads": threads,
        "omp": {k: v for k, v in {**os.environ, **env}.items() if k.startswith(ENV_PREFIXES)},
        # the repository the suite lives in; a suite kept outside one is run from the checkout under test
        "git": git_commit(cwd) or git_commit("."),
        "plugins": plugins,
        "hostname": platform.node(),
    }
    key = json.dumps({k: info[k] for k in FINGERPRINT_KEYS}, sort_keys=True)
    info["id"] = hashlib.sha256(key.encode()).hexdigest()[:12]
    return info
