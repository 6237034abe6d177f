"""Optimizers for training workloads: SGD, momentum, Nesterov, Adam, AdamW, RMSprop, Adagrad.

Each is a technique of kind ``train`` whose params are the optimizer's hyperparameters
plus a learning-rate ``schedule`` (``constant``, ``cosine``, ``linear-warmup`` with
``warmup_steps``). ``apply`` leaves the model as it is: the training loop
(``optbench.training``) asks the technique for its optimizer through ``make_optimizer``
and trains with it, the same seed and data order for every optimizer. They are
torch.optim's optimizers and lr schedulers, nothing re-implemented.
"""

from __future__ import annotations

from optbench import Technique, hookimpl
from optbench.training import OPTIMIZERS, SCHEDULES, build_optimizer, check_optimizer_params


class Optimizer(Technique):
    kind = "train"
    choices = {"schedule": list(SCHEDULES)}

    def validate(self, params):
        return check_optimizer_params(self.name, params)

    def apply(self, model, params, ctx):
        return model  # an optimizer changes the model by training it: see make_optimizer

    def make_optimizer(self, parameters, params, steps):
        """``(torch optimizer, lr scheduler)`` over ``parameters`` for a budget of ``steps``."""
        return build_optimizer(self.name, parameters, params, steps)


class BuiltinOptimizer(Optimizer):
    """One of torch.optim's optimizers from the table in ``optbench.training``."""

    def __init__(self, name: str):
        spec = OPTIMIZERS[name]
        self.name, self.description, self.params = name, spec.description, spec.params


@hookimpl
def optbench_register_techniques(register):
    for name in OPTIMIZERS:  # sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad
        register(BuiltinOptimizer(name))
