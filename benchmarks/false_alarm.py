"""False-alarm and detection rates of ``optbench compare`` on quickstart-like runs.

    python benchmarks/false_alarm.py --unchanged 15 --slowed 5 -o /tmp/false-alarm
    python benchmarks/false_alarm.py --unchanged 15 --slowed 4 --slowdown 0.05 0.1 0.2 -o DIR
    python benchmarks/false_alarm.py --across DIR1 DIR2 DIR3

Runs N unchanged runs and, for each ``--slowdown`` (default 5%), M runs whose ``quantize``
technique is made exactly that much slower by benchmarks/degrade_plugin.py (busy-waiting that
fraction of each forward pass's own time; cell keys stay the same), interleaved U, S, U, S...
(the levels taking turns) so machine drift hits every kind alike. The unchanged runs are
recorded in DIR/history.db. Then:

- false alarms: every pair (i < j) of unchanged runs compared, baseline i, current j; a
  compare with any regression flagged is a false alarm (the target: at most 1 in 100);
- detection, per slowdown: every (unchanged baseline, slowed current) pair; per quantize
  cell, flagged or not (the target: at least 19 in 20), of all trials and of those where the
  cell was comparable, and per cell for the default rule; and the smallest slowdown flagged
  in 19 of 20 trials or more (with 20 trials at least);

each under several rules: the default (rounds as replicates; rounds measured in the VM's
slower state left out; a technique's cells on their ratio to the baseline's model timed
alternately in the same process, ``--paired``, else relative to the baseline's cell of the same
round), the default without the alternated ratio ("not alternated"), the default with the
history's run-to-run noise (leave-two-out: the history without the two runs compared), the
default without the state check (nor the speed-probe check of alternated rounds), absolute timings only, and asv's raw-sample Mann-Whitney rule
for reference. Also printed: the variance components the rule relies on (round-to-round and
run-to-run spread of each cell's latency, in %), and the same tables for nightly-like compares
(each run against the unchanged run just before it), there also as ``optbench compare`` judges
nightly ("looks back": the earlier runs' noise, and a cell the run before cannot judge judged
against an earlier one).

``--across DIR DIR ...`` runs nothing either: it sets the runs of several such directories (hours)
against each other, each hour's unchanged runs as the baselines of every other hour's runs, as a
nightly compare sets a run against the day before's (the default rule, the rule without the
alternated ratio and asv's).

``--reuse`` skips running and analyses the runs already in DIR (runs made before the slowdown
was written next to them count as ``--slowdown``'s first value). The defaults are the settings
of examples/ci/nightly-suite.yaml (20 rounds, min_time_s 0.5, settle_s 6, paired_s 1, extend_s 600): about 265-277 s a run
(median of an hour) on the 2-core VM, 200-220 s without paired_s when it is quiet, 250-520 s when it is noisy. Nothing else may run on the machine meanwhile.
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
question: Does optbench compare stay quiet on unchanged runs and catch a slowdown?
model: {{source: reference, size: tiny}}
data: {{name: pydoc-text, split: heldout}}
backend: cpu
threads: {threads}
workload: {{kind: forward, batch: [1, 8], seq_len: 128}}
measure: {{warmup: auto, min_reps: 20, min_time_s: {min_time}, max_time_s: 20, metrics: [latency, memory]{settle}{paired}{extend}}}
baseline: none
techniques:
  - none
  - quantize: {{method: int8-weight-only}}
rounds: {rounds}
timeout: 300
"""


