"""False-alarm and detection rates of ``optbench compare`` on quickstart-like runs.

    python benchmarks/false_alarm.py --unchanged 15 --slowed 5 -o /tmp/false-alarm

Runs N unchanged runs and M runs whose ``quantize`` technique is made exactly ``--slowdown``
(default 5%) slower by benchmarks/degrade_plugin.py (busy-waiting that fraction of each
forward pass's own time; cell keys stay the same), interleaved U, S, U, S... so machine
drift hits both kinds alike. The unchanged runs are recorded in DIR/history.db. Then:

- false alarms: every pair (i < j) of unchanged runs compared, baseline i, current j; a
  compare with any regression flagged is a false alarm (the target: at most 1 in 100);
- detection: every (unchanged baseline, slowed current) pair; per quantize cell, flagged
  or not (the target: at least 19 in 20); per compare, all slowed cells flagged;

each under several rules: the default (rounds as replicates; rounds measured in the VM's
slower state left out; a technique's cells relative to the baseline's cell of the same round),
the same with the history's run-to-run noise (leave-two-out: the history without the two runs
compared), the default without the state check, absolute timings only, and asv's raw-sample
Mann-Whitney rule for reference. Also printed: the
variance components the rule relies on (round-to-round and run-to-run spread of each
cell's latency, in %) and how often cells were not comparable (slow mode, unstable).

``--reuse`` skips running and analyses the runs already in DIR. The defaults are the settings
of examples/ci/nightly-suite.yaml (10 rounds, min_time_s 0.5): about 90 s a run on the 2-core
VM. Nothing else may run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SUITE = """name: false-alarm
question: Does optbench compare stay quiet on unchanged runs and catch a {slow:.0%} slowdown?
model: {{source: reference, size: tiny}}
data: {{name: pydoc-text, split: heldout}}
backend: cpu
threads: {threads}
workload: {{kind: forward, batch: [1, 8], seq_len: 128}}
measure: {{warmup: auto, min_reps: 20, min_time_s: {min_time}, max_time_s: 20, metrics: [latency, memory]}}
baseline: none
techniques:
  - none
  - quantize: {{method: int8-weight-only}}
