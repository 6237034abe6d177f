"""A plugin that makes the machine look disturbed in chosen rounds, for test_runner.py's
measure.extend_s tests.

The runner process writes each cell round's number to ``$OPTBENCH_TEST_ROUND_FILE`` as the cell
starts (``optbench_cell_started``); the cell process, forked after, reads it back. In the rounds
listed in ``$OPTBENCH_TEST_DISTURBED`` ('2,3' or '2-') the cell reads disturbed: its speed probe
250 us against 100 us, and the latencies it times (the cell's samples, the baseline model's in the
alternation, a quick median) 2.5 ms against 1 ms, so the rounds' states are known exactly.
``$OPTBENCH_TEST_DISTURB=latency`` leaves the probe at 100 us, as a neighbour busy on the other
core does on the 2-core VM; ``probe``, the latencies.
"""

from __future__ import annotations

import os
from pathlib import Path

from optbench import hookimpl
from optbench.measure import latency

QUIET, DISTURBED = 100e-6, 250e-6
QUIET_S, DISTURBED_S = 1e-3, 2.5e-3


def _round() -> int:
    return int(Path(os.environ["OPTBENCH_TEST_ROUND_FILE"]).read_text())


def disturbed(rnd: int, spec: str) -> bool:
    for part in filter(None, spec.split(",")):
        lo, dash, hi = part.partition("-")
        if int(lo) <= rnd <= (int(hi) if hi else 10**9 if dash else int(lo)):
            return True
    return False


def _now(kind: str) -> bool:
    return os.environ.get("OPTBENCH_TEST_DISTURB", "both") in (kind, "both") and \
        disturbed(_round(), os.environ.get("OPTBENCH_TEST_DISTURBED", ""))


def speed_probe() -> float:
    return DISTURBED if _now("probe") else QUIET


def seconds() -> float:
    return DISTURBED_S if _now("latency") else QUIET_S


_measure, _alternate = latency.measure, latency.alternate


def measure(time_call, **kw):
    def fake():
        time_call()  # the model still runs; its seconds are the state's
        return seconds()
    return _measure(fake, **kw)


def alternate(base, model, seconds_, **kw):
    out = _alternate(base, model, seconds_, **kw)
    return {**out, "base_median": seconds(), "median": out["ratio"] * seconds()}


latency.speed_probe = speed_probe
latency.measure = measure
latency.alternate = alternate
latency.quick_median = lambda call, reps=5: seconds()


@hookimpl
def optbench_cell_started(cell):
    Path(os.environ["OPTBENCH_TEST_ROUND_FILE"]).write_text(str(cell.get("round", 1)))
