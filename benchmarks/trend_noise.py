"""How noisy a technique's nightly trend series is, as its own latency and as latency_vs_baseline.

    python benchmarks/trend_noise.py DIR [DIR ...]

Reads the runs that benchmarks/false_alarm.py left in each DIR (made with ``--paired``), the
unchanged runs of every DIR in order first, then the slowed ones, as if they were one nightly
history with a step where the slowed runs begin. For each technique cell it prints the run-to-run
sd of the unchanged runs, and the steps change-point detection finds over the whole series:

- own latency: the cell's median per run, the value the ``latency`` series holds;
- latency_vs_baseline: the ratio to the baseline's model timed alternately, each run taken at the
  series' common machine state and baseline latency (:func:`optbench.compare.alternated_series`).

Runs of several hours mixed like this are harder than one machine's nights only where the hours
differ; the slowed runs' step is exactly ``--slowdown`` (busy-waiting, benchmarks/degrade_plugin.py).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from false_alarm import load  # noqa: E402


def main() -> None:
    from optbench import trends
    from optbench.compare import Measurement, alternated_series
    from optbench.history import alternated_line

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="directories of benchmarks/false_alarm.py runs")
    args = ap.parse_args()
    unchanged = [run for d in args.dirs for run in load(d, "unchanged")]
    slowed = [run for d in args.dirs for run in load(d, "slowed")]
    print(f"{len(unchanged)} unchanged runs, then {len(slowed)} slowed ones, from " + ", ".join(str(d) for d in args.dirs))
    cells = sorted({(r["technique"]["label"], r["workload"]["batch"]) for _, rows in unchanged for r in rows
                    if r.get("status") == "ok" and r["technique"]["label"] != "none"})
    for label, batch in cells:
        ms, points = [], []
        for _, rows in unchanged + slowed:
            row = next((r for r in rows if (r["technique"]["label"], r["workload"]["batch"]) == (label, batch)), None)
            ok = row is not None and row.get("status") == "ok"
            ms.append(Measurement.from_row(row, "latency") if ok else None)
            alt = alternated_line(row) if ok else None
            points.append({"value": alt[0], "rounds": alt[1], "flagged": ""} if alt else {"value": None, "flagged": "not timed alternately"})
        alternated = alternated_series(points)
        series = {"own latency": [m.value if m and not m.unstable and not m.slow else None for m in ms],
                  "latency_vs_baseline": [None if p.get("flagged") else p["value"] for p in alternated]}
        for name, values in series.items():
            kept = [(i, v) for i, v in enumerate(values) if v]
            before = [math.log(v) for i, v in kept if i < len(unchanged)]
            sd = f"{statistics.stdev(before):.2%}" if len(before) > 1 else "-"
            found = trends.steps([v for _, v in kept])
            at = ", ".join(f"run {kept[s['index']][0]} x{s['ratio']:.3f}" for s in found) or "none"
            print(f"  {label} b={batch:<3} {name:20} unchanged runs: sd {sd} ({len(before)} runs); "
                  f"steps: {at} (the slowed runs start at run {len(unchanged)}); {len(values) - len(kept)} runs left out")


if __name__ == "__main__":
    main()