rounds: {rounds}
timeout: 300
"""


def run_all(out: Path, n_unchanged: int, n_slowed: int, rounds: int, slowdown: float, min_time: float, threads: int) -> None:
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")]))
    sys.path.insert(0, str(HERE))
    from optbench.testing import run_suite_yaml

    text = SUITE.format(slow=slowdown, min_time=min_time, rounds=rounds, threads=threads)
    order = ["u"] * n_unchanged + ["s"] * n_slowed
    order = [k for pair in itertools.zip_longest(order[:n_unchanged], order[n_unchanged:]) for k in pair if k]
    counts = {"u": 0, "s": 0}
    for kind in order:
        counts[kind] += 1
        d = out / f"{'unchanged' if kind == 'u' else 'slowed'}-{counts[kind]:02d}"
        if (d / "run.json").exists() and json.loads((d / "run.json").read_text()).get("segments", [{}])[-1].get("finished"):
            continue
        os.environ["OPTBENCH_DEGRADE"] = f"quantize:slow={slowdown}" if kind == "s" else ""
        t0 = time.perf_counter()
        run_suite_yaml(text, d, plugins={"degrade": "degrade_plugin"}, fast=False)
        print(f"{d.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    os.environ.pop("OPTBENCH_DEGRADE", None)


def load(out: Path, prefix: str) -> list[tuple[dict, list[dict]]]:
    from optbench.results import read_rows, rows_by_cell

    runs = []
    for d in sorted(out.glob(f"{prefix}-*")):
        if (d / "run.json").exists():
            runs.append((json.loads((d / "run.json").read_text()), list(rows_by_cell(read_rows(d)).values())))
    return runs


def record_history(out: Path) -> None:
    """Record the finished unchanged runs in DIR/history.db, oldest first: the nightly history a
    compare would see (the slowed runs are the changes under test, not part of its noise).
    Runs made through optbench.testing keep no history of their own."""
    from optbench.history import History, record_run_dir

    db = out / "history.db"
    with History.open(db) as h:
        known = {r["run_id"] for r in h.runs()}
    runs = [(json.loads((d / "run.json").read_text()), d) for d in out.glob("unchanged-*") if (d / "run.json").exists()]
    for meta, d in sorted(runs, key=lambda x: x[0].get("started", "")):
        if meta["run_id"] not in known and (meta.get("segments") or [{}])[-1].get("finished"):
            record_run_dir(d, path=db, log=lambda _: None)


def analyse(out: Path) -> None:
    from optbench.compare import NOT_COMPARABLE, REGRESSION, STATE_MARGIN, Measurement, compare_runs, decide, rule_for
    from optbench.history import History, history_noise

    unchanged, slowed = load(out, "unchanged"), load(out, "slowed")
    print(f"{len(unchanged)} unchanged runs, {len(slowed)} slowed runs in {out}")
    record_history(out)
    h = History.open(out / "history.db")

    # variance components: the spread the rule has to see through
    by_cell: dict[str, list[list[float]]] = {}
    for _, rows in unchanged:
        for r in rows:
            m = Measurement.from_row(r, "latency")
            if m and not m.unstable and not m.slow:
                by_cell.setdefault(f"{r['technique']['label']} b={r['workload']['batch']}", []).append([math.log(x) for x in m.rounds])
    print("\nlatency spread of unchanged runs (clean cells only):")
    for cell, runs in sorted(by_cell.items()):
        within = [statistics.stdev(x) for x in runs if len(x) > 1]
        means = [statistics.fmean(x) for x in runs]
        between = statistics.stdev(means) if len(means) > 1 else float("nan")
        print(f"  {cell:24} round-to-round sd {100 * statistics.fmean(within) if within else float('nan'):.2f}%, "
              f"run-to-run sd of run means {100 * between:.2f}% ({len(runs)} runs)")

    def flagged(base, cur, variant):
        (bm, br), (cm, cr) = base, cur
        noise = None
        if variant == "history":
            # every other unchanged run, before or after (leave-two-out), not only the earlier ones
            noise = history_noise(h, {**cm, "started": "9999"}, cr, exclude=(bm["run_id"], cm["run_id"]))
        if variant == "asv":
            out_cells = {}
            for b in br:
                c = next((x for x in cr if x["cell"] == b["cell"]), None)
                mb, mc = Measurement.from_row(b, "latency"), Measurement.from_row(c, "latency") if c else None
                if mb and mc:
                    raw_b = Measurement(mb.value, samples=mb.samples)
                    raw_c = Measurement(mc.value, samples=mc.samples)
                    out_cells[b["technique"]["label"] + f" b={b['workload']['batch']}"] = decide(raw_b, raw_c, rule_for("latency")).status
            return out_cells
        cmp = compare_runs(bm, br, cm, cr, history_noise=noise, relative=variant != "absolute",
                           state_margin=None if variant == "no state check" else STATE_MARGIN)
        return {r.name.split(" cpu ")[0] + " b=" + r.name.split(" b=")[1].split(" ")[0]: r.verdict.status
                for r in cmp.results if r.metric == "latency"}

    def rates(label: str, fa_pairs: list, det_pairs: list) -> None:
        fa = nc = det = det_n = det_nc = comp = 0
        for base, cur in fa_pairs:
            st = flagged(base, cur, label)
            fa += any(s == REGRESSION for s in st.values())
            nc += sum(s == NOT_COMPARABLE for s in st.values())
        for base, cur in det_pairs:
            st = flagged(base, cur, label)
            slowed_cells = [v for k, v in st.items() if not k.startswith("none")]
            det += sum(v == REGRESSION for v in slowed_cells)
            det_n += len(slowed_cells)
            det_nc += sum(v == NOT_COMPARABLE for v in slowed_cells)
            nc += sum(v == NOT_COMPARABLE for v in st.values())
            comp += bool(slowed_cells) and all(v == REGRESSION for v in slowed_cells)
        fa_n, comparable = len(fa_pairs), det_n - det_nc
        print(f"{label:22} {fa:4d} / {fa_n:<4d} ({100 * fa / max(fa_n, 1):5.1f}%)          "
              f"{det:4d} / {det_n:<4d} ({100 * det / max(det_n, 1):5.1f}%)   "
              f"{det:4d} / {comparable:<4d} ({100 * det / max(comparable, 1):5.1f}%)   {comp:3d} / {len(det_pairs):<3d}      {nc}")

    header = ("rule                   false alarms (unchanged pairs)   detection per slowed cell   of those comparable"
              "   per compare   not comparable")
    print("\nevery pair: each unchanged run against each later one, each slowed run against each unchanged one")
    print(header)
    for variant in ["default", "history", "no state check", "absolute", "asv"]:
        rates(variant, list(itertools.combinations(unchanged, 2)), list(itertools.product(unchanged, slowed)))
    # nightly use compares a run with the one before it: the history's run-to-run noise is the noise of
    # exactly such neighbours (runs far apart also differ by the drift in between)
    ordered = sorted([(m, r, "u") for m, r in unchanged] + [(m, r, "s") for m, r in slowed], key=lambda x: x[0].get("started", ""))
    neighbours_u, neighbours_s, last_u = [], [], None
    for m, r, kind in ordered:
        if last_u is not None:
            (neighbours_u if kind == "u" else neighbours_s).append((last_u, (m, r)))
        if kind == "u":
            last_u = (m, r)
    print("\nnightly-like: each run against the unchanged run just before it")
    print(header)
    for variant in ["default", "history", "asv"]:
        rates(variant, neighbours_u, neighbours_s)
    h.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", default="results/false-alarm", help="runs and their history go here")
    ap.add_argument("--unchanged", type=int, default=15, metavar="N", help="15 runs make 105 compares of unchanged pairs")
    ap.add_argument("--slowed", type=int, default=5, metavar="M")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--slowdown", type=float, default=0.05, help="fraction: 0.05 = 5%% slower")
    ap.add_argument("--min-time", type=float, default=0.5, help="measure.min_time_s of each cell round (the nightly example's: 0.5)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per cell (the quickstart's: 2)")
    ap.add_argument("--reuse", action="store_true", help="analyse the runs already in --out; run nothing")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.reuse:
        run_all(out, args.unchanged, args.slowed, args.rounds, args.slowdown, args.min_time, args.threads)
    analyse(out)


if __name__ == "__main__":
    main()
