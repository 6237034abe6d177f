"""Generate a synthetic nightly history: N runs of the quickstart's four cells, with a step.

    python benchmarks/make_history.py -o /tmp/history-365.db --runs 365
    optbench history --history /tmp/history-365.db --cell int8-weight-only --metric latency
    time optbench compare --history /tmp/history-365.db

Each run has the quickstart's cells (none / int8-weight-only x batch 1 / 8) with five
interleaved rounds of 30 latency samples each, the memory, cost, accuracy and fidelity
values of a real run, a run-to-run drift of 1.5% and a round-to-round spread of 0.7%,
2% of the nights in a 10x slow mode (flagged as the runner flags them), and an 8% latency
step of int8 at batch 1 from run ``--step-at`` on (default: two nights before the last run).
The int8 cells' rounds after the first are also timed alternately with the baseline's model
(``measure.paired_s``): their ratio spreads 1.5% from round to round, a fifth of the rounds in a
second machine state (the baseline model 35% slower, the speed probe 25% slower, the ratio 1%
higher), so the ``latency_vs_baseline`` series and its trend have a history to read too.
Every run is recorded with its verdict against its predecessor, as a real night would be.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import time
from pathlib import Path
from typing import Any

from optbench.history import History, verdict_against_predecessor
from optbench.measure.latency import summarize

CELLS = [  # (technique label, batch, latency s, model bytes, perplexity, top-1, kl, agreement)
    ("none", 1, 0.0105, 13_424_640, 2.7279, 0.7015, 0.0, 1.0),
    ("int8-weight-only", 1, 0.0140, 3_842_560, 2.7282, 0.7013, 5.3e-5, 0.9981),
    ("none", 8, 0.0850, 13_424_640, 2.7279, 0.7015, 0.0, 1.0),
    ("int8-weight-only", 8, 0.0700, 3_842_560, 2.7282, 0.7013, 5.3e-5, 0.9981),
]
ENV = {"id": "synthetic01", "cpu": "AMD EPYC", "cpu_count": 2, "gpu": [], "python": "3.11.7", "threads": 2,
       "omp": {"OMP_NUM_THREADS": "2"}, "packages": {"torch": "2.13.0+cpu", "torchao": "0.18.0", "optbench": "0.1.0"},
       "plugins": {"quantize": "optbench==0.1.0", "metrics": "optbench==0.1.0"}, "hostname": "ci-runner", "machine": "x86_64"}


def make_run(i: int, rnd: random.Random, step_at: int, rounds: int = 5) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    started = (dt.datetime(2025, 1, 1, 2, 0, tzinfo=dt.timezone.utc) + dt.timedelta(days=i)).isoformat(timespec="seconds")
    run_id = f"{started[:10].replace('-', '')}T020000Z-{i:06x}"
    night = math.exp(rnd.gauss(0, 0.015))            # the machine's level tonight
    slow_night = rnd.random() < 0.02
    probe = 2.5e-4 * night * (12 if slow_night else 1)
    rows = []
    for label, batch, lat, nbytes, ppl, top1, kl, agree in CELLS:
        level = lat * night * (1.08 if (label, batch) == ("int8-weight-only", 1) and i >= step_at else 1.0)
        medians = [level * math.exp(rnd.gauss(0, 0.007)) * (10 if slow_night else 1) for _ in range(rounds)]
        samples = [m * math.exp(rnd.gauss(0, 0.02)) for m in medians for _ in range(30)]
        stats = summarize(samples).to_dict()
        stats["speed_probe_s"] = [probe] * (2 * rounds)
        stats["rounds"] = [{"round": r + 1, "median": m, "n": 30, "ci95": [m * 0.99, m * 1.01]} for r, m in enumerate(medians)]
        if label != "none":
            base = next(c[2] for c in CELLS if c[:2] == ("none", batch))
            for rd in stats["rounds"][1:]:
                other = rnd.random() < 0.2
                rd["paired"] = {"ratio": lat / base * (level / (lat * night)) * (1.01 if other else 1.0) * math.exp(rnd.gauss(0, 0.015)),
                                "base_median": base * night * (1.35 if other else 1.0) * math.exp(rnd.gauss(0, 0.02)),
                                "speed_probe_s": probe * (1.25 if other else 1.0)}
        key = f"{label}-{batch}".replace("-weight-only", "")
        row = {
            "schema": 1, "run_id": run_id, "cell": f"cell-{key}", "suite": "quickstart",
            "technique": {"name": "none" if label == "none" else "quantize", "label": label, "params": {}},
            "backend": "cpu", "model": {"source": "reference", "size": "tiny"}, "workload": {"kind": "forward", "batch": batch, "seq_len": 128},
            "status": "ok", "reason": "", "plugins": ENV["plugins"], "started": started, "seconds": 12.0,
            "metrics": {
                "latency": stats, "throughput": {"value": batch * 128 / stats["median"], "unit": "tokens/s"},
                "model_bytes": {"value": nbytes, "unit": "B"}, "serialized_bytes": {"value": nbytes + 17_220, "unit": "B"},
                "param_bytes": {"value": nbytes, "unit": "B"}, "peak_rss": {"value": 6.1e8 * math.exp(rnd.gauss(0, 0.01)), "unit": "B"},
                "parameters": {"value": 3_356_160, "unit": "count"}, "flops_per_token": {"value": 6_946_816, "unit": "FLOP"},
                "perplexity": {"value": ppl, "unit": ""}, "top1_accuracy": {"value": top1, "unit": "fraction"},
                "kl_divergence": {"value": kl, "unit": "nats/token"}, "top1_agreement": {"value": agree, "unit": "fraction"},
            },
        }
        if slow_night:
            row["slow_machine"] = "speed probe 12.0x the run's fastest so far"
        rows.append(row)
    meta = {"schema": 1, "run_id": run_id, "suite": "quickstart", "suite_sha256": "5" * 64, "suite_text": "name: quickstart\n",
            "started": started, "segments": [{"started": started, "finished": started, "interrupted": False}],
            "environment": {**ENV, "git": {"commit": f"{i:040x}", "dirty": False}}, "rounds": rounds, "thresholds": {},
            "history": None}
    return meta, rows


def build(path: Path, runs: int = 365, step_at: int | None = None, seed: int = 0, rounds: int = 5) -> int:
    """Write the history; returns the run where the step starts."""
    if path.exists():
        path.unlink()
    rnd = random.Random(seed)
    step_at = step_at if step_at is not None else runs - 3
    with History.open(path) as h:
        for i in range(runs):
            meta, rows = make_run(i, rnd, step_at, rounds)
            h.record(meta, rows, verdict_against_predecessor(h, meta, rows))
    return step_at


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", required=True, help="history database to create (replaced if it exists)")
    ap.add_argument("--runs", type=int, default=365)
    ap.add_argument("--step-at", type=int, help="first run of the int8 b=1 latency step (default: runs - 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds a run (the nightly example's: 20)")
    args = ap.parse_args()
    out = Path(args.output)
    t0 = time.perf_counter()
    step_at = build(out, args.runs, args.step_at, args.seed, args.rounds)
    print(f"{out}: {args.runs} runs, int8-weight-only b=1 latency +8% from run {step_at}; {time.perf_counter() - t0:.1f} s, "
          f"{out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
