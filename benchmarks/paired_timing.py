"""How much a ratio of two models' latencies moves from round to round, timed one after the other
or alternately (``measure.paired_s``, optbench.measure.latency.alternate).

    python benchmarks/paired_timing.py                    # int8 weight-only over fp32, batch 1, 30 rounds
    python benchmarks/paired_timing.py --batch 8 --rounds 20 --slowdown 0.05

In one process: the tiny reference model (fp32) and an int8 weight-only copy. Each round times
fp32 for ``--seconds`` and then int8 for as long (one after the other, as two cells of a round
are timed seconds apart), then the two alternately in 50 ms blocks for as long again, then
sleeps 2 s so that rounds spread over the machine's drift as a run's do. Rounds are split into
the machine's states by the fp32 median (the 2-core VM's fast and slow states differ by 30-40%
there); the spread that matters to compare is the round-to-round sd of the log ratio within one
state. ``--slowdown`` makes the int8 model that much slower (benchmarks/degrade_plugin.py), to
check the ratio moves by it. Nothing else may run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=0.5, help="timing of each model each way, per round")
    ap.add_argument("--slowdown", type=float, default=0.0, metavar="FRACTION")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    from degrade_plugin import slow_down
    from optbench.measure.latency import alternate
    from optbench.models import reference
    from optbench.plugins.quantize import Quantize

    torch.set_num_threads(args.threads)
    fp32, _ = reference.load("tiny", {})
    fp32.eval()
    int8 = Quantize().apply(copy.deepcopy(fp32), {"method": "int8-weight-only"}, SimpleNamespace(device="cpu"))
    if args.slowdown:
        slow_down(int8, args.slowdown)
    x = torch.randint(0, 256, (args.batch, 128), generator=torch.Generator().manual_seed(0))

    def timer(model):
        def call() -> float:
            t0 = time.perf_counter()
            with torch.inference_mode():
                model(x)
            return time.perf_counter() - t0
        return call

    def block(call, seconds: float) -> list[float]:
        out, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end or len(out) < 3:
            out.append(call())
        return out

    a, b = timer(fp32), timer(int8)
    block(a, 0.5), block(b, 0.5)
    level, seq, alt = [], [], []
    for r in range(args.rounds):
        base = block(a, args.seconds)
        model = block(b, args.seconds)
        seq.append(math.log(statistics.median(model) / statistics.median(base)))
        p = alternate(a, b, args.seconds)
        alt.append(math.log(p["ratio"]))
        level.append(p["base_median"])
        print(f"round {r + 1:2}: fp32 {p['base_median'] * 1e3:6.2f} ms   int8/fp32 one after the other "
              f"{math.exp(seq[-1]):.3f}, alternated {p['ratio']:.3f}", flush=True)
        time.sleep(2)

    lo, hi = min(level), max(level)
    cut = (lo + hi) / 2 if hi > 1.25 * lo else hi * 2  # two states when fp32's medians split 25% or more
    print(f"\nbatch {args.batch}, {args.rounds} rounds, slowdown {args.slowdown:.0%}; states by the fp32 median "
          f"({'one state' if cut > hi else f'split at {cut * 1e3:.2f} ms'}):")
    for name, xs in (("one after the other", seq), ("alternated 50 ms", alt)):
        parts = []
        for state, sel in (("fast", [v for v, lv in zip(xs, level, strict=True) if lv < cut]),
                           ("slow", [v for v, lv in zip(xs, level, strict=True) if lv >= cut])):
            if len(sel) > 2:
                parts.append(f"{state}: {len(sel)} rounds, ratio {math.exp(statistics.fmean(sel)):.3f}, "
                             f"round sd {100 * statistics.stdev(sel):.1f}%")
        print(f"  {name:20} all rounds: sd {100 * statistics.stdev(xs):.1f}%   " + "   ".join(parts))


if __name__ == "__main__":
    main()
