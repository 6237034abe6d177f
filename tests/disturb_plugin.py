"""A plugin that makes the speed probe say the machine was disturbed in chosen rounds, for
test_runner.py's measure.extend_s tests.

The runner process writes each cell round's number to ``$OPTBENCH_TEST_ROUND_FILE`` as the cell
starts (``optbench_cell_started``); the cell process, forked after, reads it back, and its speed
probe reads 100 us in the quiet state and 250 us (2.5x, a neighbour) in the rounds listed in
``$OPTBENCH_TEST_DISTURBED`` ('2,3' or '2-'), so the rounds' states are known exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

from optbench import hookimpl
from optbench.measure import latency

QUIET, DISTURBED = 100e-6, 250e-6


def _round_file() -> Path:
    return Path(os.environ["OPTBENCH_TEST_ROUND_FILE"])


def disturbed(rnd: int, spec: str) -> bool:
    for part in filter(None, spec.split(",")):
        lo, dash, hi = part.partition("-")
        if int(lo) <= rnd <= (int(hi) if hi else 10**9 if dash else int(lo)):
            return True
    return False


def speed_probe() -> float:
    rnd = int(_round_file().read_text())
    return DISTURBED if disturbed(rnd, os.environ.get("OPTBENCH_TEST_DISTURBED", "")) else QUIET


latency.speed_probe = speed_probe


@hookimpl
def optbench_cell_started(cell):
    _round_file().write_text(str(cell.get("round", 1)))
