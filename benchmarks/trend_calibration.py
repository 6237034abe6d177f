"""Calibrate the change-point penalty (optbench.trends.BETA) on synthetic nightly series.

    python benchmarks/trend_calibration.py [--trials 40]

For each penalty multiplier: how often pure noise (365 runs, 1% and 3% noise, 2% of the
nights in a 10x slow mode) gets a spurious step, how often a 5% step is found (at run 300
of 365, and 3 runs before the end of a 60-run history), and the time per 365-run series.
"""

from __future__ import annotations

import argparse
import math
import random
import time

from optbench import trends


def series(n: int, sigma: float, step_at: int | None = None, step: float = 1.0, outliers: float = 0.0, seed: int = 0) -> list[float]:
    r = random.Random(seed)
    out = []
    for i in range(n):
        v = math.exp(r.gauss(0, sigma)) * (step if step_at is not None and i >= step_at else 1.0)
        if r.random() < outliers:
            v *= 10
        out.append(v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--betas", default="2,3,4,6,8")
    args = ap.parse_args()
    n = args.trials
    for beta in (float(b) for b in args.betas.split(",")):
        spurious = found = found_late = 0
        t = 0.0
        for s in range(n):
            for sigma in (0.01, 0.03):
                t0 = time.perf_counter()
                spurious += bool(trends.find_steps(series(365, sigma, outliers=0.02, seed=s), beta=beta))
                t += time.perf_counter() - t0
            found += any(abs(i - 300) <= 1 for i in trends.find_steps(series(365, 0.01, 300, 1.05, 0.02, 100 + s), beta=beta))
            found_late += 57 in trends.find_steps(series(60, 0.01, 57, 1.05, 0.0, 200 + s), beta=beta)
        print(f"beta={beta:g}: spurious step in {spurious}/{2 * n} noise-only series; 5% step found {found}/{n} (run 300 of 365), "
              f"{found_late}/{n} (3 runs from the end); {t / (2 * n) * 1e3:.0f} ms per 365-run series")


if __name__ == "__main__":
    main()
