"""A test plugin that makes a technique worse on purpose, without changing any cell's key.

Set ``OPTBENCH_DEGRADE`` in the environment of ``optbench run``:

- ``quantize:slow=0.05``   every forward pass of the models the ``quantize`` technique
  returns busy-waits 0.05 x the pass's own measured time: exactly 5% slower whatever
  the machine's speed at that moment;
- ``none:noise=0.05``      Gaussian noise of 0.05 x each weight tensor's standard deviation is
  added to the weights before the ``none`` technique runs: accuracy drops;
- several, comma-separated: ``quantize:slow=0.5,none:noise=0.1``.

The suite, its cells and their keys are exactly those of an unchanged run (the plugin
wraps the technique's ``apply`` from the inside), which is what a regression in a
technique's code looks like to ``optbench compare``. Without the variable the plugin does
nothing. It is loaded like any plugin: an entry point (the tests write one) or
``optbench.testing.run_suite_yaml(..., plugins={"degrade": "degrade_plugin"})``.
"""

from __future__ import annotations

import os
import time

from optbench import Technique, hookimpl

ENV = "OPTBENCH_DEGRADE"


def parse(spec: str) -> dict[str, dict[str, float]]:
    """'quantize:slow=0.05,none:noise=0.1' -> {'quantize': {'slow': 0.05}, 'none': {'noise': 0.1}}."""
    out: dict[str, dict[str, float]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, setting = part.partition(":")
        key, _, value = setting.partition("=")
        if key not in ("slow", "noise"):
            raise ValueError(f"{ENV}: {part!r}: expected TECHNIQUE:slow=FRACTION or TECHNIQUE:noise=FRACTION")
        out.setdefault(name, {})[key] = float(value)
    return out


def slow_down(model, fraction: float):
    """Make every forward pass ``fraction`` slower than it measures itself to be."""
    forward = model.forward

    def slowed(*args, **kwargs):
        t0 = time.perf_counter()
        out = forward(*args, **kwargs)
        end = time.perf_counter() + fraction * (time.perf_counter() - t0)
        while time.perf_counter() < end:
            pass
        return out

    model.forward = slowed
    return model


def add_noise(model, fraction: float, seed: int = 1234):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point() and p.numel() > 1:
                p.add_(torch.randn(p.shape, generator=g).to(p.device, p.dtype) * (fraction * float(p.std())))
    return model


def _wrap(cls: type, how: dict[str, float]) -> None:
    if getattr(cls.apply, "_degraded", None) == how:
        return
    original = getattr(cls.apply, "_original", cls.apply)

    def apply(self, model, params, ctx):
        if how.get("noise"):
            model = add_noise(model, how["noise"])
        model = original(self, model, params, ctx)
        if how.get("slow"):
            model = slow_down(model, how["slow"])
        return model

    apply._degraded = how
    apply._original = original
    cls.apply = apply


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


@hookimpl
def optbench_register_techniques(register):
    # called when a process first collects techniques, after the built-ins registered theirs
    spec = parse(os.environ.get(ENV, ""))
    for cls in _subclasses(Technique):
        if getattr(cls, "name", None) in spec:
            _wrap(cls, spec[cls.name])
