"""An example optbench plugin: low-rank factorisation of Linear layers (technique ``low-rank``).

The hooks live in :mod:`optbench_example_plugin.plugin`; the torch code in
:mod:`optbench_example_plugin.lowrank`, imported only when a cell needs it.
"""

__version__ = "0.1.0"
