"""The objects plugins register: Technique, Backend, ModelSource, Dataset, Metric, Reporter.

This module imports no torch: listing and validating plugins stays instant. Each class
is a base to subclass; the core checks registrations against these classes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

TECHNIQUE_KINDS = ("compress", "train", "parallel", "structure", "baseline")


class SkipCell(Exception):
    """Raise from a plugin to mark the current cell ``skipped`` with this reason."""


class PluginObject:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: parameter defaults; their types are the schema (bool, int, float, str, list)
    params: ClassVar[dict[str, Any]] = {}
    #: allowed values for string parameters, e.g. {"method": ["int8-weight-only"]}
    choices: ClassVar[dict[str, list[Any]]] = {}

    def validate(self, params: dict[str, Any]) -> list[str]:
        """Extra checks beyond types and choices; return one message per problem."""
        return []


class Technique(PluginObject):
    """Changes a model for real: ``apply`` returns the changed model."""

    kind: ClassVar[str] = "compress"
    #: modules worth importing once in the cell server (heavy imports like torchao)
    preload: ClassVar[tuple[str, ...]] = ()

    def supported(self, params: dict[str, Any], backend: Backend) -> tuple[bool, str]:
        """Whether these params can run on ``backend``; the reason becomes the skip reason."""
        return True, ""

    def label(self, params: dict[str, Any]) -> str:
        """Short name shown in reports; defaults to name plus non-default params."""
        extra = {k: v for k, v in params.items() if self.params.get(k) != v}
        return self.name + ("[" + ",".join(f"{k}={v}" for k, v in extra.items()) + "]" if extra else "")

    def apply(self, model: Any, params: dict[str, Any], ctx: CellContext) -> Any:
        raise NotImplementedError


class Backend(PluginObject):
    """Where and how a cell runs: device, precision policy, synchronisation and timer."""

    device: ClassVar[str] = "cpu"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def prepare(self, model: Any, ctx: CellContext) -> Any:
        """Move/convert the model for this backend; returns the model to measure."""
        return model.to(self.device)

    def synchronize(self) -> None:
        pass

    def time_call(self, fn: Callable[[], Any]) -> float:
        """Seconds one call of ``fn`` takes, synchronised so queued device work is included."""
        self.synchronize()
        t0 = time.perf_counter()
        fn()
        self.synchronize()
        return time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        """Facts recorded in every result row (device name, precision, threads...)."""
        return {"device": self.device}


class ModelSource(PluginObject):
    """Where models come from (the reference family, a local Hugging Face directory...)."""

    def fingerprint(self, params: dict[str, Any]) -> str:
        """A cheap identity of the weights (checkpoint hash) that goes into the cell key."""
        return ""

    def load(self, params: dict[str, Any], ctx: CellContext) -> tuple[Any, dict[str, Any]]:
        """Return ``(model, meta)``; ``meta`` is recorded in the result row."""
        raise NotImplementedError


class Dataset(PluginObject):
    """Text for evaluation and training, split by document."""

    splits: ClassVar[tuple[str, ...]] = ("train", "validation", "heldout")

    def load(self, split: str) -> bytes:
        raise NotImplementedError


class Metric(PluginObject):
    """Measured in the cell process; returns ``{metric_name: value dict}``.

    A value dict holds ``value`` and ``unit``; timed metrics hold ``median``, ``p90``,
    ``mean``, ``stdev``, ``n``, ``ci95`` and raw ``samples`` instead of ``value``.
    A value derived from a timed one (throughput) may say so with
    ``{"value": v, "per": "latency", "numerator": x}``: pooled rounds recompute it as
    ``numerator / pooled median``.
    """

    #: timed metrics are measured again in every round of a ``rounds: N`` suite, and their
    #: raw samples pooled; the others (bytes, accuracy) are measured in the first round only
    timed: ClassVar[bool] = False

    def measure(self, ctx: CellContext) -> dict[str, dict[str, Any]]:
        raise NotImplementedError


class Reporter(PluginObject):
    """Renders a report file from result rows."""

    filename: ClassVar[str] = ""

    def render(self, report: Any, out_dir: str) -> str:
        """Write the file into ``out_dir`` and return its path."""
        raise NotImplementedError


@dataclass
class CellContext:
    """What a plugin sees while a cell runs (in the cell's own process)."""

    cell: dict[str, Any]
    backend: Backend
    device: str
    seed: int
    model: Any = None  # the model being measured (after technique and backend)
    baseline_model: Any = None
    dataset: Dataset | None = None
    model_meta: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # cache between metrics (eval windows, logits)
    log: Callable[[str], None] = print

    @property
    def workload(self) -> dict[str, Any]:
        return self.cell["workload"]

    @property
    def measure(self) -> dict[str, Any]:
        return self.cell["measure"]

    @property
    def baseline_is_self(self) -> bool:
        """This cell's technique is the suite's baseline: the model is its own baseline."""
        return self.cell["technique"] == self.cell["baseline"]

    def data(self, split: str) -> bytes:
        assert self.dataset is not None
        return self.dataset.load(split)


REGISTRY_TYPES: dict[str, type[PluginObject]] = {
    "techniques": Technique,
    "backends": Backend,
    "models": ModelSource,
    "datasets": Dataset,
    "metrics": Metric,
    "reporters": Reporter,
}
