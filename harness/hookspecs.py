"""Every optbench hook, one docstring each.

Contributions go through ``register`` callbacks handed to the plugin, so the core owns
each registry, checks types and rejects duplicate names. Lifecycle hooks are observers:
their return values are ignored, and one that raises costs a warning line, not the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .api import Backend, Dataset, Metric, ModelSource, Reporter, Technique

hookspec = pluggy.HookspecMarker("optbench")
hookimpl = pluggy.HookimplMarker("optbench")


# --- registration: called once per process, when a registry is first needed ---------


@hookspec
def optbench_register_techniques(register: Callable[[Technique], None]) -> None:
    """Register techniques (quantization, pruning, ...): call ``register(Technique())`` once per technique."""


@hookspec
def optbench_register_backends(register: Callable[[Backend], None]) -> None:
    """Register backends (device + precision policy + timer): ``register(Backend())``."""


@hookspec
def optbench_register_models(register: Callable[[ModelSource], None]) -> None:
    """Register model sources, named by a suite's ``model: {source: NAME}``."""


@hookspec
def optbench_register_datasets(register: Callable[[Dataset], None]) -> None:
    """Register datasets, named by a suite's ``data: {name: NAME}``."""


@hookspec
def optbench_register_metrics(register: Callable[[Metric], None]) -> None:
    """Register metrics, named in a suite's ``measure: {metrics: [...]}``; measured in the cell process."""


@hookspec
def optbench_register_reporters(register: Callable[[Reporter], None]) -> None:
    """Register report renderers; each writes one file into the results directory."""


# --- lifecycle: called in the runner process ----------------------------------------


@hookspec
def optbench_cell_started(cell: dict[str, Any]) -> None:
    """A cell is about to start in its own process. ``cell`` is the resolved cell config (read-only)."""


@hookspec
def optbench_cell_finished(cell: dict[str, Any], row: dict[str, Any]) -> None:
    """A cell finished and ``row`` (status ``ok``, ``failed`` or ``skipped``) is already on disk."""


@hookspec
def optbench_run_finished(run_dir: str, rows: list[dict[str, Any]]) -> None:
    """A run ended (completed or interrupted); ``rows`` holds every row of ``run_dir``'s results."""
