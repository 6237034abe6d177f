"""Imported first in the cell server: silence import-time chatter of optional libraries.

torchao logs one warning per optional CUDA extension it cannot load on a CPU build;
those lines say nothing about the benchmark and would bury the per-cell output.
"""

import logging

logging.getLogger("torchao").setLevel(logging.ERROR)
# torchao registers an Enum with torch's pytree at import, which torch 2.13 warns about
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
