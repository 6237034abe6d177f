"""optbench: a plugin-based benchmarking harness for model optimization techniques.

A plugin needs one import::

    from optbench import hookimpl, Technique

Importing this package never imports torch.
"""

from .api import Backend, CellContext, Dataset, Metric, ModelSource, Reporter, SkipCell, Technique
from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = [
    "Backend",
    "CellContext",
    "Dataset",
    "Metric",
    "ModelSource",
    "Reporter",
    "SkipCell",
    "Technique",
    "hookimpl",
    "__version__",
]