def run_all(out: Path, n_unchanged: int, n_slowed: int, rounds: int, slowdowns: list[float], min_time: float,
            threads: int, settle: float = 0.0, paired: float = 0.0, extend: float = 0.0) -> None:
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")]))
    sys.path.insert(0, str(HERE))
    from optbench.testing import run_suite_yaml

    text = SUITE.format(min_time=min_time, rounds=rounds, threads=threads,
                       settle=f", settle_s: {settle:g}" if settle else "", paired=f", paired_s: {paired:g}" if paired else "",
                       extend=f", extend_s: {extend:g}" if extend else "")
    slowed = [level for _ in range(n_slowed) for level in slowdowns]  # the levels take turns
    order: list[float | None] = [None] * n_unchanged
    order = [k for pair in itertools.zip_longest(order, slowed, fillvalue=False) for k in pair if k is not False]
    counts: dict[float | None, int] = {}
    for level in order:
        counts[level] = counts.get(level, 0) + 1
        d = out / run_name(level, counts[level], len(slowdowns) > 1)
        if (d / "run.json").exists() and json.loads((d / "run.json").read_text()).get("segments", [{}])[-1].get("finished"):
            continue
        os.environ["OPTBENCH_DEGRADE"] = f"quantize:slow={level}" if level else ""
        t0 = time.perf_counter()
        run_suite_yaml(text, d, plugins={"degrade": "degrade_plugin"}, fast=False)
        if level:
            (d / "slowdown").write_text(f"{level}\n")
        print(f"{d.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    os.environ.pop("OPTBENCH_DEGRADE", None)


def run_name(level: float | None, i: int, several: bool) -> str:
    """unchanged-01, slowed-01 (one slowdown), slowed-10pct-01 (several)."""
    if not level:
        return f"unchanged-{i:02d}"
    return f"slowed-{level * 100:g}pct-{i:02d}" if several else f"slowed-{i:02d}"


def pct(level: float) -> str:
    """0.075 -> '7.5%'."""
    return f"{level * 100:g}%"


def slowdown_of(d: Path, default: float) -> float:
    """The slowdown a slowed run was made with (written next to it; older runs: ``default``)."""
    f = d / "slowdown"
    return float(f.read_text()) if f.exists() else default


def load(out: Path, prefix: str) -> list[tuple[dict, list[dict]]]:
    """(run.json, one merged row per cell) of each run DIR/PREFIX-* that has a run.json."""
    return [load_run(d) for d in sorted(out.glob(f"{prefix}-*")) if (d / "run.json").exists()]


#: --without-extend: judge the runs on their planned rounds only, as if measure.extend_s had been off
PLANNED_ONLY = False


def load_run(d: Path) -> tuple[dict, list[dict]]:
    from optbench.results import read_rows, rows_by_cell

    meta = json.loads((d / "run.json").read_text())
    rows = rekeyed(meta, read_rows(d))
    if PLANNED_ONLY:
        rows = [r for r in rows if int(r.get("round", 1)) <= meta.get("rounds", 1)]
    return meta, list(rows_by_cell(rows).values())


def rekeyed(meta: dict, rows: list[dict]) -> list[dict]:
    """Rows of a run recorded while measure.extend_s was still part of the cell keys (8c4ae3b-fc7dcab,
    the hours q6n and q8h) under the keys the same cells have now, so they match the runs of hours
    recorded without it, as a nightly suite that adds extend_s matches the nights before."""
    from optbench import manager
    from optbench.suite import cell_key, parse_suite

    text = meta.get("suite_text") or ""
    if "extend_s" not in text:
        return rows
    pm = manager.load()
    old = {cell_key(c, c["model_fingerprint"], ignore=()): c["key"] for c in parse_suite(text, "suite.yaml", pm).cells(pm)}
    return [{**r, "cell": old.get(r["cell"], r["cell"])} for r in rows]


def load_slowed(out: Path, default: float) -> dict[float, list[tuple[dict, list[dict]]]]:
    """The slowed runs in DIR by slowdown, smallest first."""
    levels: dict[float, list[Path]] = {}
    for d in sorted(out.glob("slowed-*")):
        if (d / "run.json").exists():
            levels.setdefault(slowdown_of(d, default), []).append(d)
    return {level: [load_run(d) for d in ds] for level, ds in sorted(levels.items())}


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


def flagged(base, cur, variant: str, h=None) -> dict[str, str]:
    """Per latency cell of one compare, its verdict under ``variant`` ("history" and "looks back"
    read the history ``h``)."""
    from optbench.compare import STATE_MARGIN, Measurement, compare_runs, decide, rule_for
    from optbench.history import compare_in_history, history_noise

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
    if variant == "looks back":  # what `optbench compare` does nightly: the history's noise (earlier runs),
        # and a cell the baseline cannot judge judged against an earlier unchanged run
        cmp = compare_in_history(h, bm, br, cm, cr)
    else:
        cmp = compare_runs(bm, br, cm, cr, history_noise=noise, relative=variant != "absolute", paired=variant != "not alternated",
                           state_margin=None if variant == "no state check" else STATE_MARGIN)
    return {r.name.split(" cpu ")[0] + " b=" + r.name.split(" b=")[1].split(" ")[0]: r.verdict.status
            for r in cmp.results if r.metric == "latency"}


def rates(label: str, fa_pairs: list, det_pairs: dict[float, list], h=None) -> tuple[int, list[dict[str, list[int]]]]:
    """False alarms; per slowdown, per slowed cell and "all": [detected, trials, not comparable]."""
    from optbench.compare import NOT_COMPARABLE, REGRESSION

    fa = 0
    for base, cur in fa_pairs:
        fa += any(s == REGRESSION for s in flagged(base, cur, label, h).values())
    det = []
    for pairs in det_pairs.values():
        counts: dict[str, list[int]] = {"all": [0, 0, 0]}
        for base, cur in pairs:
            for cell, v in flagged(base, cur, label, h).items():
                if not cell.startswith("none"):
                    for c in (counts["all"], counts.setdefault(cell, [0, 0, 0])):
                        c[0] += v == REGRESSION
                        c[1] += 1
                        c[2] += v == NOT_COMPARABLE
        det.append(counts)
    return fa, det


def table(title: str, variants: list[str], fa_pairs: list, det_pairs: dict[float, list], h=None) -> None:
    """One table: per rule, the false alarms over ``fa_pairs`` and, per slowdown, the slowed cells
    flagged over ``det_pairs`` (of all trials and of the comparable ones)."""
    def cols(counts: list[list[int]]) -> str:
        return "".join(f"   {f'{hit} / {n} ({100 * hit / max(n, 1):.1f}%)':>24} "
                       f"{f'{hit} / {n - nc} ({100 * hit / max(n - nc, 1):.1f}%)':>16}" for hit, n, nc in counts)

    print(f"\n{title}")
    print(f"{'rule':24} {'false alarms':>16}" + "".join(f"   {f'{pct(level)} slower: detected':>24} {'of comparable':>16}"
                                                  for level in det_pairs))
    for variant in variants:
        fa, det = rates(variant, fa_pairs, det_pairs, h)
        print(f"{variant:24} {f'{fa} / {len(fa_pairs)} ({100 * fa / max(len(fa_pairs), 1):.1f}%)':>16}"
              + cols([c["all"] for c in det]))
        if variant != "default":
            continue
        for cell in sorted({k for c in det for k in c} - {"all"}):
            print(f"{'  ' + cell:24} {'':16}" + cols([c.get(cell, [0, 0, 0]) for c in det]))
        tried = [(level, c["all"][0], c["all"][1]) for level, c in zip(det_pairs, det, strict=True) if c["all"][1] >= 20]
        reliable = [level for level, hit, n in tried if hit >= 0.95 * n]
        print("  smallest slowdown flagged in 19 of 20 trials or more: " + (
            f"{pct(reliable[0])}" if reliable else f"none of those tried (up to {pct(tried[-1][0])})" if tried
            else "too few trials (under 20 a slowdown)"))


def analyse(out: Path, default_slowdown: float) -> None:
    from optbench.compare import Measurement
    from optbench.history import History

    unchanged, slowed = load(out, "unchanged"), load_slowed(out, default_slowdown)
    print(f"{len(unchanged)} unchanged runs, " + ", ".join(f"{len(runs)} runs {pct(level)} slower" for level, runs in slowed.items())
          + f" in {out}")
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

    table("every pair: each unchanged run against each later one, each slowed run against each unchanged one",
          ["default", "not alternated", "history", "no state check", "absolute", "asv"], list(itertools.combinations(unchanged, 2)),
          {level: list(itertools.product(unchanged, runs)) for level, runs in slowed.items()}, h)
    # nightly use compares a run with the one before it: the history's run-to-run noise is the noise of
    # exactly such neighbours (runs far apart also differ by the drift in between)
    ordered = sorted([(m, r, None) for m, r in unchanged] + [(m, r, level) for level, runs in slowed.items() for m, r in runs],
                     key=lambda x: x[0].get("started", ""))
    neighbours_u: list = []
    neighbours_s: dict[float, list] = {level: [] for level in slowed}
    last_u = None
    for m, r, level in ordered:
        if last_u is not None:
            (neighbours_u if level is None else neighbours_s[level]).append((last_u, (m, r)))
        if level is None:
            last_u = (m, r)
    table("nightly-like: each run against the unchanged run just before it", ["default", "history", "looks back", "asv"],
          neighbours_u, neighbours_s, h)
    h.close()


def analyse_across(dirs: list[Path], default_slowdown: float) -> None:
    """Runs of different hours against each other, as a nightly compare sets one day's run against
    the day before's: every unchanged run of one hour as the baseline of every unchanged run
    (false alarms) and slowed run (detection) of each other hour, per ordered pair of hours and in
    all. Only the rules that need no history: the hours' own histories hold none of the others."""
    runs = {d: (load(d, "unchanged"), load_slowed(d, default_slowdown)) for d in dirs}
    variants = ["default", "not alternated", "asv"]
    every_fa: list = []
    every_det: dict[float, list] = {}
    for a, b in itertools.permutations(dirs, 2):
        fa_pairs = list(itertools.product(runs[a][0], runs[b][0]))
        det_pairs = {level: list(itertools.product(runs[a][0], slowed)) for level, slowed in runs[b][1].items()}
        fa, det = rates("default", fa_pairs, det_pairs)
        print(f"{a.name} -> {b.name}: false alarms {fa} / {len(fa_pairs)}; " + ", ".join(
            f"{pct(level)} slower detected {c['all'][0]} / {c['all'][1]} ({c['all'][2]} not comparable)"
            for level, c in zip(det_pairs, det, strict=True)), flush=True)
        every_fa += fa_pairs
        for level, pairs in det_pairs.items():
            every_det.setdefault(level, []).extend(pairs)
    table(f"every run of each hour against the unchanged runs of each other hour ({len(dirs)} hours)", variants,
          every_fa, dict(sorted(every_det.items())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", default="results/false-alarm", help="runs and their history go here")
    ap.add_argument("--unchanged", type=int, default=15, metavar="N", help="15 runs make 105 compares of unchanged pairs")
    ap.add_argument("--slowed", type=int, default=5, metavar="M")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--slowdown", type=float, nargs="+", default=[0.05], metavar="FRACTION",
                    help="0.05 = 5%% slower; several levels take turns, --slowed runs of each")
    ap.add_argument("--min-time", type=float, default=0.5, help="measure.min_time_s of each cell round (the nightly example's: 0.5)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per cell (the quickstart's: 2)")
    ap.add_argument("--settle", type=float, default=6.0, metavar="S",
                    help="measure.settle_s: a cell's later rounds wait up to S s for the machine state of its earlier ones (the nightly example's: 6; 0: off)")
    ap.add_argument("--paired", type=float, default=1.0, metavar="S",
                    help="measure.paired_s: a technique cell's later rounds also time it alternately with the baseline's model for S s (the nightly example's: 1; 0: off)")
    ap.add_argument("--extend", type=float, default=600.0, metavar="S",
                    help="measure.extend_s: a cell with under 6 rounds in the quiet state gets more rounds, for up to S s (the nightly example's: 600; 0: off)")
    ap.add_argument("--reuse", action="store_true", help="analyse the runs already in --out; run nothing")
    ap.add_argument("--across", nargs="+", type=Path, metavar="DIR",
                    help="run nothing: compare the runs already in these directories (hours) against each other")
    ap.add_argument("--without-extend", action="store_true",
                    help="with --reuse or --across: judge the runs on their planned rounds only, leaving out "
                         "the rounds measure.extend_s added (what the same runs give without it)")
    args = ap.parse_args()
    global PLANNED_ONLY
    PLANNED_ONLY = args.without_extend
    if args.across:
        analyse_across(args.across, args.slowdown[0])
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.reuse:
        run_all(out, args.unchanged, args.slowed, args.rounds, args.slowdown, args.min_time, args.threads, args.settle, args.paired,
                args.extend)
    analyse(out, args.slowdown[0])


if __name__ == "__main__":
    main()
