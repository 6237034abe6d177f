"""The ``none`` technique: the unoptimised model every row is compared with."""

from optbench import Technique, hookimpl


class NoTechnique(Technique):
    name = "none"
    kind = "baseline"
    description = "the model as loaded, unchanged (the usual baseline)"

    def label(self, params):
        return "none"

    def apply(self, model, params, ctx):
        return model


@hookimpl
def optbench_register_techniques(register):
    register(NoTechnique())
