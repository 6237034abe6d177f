"""Regression statistics: is the current run worse than a baseline run, cell by cell?

The decision for one cell and metric is :func:`decide`, a pure function; everything else
here gathers its inputs (matching cells by key, the environment check, the noise estimates)
and collects its answers into a :class:`Comparison`.

Why not asv's rule alone (ratio past the threshold and Mann-Whitney U p < 0.002 on the raw
samples)? On the small VMs this project runs on, the samples inside one process are
correlated and the level moves between processes by several percent or more; raw-sample
tests take that drift for a real change. The unit of replication is therefore the process:
with ``rounds: N`` (N >= 2, 3 or more advised) each round is its own process and its median
is one replicate, and a t-test on the log round medians (Yuen's: 20% trimmed) asks whether the runs differ by
more than their rounds differ among themselves. The other noise source is the drift between
runs: on the 2-core VM a whole run sits 2-3% above or below another, every cell alike, more
than its rounds disagree. A technique's cell is therefore judged relative to the suite
baseline's cell of the same round (run seconds apart, they share the drift, which cancels);
the baseline's cells are judged on absolute timings, against the history's spread of
successive run-to-run differences where that is wider than an assumed drift. The timed
tests of one compare share one false-alarm rate (Bonferroni). The VM also switches, for
minutes at a time, into a slower state where kernels do not slow alike: rounds measured in
another state than most of a cell's are left out (:func:`usable_rounds`), and a round far off
its run's others is trimmed (Yuen's test). With ``measure.paired_s`` a technique is also timed
alternately with the baseline's model in one process, and judged on that ratio state by state
(:func:`shared_states`, :func:`decide_alternated`). asv's rule is kept as the fallback where no
replication exists (``rounds: 1`` and no history), and said so in the verdict.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .envinfo import FINGERPRINT_KEYS
from .measure.latency import QUIET_MARGIN, QUIET_ROUNDS, STATE_MARGIN, parse_percent
from .measure.latency import in_state as in_probe_state

#: one-sided significance level of one test: asv's p < 0.002 two-sided is p < 0.001 one-sided
ALPHA = 0.001
#: false-alarm rate of one whole compare: its timed tests share it (Bonferroni), so a suite with
#: m timed cell metrics tests each at FAMILY_ALPHA / m
FAMILY_ALPHA = 0.01
#: between-run drift assumed, as a multiple of one round's variance added per run: a floor that a
#: history's run-to-run noise can widen, never narrow (a history's neighbouring runs agree more
#: closely than runs further apart: where it replaced the floor, 13 of 105 compares of unchanged
#: runs raised a false alarm in a noisy hour; with the floor, 1). Absolute timings: a whole run shifts, every cell alike, by
#: about 1.2-1.5x the round spread on the 2-core VM (benchmarks/false_alarm.py prints both).
DRIFT_PER_RUN = 2.0
#: and at least this standard deviation per run (log units): a run whose rounds agree closely is not
#: therefore close to the next run. Unchanged runs of one hour on the 2-core VM, every pair compared
#: on absolute timings: per-run drift sd 1.5-3.9% by cell and hour (median 2.3%), and none at batch 1
#: 7.9 ms in one run, 8.7-8.9 ms in others with rounds 1-2% apart and the same speed probe. Without
#: this floor two of 105 such pairs were false alarms in one hour, none with it, and no 5-20% slowdown
#: of a technique was missed for it (six hours, benchmarks/false_alarm.py).
DRIFT_SD = 0.025
#: the same for a technique's cell relative to the baseline's cell of its round: none. The two cells
#: run seconds apart and share the drift; what they do not share (the ratio still moves 1-5% between
#: runs of one hour: int8/none at batch 1 in the steady state, 1.07-1.10x in one hour, 1.07-1.13x in
#: another) shows as a move of one cell alone, and a relative change must show in the cell's own
#: timings too (compare_runs). benchmarks/false_alarm.py, three hours of 15 unchanged and 5 slowed
#: runs: 0, 0 and 1 false alarms in 105 compares of unchanged runs with 0 here, the same with 0.25,
#: which caught 45, 117 and 77 of 150 5% slowdowns where 0 caught 56, 136 and 93.
DRIFT_RELATIVE = 0.0
#: a speed probe this many times slower than the fastest seen means the machine was in its slow mode
SLOW_FACTOR = 3.0
#: the 2-core VM also switches, for minutes at a time, into a state 5-10% slower where kernels do not
#: slow alike (int8/none at batch 1: 1.09-1.13x in the steady state, 1.28-1.31x in the slower one),
#: so no ratio carries across states. The probes each cell takes after timing tell the states apart
#: (steady 189-196 us, slower 198-206 us): compare keeps the rounds whose probe lies in the window of
#: STATE_MARGIN's width (optbench.measure.latency, which settles on a state with the same width)
#: that holds most of the cell's probes in both runs, and leaves out the others.
#: the baseline's cell of a round is the reference of a technique's cell unless it moved against the
#: run's other baseline cells (the other workloads' ones) with p under this, a loose test. Where it
#: did, in the direction of the change, the change must show in the cell's own timings too; where it
#: did the other way, hiding a change, the cell is judged against those other cells instead. Where it
#: did not, the ratio stands even if the cell's own timings did not move: the whole run drifted.
#: benchmarks/false_alarm.py, stored hours re-judged (a 5% slowdown caught among comparable compares):
#: 20 rounds (two hours and six of pairs merged), 0 false alarms in 304 compares, 320 of 335 caught,
#: where the guard on the cell's own timings alone caught 306; 10 rounds (eight hours), 1 in 840,
#: 588 of 685 against 540
ALONE_P = 0.2
#: rounds are left out of a cell (other state, unstable) only while this many remain
MIN_ROUNDS = 3
#: a cell is judged on its rounds timed in the state of most of its rounds in both runs when they are at
#: least half its rounds, or at least this many: in a noisy hour a 20-round run often has 7-8 rounds in
#: that state and the rest in another, and the t-test's df say how few they are. benchmarks/false_alarm.py,
#: three noisy stored hours of 20 rounds re-judged (a 5% slowdown, 144 trials): 32 caught where half
#: the rounds caught 17 (6 did better than 4, 5 or 8); no false alarm in 45 compares of unchanged runs
#: either way, and the quiet hours (q1, q2: 224 trials, 78 compares) unchanged
STATE_ROUNDS = 6
#: a technique's cell timed alternately with the baseline's model (``measure.paired_s``) is judged
#: state by state, a state being (first) a window of this width of the baseline model's median in the
#: round: the 2-core VM's slower state shows there as 9.0-9.9 ms against 6.4-7.3 ms (fp32, batch 1), and
#: int8/fp32 as 1.47x against 1.11x, so rounds of one state are not compared with another's; a
#: neighbour busy on one core shows as 2.1x. Narrower windows (15%) split hours whose machine had
#: moved 10-25% as a whole, with int8/fp32 unmoved (:func:`shared_states`)
PAIRED_MARGIN = 0.30
#: alternated rounds are judged state by state: a state (the baseline model's latency window, and
#: whether the speed probe after the alternation says the round was disturbed) joins when both runs
#: have this many rounds in it, and rounds of a state only one run was timed in are set aside
STRATUM_ROUNDS = 2
#: each state's own spread of the alternated ratio, shrunk toward the states' geometric mean spread as
#: if that were worth this many more rounds: a state's weight follows its spread (a state under a noisy
#: neighbour read int8/fp32 1.14-1.84 at batch 8, the usual state 1.04-1.20), but two or three
#: rounds that happen to agree must not outweigh the rest
STRATUM_PRIOR_DF = 4.0
#: the history's series of a technique's latency over the baseline's model, timed alternately
#: (``measure.paired_s``): one line per run, its rounds as [ratio, baseline model median] pairs
ALTERNATED = "latency_vs_baseline"
ALTERNATED_ABOUT = ("latency over the suite baseline's model timed alternately in the same process, each run at the "
                    "series' common machine state and baseline latency")
#: a cell timed in another machine state than the baseline's is not comparable, except for a change
#: no state switch makes: its ratio to the baseline's cell of the round past this (or its own timings
#: past GROSS_ABSOLUTE, for a cell without one). benchmarks/false_alarm.py, 12 stored hours: in the
#: compares of unchanged runs where a cell was not comparable, states moved the ratio by at most
#: 1.24x (764 compares, 99% under 1.20x) and absolute timings by at most 1.68x (1446, 99% under 1.55x)
GROSS_RELATIVE = 1.5
GROSS_ABSOLUTE = 2.5


@dataclass(frozen=True)
class MetricRule:
    """How one metric is judged: relative threshold, direction, absolute floor."""

    threshold: float              # relative change that matters, 0.05 = 5%
    higher_is_worse: bool = True
    floor: float = 0.0            # an absolute change at or below this is never flagged (values near 0)
    judged: bool = True           # False: reported, never flagged (derived or descriptive metrics)


#: defaults per metric; a suite's ``thresholds:`` overrides the threshold (never the direction)
DEFAULT_RULES: dict[str, MetricRule] = {
    # timed (raw samples, per-round medians): noise handled by the statistics
    "latency": MetricRule(0.05),
    "step_time": MetricRule(0.05),
    ALTERNATED: MetricRule(0.05),  # history trends only: compare judges it within latency
    # derived from a timed metric (tokens / median latency): judged through that metric
    "throughput": MetricRule(0.05, higher_is_worse=False, judged=False),
    "tokens_per_s": MetricRule(0.05, higher_is_worse=False),
    "seconds_to_target": MetricRule(0.10),
    "steps_to_target": MetricRule(0.05),
    # deterministic given the code and seeds: any change past the threshold is real
    "model_bytes": MetricRule(0.01),
    "param_bytes": MetricRule(0.01),
    "unique_param_bytes": MetricRule(0.01),
    "serialized_bytes": MetricRule(0.01),
    "parameters": MetricRule(0.01),
    "flops_per_token": MetricRule(0.01),
    "perplexity": MetricRule(0.01),
    "final_perplexity": MetricRule(0.01),
    "final_loss": MetricRule(0.01),
    "top1_accuracy": MetricRule(0.01, higher_is_worse=False),
    "top1_agreement": MetricRule(0.01, higher_is_worse=False),
    "kl_divergence": MetricRule(0.10, floor=1e-3),
    "weight_sparsity": MetricRule(0.05, judged=False),
    # one noisy value per run (no replicates): a wider threshold, and the history's noise when there is one
    "peak_rss": MetricRule(0.10),
    "gpu_peak_allocated": MetricRule(0.05),
    "energy_j": MetricRule(0.10),
}
#: names a suite may use in ``thresholds:`` for a metric
ALIASES = {"latency_p50": "latency", "latency_median": "latency", "p50": "latency", "accuracy": "top1_accuracy",
           "memory": "model_bytes", "agreement": "top1_agreement"}
_LOWER_IS_WORSE_HINTS = ("per_s", "throughput", "accuracy", "agreement", "speedup")


def rule_for(metric: str, thresholds: dict[str, Any] | None = None) -> MetricRule:
    """The rule for ``metric``: the default, with the suite's threshold if it names one.

    A metric without a default is reported but not flagged, unless the suite gives it a
    threshold; then a rise is worse, or a fall for names like ``*_per_s`` or ``*accuracy*``.
    """
    thresholds = {ALIASES.get(k, k): v for k, v in (thresholds or {}).items()}
    base = DEFAULT_RULES.get(metric)
    if base is None:
        worse_up = not any(h in metric for h in _LOWER_IS_WORSE_HINTS)
        base = MetricRule(0.05, higher_is_worse=worse_up, judged=metric in thresholds)
    if metric in thresholds:
        return MetricRule(parse_percent(thresholds[metric]), base.higher_is_worse, base.floor, True)
    return base


# --- one side of a comparison ---------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One cell's value of one metric in one run, with what the statistics need."""

    value: float | None                   # the median for timed metrics, else the value
    rounds: tuple[float, ...] = ()        # per-round medians: one replicate per process
    round_ids: tuple[int, ...] = ()       # the round each median came from (pairs cells of one round)
    samples: tuple[float, ...] = ()       # raw samples, all rounds pooled
    probes: tuple[float, ...] = ()        # speed probe per round (the slower of before/after)
    state: tuple[float, ...] = ()         # speed probe per round after its timing: the machine's state
    round_unstable: tuple[str, ...] = ()  # each round's own instability ('' when clean)
    unstable: str = ""                    # why the samples are not a clean figure
    slow: str = ""                        # why the machine was in its slow mode
    other_state: str = ""                 # why most rounds were timed in another machine state
    unit: str = ""
    paired: tuple[float, ...] = ()        # per round: the model's median over the baseline model's, timed alternately (0: none)
    paired_base: tuple[float, ...] = ()   # per round: the baseline model's median in that alternation
    paired_probe: tuple[float, ...] = ()  # per round: the speed probe taken right after that alternation (0: none)
    slow_rounds: tuple[int, ...] = ()     # the rounds ``slow`` names (a merged cell's)
    stratum: tuple[int, ...] = ()         # per alternated round: its machine state (:func:`shared_states`)

    @property
    def timed(self) -> bool:
        return bool(self.rounds or self.samples)

    @classmethod
    def from_row(cls, row: dict[str, Any], metric: str) -> Measurement | None:
        m = row.get("metrics", {}).get(metric)
        if not isinstance(m, dict):
            return None
        if "samples" in m or "median" in m:
            entries = m.get("rounds") or [{"round": int(row.get("round", 1)), "median": m["median"]}]
            rounds = tuple(r["median"] for r in entries)
            ids = tuple(int(r.get("round", i + 1)) for i, r in enumerate(entries))
            probes = m.get("speed_probe_s") or []
            pairs = [probes[i:i + 2] for i in range(0, len(probes), 2)] if len(probes) == 2 * len(rounds) else []
            unstable = (m.get("unstable_reason") or "unstable") if m.get("unstable") else ""
            if m.get("rounds") and all("probe" in r for r in entries):  # each round keeps its probe and its own flag
                state = tuple(r["probe"] for r in entries)
                per_round = tuple(r.get("unstable", "") for r in entries)
            else:  # older rows: the after-timing probe of each pair, and the merged flag standing for each round
                state = tuple(p[-1] for p in pairs)
                per_round = (unstable,) * len(rounds)
            paired = [r.get("paired") or {} for r in entries]
            return cls(value=m.get("median"), rounds=rounds, round_ids=ids, samples=tuple(m.get("samples", ())),
                       probes=tuple(max(p) for p in pairs), state=state, round_unstable=per_round, unstable=unstable,
                       slow=row.get("slow_machine", "") or "", unit=m.get("unit", "s"),
                       slow_rounds=tuple(int(x) for x in re.findall(r"round (\d+): ", row.get("slow_machine", "") or "")),
                       paired=tuple(p.get("ratio") or 0.0 for p in paired) if any(paired) else (),
                       paired_base=tuple(p.get("base_median") or 0.0 for p in paired) if any(paired) else (),
                       paired_probe=tuple(p.get("speed_probe_s") or 0.0 for p in paired) if any(paired) else ())
        v = m.get("value")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return None
        return cls(value=float(v), unit=m.get("unit", ""))


@dataclass(frozen=True)
class Noise:
    """An independent estimate of a variance (log scale) and its degrees of freedom."""

    var: float
    df: float
    source: str = ""


@dataclass
class Verdict:
    status: str                         # regression | improvement | unchanged | not comparable
    ratio: float | None                 # current / baseline
    ci95: tuple[float, float] | None = None   # 95% interval of the ratio
    p: float | None = None              # one-sided p of a change in the direction seen
    method: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = list(self.ci95) if self.ci95 else None
        return d


REGRESSION, IMPROVEMENT, UNCHANGED, NOT_COMPARABLE = "regression", "improvement", "unchanged", "not comparable"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if a == 0:
        return 1.0 if b == 0 else math.inf
    return b / a


def screen(base: Measurement, cur: Measurement, slow_factor: float = SLOW_FACTOR) -> str:
    """Why two timed measurements cannot be compared (slow mode, unstable samples), or ''."""
    for side, m in (("baseline", base), ("current", cur)):
        if m.slow:
            return f"{side} measured while the machine was slow ({m.slow})"
        if m.other_state:
            return f"{side}: {m.other_state}"
    for side, m in (("baseline", base), ("current", cur)):
        if m.unstable:
            return f"{side} samples are unstable ({m.unstable})"
    if base.probes and cur.probes:
        speed = statistics.median(cur.probes) / statistics.median(base.probes)
        if speed > slow_factor or speed < 1 / slow_factor:
            return f"the machine ran at a different speed: speed probe {speed:.1f}x the baseline's"
    return ""


def decide(base: Measurement, cur: Measurement, rule: MetricRule, *, pooled: Noise | None = None,
           history: Noise | None = None, alpha: float = ALPHA,
           drift: float = 0.0, drift_sd: float = 0.0, replicates: str = "log round medians") -> Verdict:
    """Judge one cell's metric: regression, improvement, unchanged, or not comparable.

    Timed metrics (latency...):

    1. Not comparable when either side was measured in the machine's slow mode (the row's
       ``slow_machine``, a speed probe past 3x), has unstable samples, or the two runs'
       speed probes differ by more than 3x: a slow mode is not a regression.
    2. The change is ``d = tmean(log round medians, current) - tmean(..., baseline)``: each
       round is one process, the unit of replication; ``tmean`` trims 20% from each end once
       a side has 5 rounds (Yuen's test: a few rounds in a hundred land far off on the 2-core VM).
    3. Its variance is the largest of the independent estimates at hand: the (winsorized)
       spread of this cell's round medians (both runs, ``df = h_a + h_b - 2``), the same spread
       pooled over every cell of the two runs (``pooled``), and the spread of run-to-run
       differences in the history (``history``), which includes the drift between runs
       that rounds inside one run cannot see. As a floor under these, ``drift`` (a variance
       ratio, :data:`DRIFT_PER_RUN` from :func:`compare_runs` for absolute timings) adds
       ``drift`` x the round variance per run for that unseen drift, and at least ``drift_sd``
       squared (:data:`DRIFT_SD`, a standard deviation per run in log units). A t-distribution with
       the chosen estimate's degrees of freedom gives the one-sided p and the ``1 - 2 alpha``
       interval of ``d``.
    4. Regression when the change is significantly worse (p < ``alpha``, 0.001: asv's
       p < 0.002 two-sided) and its interval reaches the threshold, i.e. a change of the
       threshold's size cannot be ruled out. A change measured as precisely smaller than
       the threshold is never flagged; a change of exactly the threshold is flagged with
       the power of the test. Improvement: the same in the other direction.
    5. Without replicates on either side and without a history (``rounds: 1``), asv's
       rule on the raw samples: Mann-Whitney U p < 2 alpha and the ratio past the
       threshold; the method says that between-run drift is not accounted for.

    Other metrics are one value per run. Deterministic ones (bytes, parameters, FLOPs,
    perplexity, accuracy) change only when the code does: regression when the change is
    past the threshold (and past ``rule.floor`` in absolute terms). With a ``history``
    noise estimate (peak RSS is noisy) the change must also be significant against it.
    """
    ratio = _ratio(base.value, cur.value)
    if base.value is None or cur.value is None:
        return Verdict(NOT_COMPARABLE, ratio, reason="missing on one side", method="none")
    worse = 1.0 if rule.higher_is_worse else -1.0
    lim = math.log1p(rule.threshold)
    if cur.value == base.value:
        return Verdict(UNCHANGED, ratio, method="exact")
    if abs(cur.value - base.value) <= rule.floor:
        return Verdict(UNCHANGED, ratio, method="exact", reason=f"change within the absolute floor {rule.floor:g}")
    if base.value <= 0 or cur.value <= 0:  # no log scale: an exact comparison of the difference
        delta = (cur.value - base.value) * worse
        status = REGRESSION if delta > 0 else IMPROVEMENT
        return Verdict(status if rule.judged else UNCHANGED, ratio, method="exact", reason="value at or below zero: compared by difference")

    if not (base.timed or cur.timed):
        d = math.log(cur.value / base.value)
        if history is None or history.var <= 0:
            status = _status(worse * d, worse * d, worse * d, lim)
            return Verdict(status if rule.judged else UNCHANGED, ratio, method="exact (one value per run)")
        return _t_verdict(d, history.var, history.df, worse, lim, alpha, rule.judged, f"t-test against {history.source}")

    why = screen(base, cur)
    if why:
        return Verdict(NOT_COMPARABLE, ratio, reason=why, method="screen")
    xa = [math.log(x) for x in base.rounds or (base.value,)]
    xb = [math.log(x) for x in cur.rounds or (cur.value,)]
    (la, wa, ha), (lb, wb, hb) = trimmed(xa), trimmed(xb)
    na, nb = len(xa), len(xb)
    d = lb - la
    # variance of each side's location = its per-round variance x factor (1/n untrimmed; Yuen's (n-1)/(h(h-1)) trimmed)
    fa, fb = _trim_factor(na, ha), _trim_factor(nb, hb)
    candidates: list[tuple[float, float, str, float]] = []  # (variance of d, df, source, per-round variance)
    if na >= 2 and nb >= 2:
        per_round = ((na - 1) * wa + (nb - 1) * wb) / (na + nb - 2)
        trim = f", {TRIM:.0%} trimmed" if (ha, hb) != (na, nb) else ""
        candidates.append((wa * fa + wb * fb, ha + hb - 2, f"{na}+{nb} round medians{trim}", per_round))
        if pooled is not None and pooled.df > 0:
            candidates.append((pooled.var * (fa + fb), pooled.df, pooled.source or "round medians pooled over cells", pooled.var))
    if (drift > 0 or drift_sd > 0) and candidates:  # a floor the history widens, never narrows: see DRIFT_PER_RUN, DRIFT_SD
        w2, w_df, w_source, per_round = max(candidates, key=lambda c: c[0])
        per_run = max(drift * per_round, drift_sd ** 2)
        assumed = f"{drift:g}x the round variance" if drift * per_round >= drift_sd ** 2 else f"{drift_sd:.1%} (sd)"
        candidates.append((w2 + 2 * per_run, w_df, f"{w_source}, plus between-run drift assumed {assumed} per run", per_round))
    if history is not None and history.df > 0:
        candidates.append((history.var, history.df, history.source or "history", 0.0))
    if not candidates:
        return _mann_whitney(base, cur, ratio, worse, lim, alpha, rule.judged)
    var, df, source, _ = max(candidates, key=lambda c: c[0])
    if var <= 0:
        var = 1e-12
    return _t_verdict(d, var, df, worse, lim, alpha, rule.judged, f"t-test on {replicates}, noise from {source}")


#: fraction of round medians trimmed from each end (Yuen's test) once a side has 5 or more: a few
#: rounds in a hundred on the 2-core VM land 20-50% off their run's others, which a mean and a variance take in full
TRIM = 0.2


def trimmed(xs: list[float], trim: float | None = None) -> tuple[float, float, int]:
    """(trimmed mean, winsorized variance, values kept) of ``xs``: Yuen's robust location and spread.

    Under 5 values nothing is trimmed: the mean and the sample variance (0 for one value).
    """
    n = len(xs)
    g = _trim_count(n, trim)
    ys = sorted(xs)
    kept = ys[g:n - g]
    wins = [ys[g]] * g + kept + [ys[n - g - 1]] * g
    mu = statistics.fmean(wins)
    wvar = sum((x - mu) ** 2 for x in wins) / (n - 1) if n > 1 else 0.0
    return statistics.fmean(kept), wvar, len(kept)


def _trim_count(n: int, trim: float | None = None) -> int:
    """How many of ``n`` values :func:`trimmed` drops from each end (none under 5)."""
    return int((TRIM if trim is None else trim) * n) if n >= 5 else 0


def _trim_factor(n: int, h: int) -> float:
    """Variance of a trimmed mean over the winsorized variance: 1/n untrimmed, (n-1)/(h(h-1)) trimmed."""
    return (n - 1) / (h * (h - 1)) if h < n and h > 1 else 1 / n


def _status(worse_lo: float, worse_hi: float, worse_point: float, lim: float) -> str:
    """From the interval of the change in the worse direction: significant, and reaching the threshold."""
    if worse_lo > 0 and worse_hi >= lim - 1e-12:
        return REGRESSION
    if worse_hi < 0 and worse_lo <= -lim + 1e-12:
        return IMPROVEMENT
    return UNCHANGED


def _t_verdict(d: float, var: float, df: float, worse: float, lim: float, alpha: float, judged: bool, method: str,
               ratio: float | None = None) -> Verdict:
    from scipy.special import stdtr, stdtrit  # Student's t cdf and its inverse: scipy.stats costs ~1 s to import

    se = math.sqrt(var)
    q = float(stdtrit(df, 1 - alpha))
    q95 = float(stdtrit(df, 0.975))
    lo, hi = d - q * se, d + q * se
    wlo, whi = (lo, hi) if worse > 0 else (-hi, -lo)
    status = _status(wlo, whi, worse * d, lim)
    p = float(stdtr(df, -abs(d) / se)) if se > 0 else 0.0
    return Verdict(status if judged else UNCHANGED, math.exp(d) if ratio is None else ratio,
                   (math.exp(d - q95 * se), math.exp(d + q95 * se)), p, method)


def moderated(ss: dict[Hashable, float], df: dict[Hashable, float]) -> dict[Hashable, float]:
    """Each group's residual variance (sum of squares ``ss`` over ``df``), shrunk toward the groups'
    geometric mean variance as if that were worth :data:`STRATUM_PRIOR_DF` more df, as limma
    moderates a gene's variance: a machine state of 2 + 2 rounds that happen to agree is pulled up
    toward the others, one of 20 rounds barely moves, and a scattered state does not inflate a clean
    one (an arithmetic pooled variance would)."""
    logs = [(df[k], math.log(ss[k] / df[k])) for k in ss if df[k] > 0 and ss[k] > 0]
    prior = math.exp(sum(d * v for d, v in logs) / sum(d for d, _ in logs)) if logs else 0.0
    return {k: (ss[k] + STRATUM_PRIOR_DF * prior) / (df[k] + STRATUM_PRIOR_DF) for k in ss}


def set_aside_wild(pts: list[tuple[Hashable, float]], *, min_per_group: int = MIN_ROUNDS) -> dict[Hashable, list[float]]:
    """``pts`` = (group, y) grouped, with the points whose distance from their group's mean lies over
    :data:`HISTORY_REJECT` robust sd (1.4826 x MAD of every such distance) set aside once, while every
    group keeps ``min_per_group`` points (a smaller group, all of its own)."""
    groups: dict[Hashable, list[float]] = {}
    for g, y in pts:
        groups.setdefault(g, []).append(y)
    mean = {g: statistics.fmean(ys) for g, ys in groups.items()}
    mad = statistics.median(abs(y - mean[g]) for g, y in pts) * 1.4826
    if mad == 0:
        return groups
    kept = {g: [y for y in ys if abs(y - mean[g]) <= HISTORY_REJECT * mad] for g, ys in groups.items()}
    if all(len(kept[g]) >= min(min_per_group, len(ys)) for g, ys in groups.items()):
        return kept
    return groups


def decide_alternated(base: Measurement, cur: Measurement, rule: MetricRule, *, alpha: float = ALPHA) -> Verdict:
    """Judge a technique's latency on its rounds timed alternately with the baseline's model
    (:func:`paired_rounds`): a t-test on the two runs' mean log ratio per round. Rounds whose
    ratio lies over 3.5 robust sd from their run's others in their state are set aside (once), as Yuen's
    trimming does for round medians.

    Rounds of more than one machine state (``stratum``, :func:`shared_states`) are judged state by
    state, each run and state its own mean: a state can move the ratio (the VM's slower state
    read int8/fp32 1.47x, not 1.11x), so rounds of one state are never set against another's. The
    states' changes are averaged with weights inverse to their variance, each state's spread shrunk
    toward the others' (:data:`STRATUM_PRIOR_DF`), with Welch-Satterthwaite degrees of freedom: a
    state whose rounds scatter (a neighbour busy on one core) counts for little, and a clean one
    for much.

    The baseline model's latency in the round is no covariate. Within one hour on the 2-core VM the
    ratio once followed it (int8/fp32 at batch 1: 1.16x with fp32 at 6.4 ms, 1.08x at 7.4 ms), but
    from run to run it does not: over 24 unchanged runs of three hours whose baseline model sat at
    5.1-6.9 ms (batch 1) and 30-38 ms (batch 8), the runs' mean log ratio spread 0.68% and 0.71%
    (sd), and a fit on the runs' baseline latency left 0.69% and 0.59% (benchmarks/false_alarm.py
    runs). A slope read within the runs and carried across a 10-25% move of the machine between
    hours added its error to every compare of those hours.
    """
    ratio = _ratio(base.value, cur.value)
    why = screen(base, cur)
    if why:
        return Verdict(NOT_COMPARABLE, ratio, reason=why, method="screen")
    pts = [((g, k), math.log(r)) for g, m in enumerate((base, cur))
           for r, k in zip(m.rounds, m.stratum or (0,) * len(m.rounds), strict=True)]
    groups = set_aside_wild(pts)
    strata = sorted({k for g, k in groups if g == 0 and (1, k) in groups})  # the states both runs have rounds in
    own_df = {k: len(groups[(0, k)]) + len(groups[(1, k)]) - 2 for k in strata}
    df = sum(own_df.values())
    if df < 1 or not strata:
        return decide(base, cur, rule, alpha=alpha, replicates="round ratios to the baseline's model timed alternately")
    mean = {g: statistics.fmean(ys) for g, ys in groups.items()}
    s2_of = moderated({k: sum((y - mean[g]) ** 2 for g in ((0, k), (1, k)) for y in groups[g]) for k in strata}, own_df)
    var_of = {k: s2_of[k] * (1 / len(groups[(0, k)]) + 1 / len(groups[(1, k)])) for k in strata}
    total = sum(1 / v for v in var_of.values()) if all(v > 0 for v in var_of.values()) else 0.0
    w = {k: 1 / var_of[k] / total for k in strata} if total else {k: 1 / len(strata) for k in strata}
    d = sum(w[k] * (mean[(1, k)] - mean[(0, k)]) for k in strata)
    var = 1 / total if total else 0.0
    if len(strata) > 1 and total:
        df = min(df, var ** 2 / sum((w[k] ** 2 * var_of[k]) ** 2 / (own_df[k] + STRATUM_PRIOR_DF) for k in strata))
    worse = 1.0 if rule.higher_is_worse else -1.0
    nb, nc = (sum(len(grp) for (g, k), grp in groups.items() if g == run and k in strata) for run in (0, 1))
    set_aside = len(pts) - sum(len(grp) for grp in groups.values())
    moved = math.exp(statistics.fmean(math.log(x) for x in cur.state) - statistics.fmean(math.log(x) for x in base.state)) \
        if base.state and cur.state and min(base.state + cur.state) > 0 else None
    states = f" in {len(strata)} machine states, each weighted by its spread" if len(strata) > 1 else ""
    return _t_verdict(d, max(var, 1e-12), df, worse, math.log1p(rule.threshold), alpha, rule.judged,
                      f"t-test on round ratios to the baseline's model timed alternately in the same process, "
                      f"{nb}+{nc} rounds{states}" + (f" (the baseline's model {moved - 1:+.1%} between the runs)" if moved else "")
                      + (f"; {set_aside} wild round{'s' * (set_aside != 1)} set aside" if set_aside else ""))


def _mann_whitney(base: Measurement, cur: Measurement, ratio: float | None, worse: float, lim: float, alpha: float,
                  judged: bool) -> Verdict:
    method = "asv's rule: Mann-Whitney U on raw samples (no between-process replication: use rounds >= 3 or a history)"
    if len(base.samples) < 5 or len(cur.samples) < 5 or ratio is None:
        return Verdict(UNCHANGED, ratio, method=method, reason="too few samples to test")
    from scipy.stats import mannwhitneyu

    p2 = float(mannwhitneyu(cur.samples, base.samples, alternative="two-sided").pvalue)
    change = worse * math.log(ratio)
    status = UNCHANGED
    if p2 < 2 * alpha and abs(change) >= lim:
        status = REGRESSION if change > 0 else IMPROVEMENT
    return Verdict(status if judged else UNCHANGED, ratio, None, p2 / 2, method)


def pooled_noise(pairs: Iterable[tuple[Measurement, Measurement]]) -> Noise | None:
    """The within-run spread of log round medians (winsorized, see :func:`trimmed`), pooled over
    cells (both runs of each pair)."""
    ss = 0.0
    n1 = df = 0
    for a, b in pairs:
        for m in (a, b):
            if len(m.rounds) >= 2 and all(x > 0 for x in m.rounds):
                _, wvar, h = trimmed([math.log(x) for x in m.rounds])
                ss += wvar * (len(m.rounds) - 1)
                n1 += len(m.rounds) - 1
                df += h - 1
    return Noise(ss / n1, df, f"round medians pooled over {df} df") if df else None


#: history noise: a run-to-run difference further than this many robust sd (1.4826 x MAD) from the
#: median difference is a step or a switch of the machine's state, not noise, and is set aside
HISTORY_REJECT = 3.5
#: degrees of freedom per kept difference of that estimate. Successive differences of white noise
#: (20,000 series each of 14, 30 and 61 runs) give the variance's spread of a chi-square with
#: 0.58-0.64 df per difference (0.51 with 8 runs), and its mean within 3% of the truth; the MAD alone
#: gives 0.29-0.31 (its 37% efficiency, less for the correlation of successive differences)
HISTORY_DF_PER_DIFF = 0.55


def noise_from_series(estimates: list[float], source: str = "history") -> Noise | None:
    """Variance of a run-to-run difference, from a history of per-run log estimates.

    Successive differences cancel slow level changes, and a step costs one difference. Their
    variance is a skipped variance: differences further than :data:`HISTORY_REJECT` robust sd
    (1.4826 x MAD) from their median (a step, a run in the machine's other state) are set aside,
    and the sample variance of the rest is the noise one compare of two runs faces, between-run
    drift included, with :data:`HISTORY_DF_PER_DIFF` degrees of freedom per difference kept.
    """
    xs = [x for x in estimates if x is not None and math.isfinite(x)]
    diffs = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    if len(diffs) < 5:
        return None
    med = statistics.median(diffs)
    sd = 1.4826 * statistics.median(abs(x - med) for x in diffs)
    kept = [x for x in diffs if abs(x - med) <= HISTORY_REJECT * sd]  # sd 0: only the differences equal to the median
    if len(kept) < 2:
        return None
    return Noise(statistics.variance(kept), max(2.0, HISTORY_DF_PER_DIFF * len(kept)),
                 f"{source}: {len(kept)} run-to-run differences" + (f" ({len(diffs) - len(kept)} set aside)" if len(kept) < len(diffs) else ""))


def run_estimate(m: Measurement | None) -> float | None:
    """The log-scale value of one run that :func:`decide` compares (trimmed mean of log round medians)."""
    if m is None or m.value is None or m.value <= 0:
        return None
    if m.rounds and all(x > 0 for x in m.rounds):
        return trimmed([math.log(x) for x in m.rounds])[0]
    return math.log(m.value)


def relative_to(m: Measurement, base: Measurement) -> Measurement | None:
    """``m``'s round medians over those of ``base`` (the suite baseline's cell) in the same rounds.

    The cells of one round run seconds apart, so the machine's drift between runs (a whole
    run 2-3% faster or slower, every cell alike) cancels in the ratio, while a technique that
    got slower still moves it. None without two shared rounds.
    """
    if m.slow or base.slow or m.other_state or base.other_state:
        return None
    b_of = dict(zip(base.round_ids, base.rounds, strict=False))
    pairs = [(i, x / b_of[i]) for i, x in zip(m.round_ids, m.rounds, strict=False) if x > 0 and b_of.get(i, 0) > 0]
    if len(pairs) < 2:
        return None
    ratios = tuple(r for _, r in pairs)
    return Measurement(value=math.exp(statistics.fmean(math.log(r) for r in ratios)), rounds=ratios,
                       round_ids=tuple(i for i, _ in pairs),
                       unstable="; ".join(filter(None, [m.unstable, f"baseline cell: {base.unstable}" if base.unstable else ""])),
                       unit="x")


# --- whole runs ---------------------------------------------------------------------------


def cell_name(row: dict[str, Any]) -> str:
    """A cell as people name it: technique label, backend, workload (and model when not the plain tiny one)."""
    wl = row.get("workload", {})
    parts = [row.get("technique", {}).get("label", "?"), row.get("backend", "?")]
    if wl:
        parts.append(" ".join(f"{k[0] if k in ('batch', 'seq_len') else k}={v}" for k, v in
                              (("b", wl.get("batch")), ("s", wl.get("seq_len"))) if v is not None))
        if wl.get("kind") not in (None, "forward"):
            parts.append(str(wl["kind"]))
    model = {k: v for k, v in (row.get("model") or {}).items() if v is not None and k != "source"}
    if model and model != {"size": "tiny"}:
        parts.append(",".join(f"{k}={v}" for k, v in model.items()))
    return " ".join(p for p in parts if p)


def environment_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    """'' when two environment fingerprints match (the git commit does not count), else what differs."""
    if a.get("id") and a.get("id") == b.get("id"):
        return ""
    diffs = []
    for k in FINGERPRINT_KEYS:
        va, vb = a.get(k), b.get(k)
        if va == vb:
            continue
        if isinstance(va, dict) and isinstance(vb, dict):
            for sub in sorted(set(va) | set(vb)):
                if va.get(sub) != vb.get(sub):
                    diffs.append(f"{k}.{sub}: {va.get(sub)} -> {vb.get(sub)}")
        else:
            diffs.append(f"{k}: {va} -> {vb}")
    return "; ".join(diffs)


@dataclass
class MetricResult:
    cell: str                    # cell key
    name: str                    # cell name (see cell_name)
    metric: str
    unit: str
    baseline: float | None
    current: float | None
    threshold: float
    verdict: Verdict
    baseline_run: str | None = None  # set where the cell was judged against another run than the compare's baseline
    #: 'regression' or 'improvement' where an unchanged verdict's 95% interval lies wholly past the
    #: threshold but its p missed the compare's level (few rounds, wide test): shown, never failed
    unconfirmed: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "verdict"}, **self.verdict.to_dict()}


@dataclass
class CellNote:
    """A cell judged as a whole: newly failing (a regression), fixed, skipped, not comparable."""

    cell: str
    name: str
    status: str
    reason: str


@dataclass
class Comparison:
    baseline: dict[str, Any]            # run summaries: run_id, suite, started, git commit, env id
    current: dict[str, Any]
    results: list[MetricResult] = field(default_factory=list)
    cells: list[CellNote] = field(default_factory=list)
    added: list[str] = field(default_factory=list)      # cell names only in the current run
    removed: list[str] = field(default_factory=list)    # only in the baseline
    environment: str = ""                                # '' or what differs
    suite_changed: bool = False
    trends: list[dict[str, Any]] = field(default_factory=list)   # recent steps from the history
    notes: list[str] = field(default_factory=list)
    alpha: float = ALPHA          # the one-sided level each timed test was run at
    timed_tests: int = 0          # how many timed tests shared the compare's family rate

    @property
    def unconfirmed(self) -> list[MetricResult]:
        return [r for r in self.results if r.unconfirmed]

    @property
    def regressions(self) -> list[MetricResult]:
        return [r for r in self.results if r.verdict.status == REGRESSION]

    @property
    def improvements(self) -> list[MetricResult]:
        return [r for r in self.results if r.verdict.status == IMPROVEMENT]

    @property
    def failing_cells(self) -> list[CellNote]:
        return [c for c in self.cells if c.status == REGRESSION]

    @property
    def not_comparable(self) -> list[MetricResult]:
        return [r for r in self.results if r.verdict.status == NOT_COMPARABLE]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions or self.failing_cells)

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "current": self.current, "regressed": self.regressed,
                "results": [r.to_dict() for r in self.results], "cells": [asdict(c) for c in self.cells],
                "added": self.added, "removed": self.removed, "environment": self.environment,
                "suite_changed": self.suite_changed, "trends": self.trends, "notes": self.notes,
                "alpha": self.alpha, "timed_tests": self.timed_tests}


def run_summary(meta: dict[str, Any]) -> dict[str, Any]:
    env = meta.get("environment", {})
    return {"run_id": meta.get("run_id"), "suite": meta.get("suite"), "started": meta.get("started"),
            "suite_sha256": meta.get("suite_sha256"), "git": env.get("git", {}).get("commit"), "env_id": env.get("id"),
            "source": meta.get("_source", "")}


def _context(row: dict[str, Any]) -> str:
    """What a cell measures apart from its technique: model, backend, workload."""
    import json

    return json.dumps([row.get("model"), row.get("backend"), row.get("workload")], sort_keys=True, default=str)


def state_level(probes: Iterable[float], margin: float = STATE_MARGIN) -> float | None:
    """The machine state most of these speed probes were taken in: the lower end of the
    ``margin``-wide window that holds the most of them (the faster window on a tie)."""
    import bisect

    xs = sorted(p for p in probes if p > 0)
    if not xs:
        return None
    counts = [bisect.bisect_right(xs, p * (1 + margin)) - i for i, p in enumerate(xs)]
    return xs[counts.index(max(counts))]


def in_state(x: float, level: float, margin: float) -> bool:
    """Whether an indicator value ``x`` (speed probe, baseline model median) lies in the state whose
    window starts at ``level`` (:func:`state_level`): from ``margin``/2 under it to ``margin`` over it."""
    return level * (1 - margin / 2) <= x <= level * (1 + margin)


def usable_rounds(m: Measurement, level: float | None, margin: float = STATE_MARGIN,
                  indicator: str = "speed probe") -> Measurement:
    """``m`` with only the rounds compare can judge: measured in the machine state of most of the
    cell's rounds in both runs (speed probe from ``margin``/2 under ``level`` to ``margin`` over it, see :func:`state_level`)
    and with clean samples of their own.

    With under half its rounds in that state and under :data:`STATE_ROUNDS`, ``m`` is marked
    ``other_state``; with under half of those clean, or its kept round medians (20% trimmed, as
    :func:`decide` uses them) more than 1.5x apart, ``unstable``: either way not comparable. A
    single wild round among ten no longer makes a cell not comparable; the trimmed test sets it
    aside. Rounds are left out only while
    :data:`MIN_ROUNDS` remain: of 3 rounds, a t-test on the 2 left has no power to speak of.
    """
    n = len(m.rounds)
    if m.slow or n == 0 or len(m.round_unstable) != n:
        return m
    from dataclasses import replace

    steady = list(range(n))
    if level and len(m.state) == n:
        steady = [i for i in steady if in_state(m.state[i], level, margin)]
        if len(steady) < min(n / 2, STATE_ROUNDS) or not steady:
            off = statistics.median(m.state) / level - 1
            return replace(m, other_state=f"{n - len(steady)} of {n} rounds timed in another machine state than most of "
                                          f"this cell's rounds in both runs ({indicator} {off:+.0%} against theirs)")
    keep = [i for i in steady if not m.round_unstable[i]]
    if 2 * len(keep) < len(steady) or not keep:
        reasons = dict.fromkeys(r for r in m.round_unstable if r)
        of = f"{n} rounds" if len(steady) == n else f"the {len(steady)} rounds in the state (of {n})"
        return replace(m, unstable=f"{len(steady) - len(keep)} of {of} unstable: " + "; ".join(reasons))
    reasons = []
    if len(keep) < min(MIN_ROUNDS, n):  # too few left to judge alone (rounds: 3): every round, as measured
        keep = list(range(n))
        reasons = list(dict.fromkeys(r for r in m.round_unstable if r))
    rounds = tuple(m.rounds[i] for i in keep)
    g = _trim_count(len(rounds))
    core = sorted(rounds)[g:len(rounds) - g]
    spread = max(core) / min(core) if min(core) > 0 else 1.0
    unstable = "; ".join(reasons + ([f"round medians differ {spread:.2f}x"] if spread > 1.5 else []))
    if len(keep) == n:
        return replace(m, unstable=unstable)
    return replace(_only_rounds(m, keep, statistics.median(rounds)), unstable=unstable)


def _only_rounds(m: Measurement, keep: list[int], value: float | None = None) -> Measurement:
    """``m`` cut to the rounds at ``keep`` (each per-round field alike), with ``value`` (by default
    the geometric mean of the kept rounds, as :func:`paired_rounds` values alternated ratios); its
    pooled samples, which mix every round, are dropped."""
    from dataclasses import replace

    n = len(m.rounds)
    if value is None:
        value = math.exp(statistics.fmean(math.log(m.rounds[i]) for i in keep))

    def cut(xs: tuple) -> tuple:
        return tuple(xs[i] for i in keep) if len(xs) == n else xs

    return replace(m, value=value, rounds=cut(m.rounds), round_ids=cut(m.round_ids), probes=cut(m.probes),
                   state=cut(m.state), round_unstable=cut(m.round_unstable), stratum=cut(m.stratum), samples=())


def paired_rounds(m: Measurement, fastest: float | None = None) -> Measurement | None:
    """``m``'s rounds timed alternately with the suite baseline's model in the same process
    (``measure.paired_s``): per round the ratio of the two medians, and the baseline model's
    median as the machine state both were timed in. None without :data:`MIN_ROUNDS` of them.

    A round the runner marked slow (speed probe over 3x the run's fastest), or whose probe lies over
    :data:`SLOW_FACTOR` x ``fastest`` (the fastest of both runs), is set aside rather than the cell:
    the ratio is judged round by round. With a noisy neighbour on the 2-core VM, one round in 20
    marked slow (probe 3.1x) left a cell not comparable in 6 of 48 compares (benchmarks/false_alarm.py).
    A cell marked slow without the rounds named (one round) has none."""
    if len(m.paired) != len(m.rounds):
        return None
    slow = set(m.slow_rounds)
    if fastest and len(m.probes) == len(m.rounds):
        slow |= {m.round_ids[i] for i, p in enumerate(m.probes) if p > SLOW_FACTOR * fastest}
    if m.slow and not slow:
        return None
    idx = [i for i, r in enumerate(m.paired) if r > 0 and m.paired_base[i] > 0 and m.round_ids[i] not in slow]
    if len(idx) < MIN_ROUNDS:
        return None
    ratios = tuple(m.paired[i] for i in idx)
    probes = tuple(m.paired_probe[i] for i in idx) if len(m.paired_probe) == len(m.paired) else ()
    return Measurement(value=math.exp(statistics.fmean(math.log(r) for r in ratios)), rounds=ratios,
                       round_ids=tuple(m.round_ids[i] for i in idx), state=tuple(m.paired_base[i] for i in idx),
                       probes=probes if all(p > 0 for p in probes) else (), round_unstable=("",) * len(idx), unit="x")


def machine_states(xs: list[float], margin: float) -> list[int]:
    """Each value's machine state: 0 for the ``margin`` window (:func:`in_state`) that holds the most
    of them (:func:`state_level`), 1 for the window that holds the most of the rest, and so on."""
    label = [-1] * len(xs)
    k = 0
    while -1 in label:
        level = state_level([x for x, s in zip(xs, label, strict=True) if s < 0], margin)
        if level is None:  # only values that are no timing (0) left
            break
        for i, x in enumerate(xs):
            if label[i] < 0 and in_state(x, level, margin):
                label[i] = k
        k += 1
    return label


def shared_states(pb: Measurement, pc: Measurement, margin: float = PAIRED_MARGIN,
                  probe_margin: float | None = STATE_MARGIN) -> tuple[Measurement, Measurement]:
    """Two runs' alternated rounds (:func:`paired_rounds`) cut to the machine states both were timed
    in, each round labelled with its state (``stratum``) for :func:`decide_alternated`, then checked
    for spread as :func:`usable_rounds` does.

    A round's state is the window of the baseline model's latency it lies in (:func:`machine_states`,
    ``margin`` windows), and whether the speed probe taken right after its alternation lies over
    ``probe_margin`` above the level most of its own run's probes share (disturbed while it
    alternated; ``None``: not asked). Every state both runs have :data:`STRATUM_ROUNDS` rounds in is kept; the
    change is read within each. A run left with under half its rounds and under
    :data:`STATE_ROUNDS` was timed in other states than the other: ``other_state``.

    Why states and not one window: the state moves the ratio. Under a noisy neighbour on the 2-core
    VM int8/fp32 at batch 1 read 1.10 in the usual state and 1.05 with the neighbour on, and rounds
    whose probe said they were disturbed read +0.6% to +3.5% at batch 8 (five hours,
    benchmarks/false_alarm.py). Why not keep only the usual state, as compare did until then: in a
    noisy hour half the rounds were timed with the probe 25% slow and the baseline model in two
    windows 35% apart, the usual state kept 4-9 of a run's 20 rounds, and a 5% slowdown was caught
    in 55 of 80 compares, though the ratio in each state holding 14 rounds of the hour or more lay
    within 1.5% of its run's median.

    Where both runs have ``QUIET_ROUNDS`` rounds in their quiet state (:func:`quiet_rounds`, which
    measure.extend_s provides), only those are kept: beside a neighbour busy on the other core for
    minutes the ratio is no single state (int8/fp32 at batch 1 read 1.35-1.47 with the baseline
    model at 9.7-10.5 ms, 1.05-1.10 at 13-14 ms, 1.16-1.20 quiet at 5.2-5.5 ms, one 30% window
    holding ratios 40% apart), and reading those windows raised 2 false alarms in the 6 compares of
    such an hour (q8h). Over the seven hours on the 2-core VM, in sample: 4 false alarms in 1794
    compares across hours where the states alone gave 7, and a 5% slowdown caught in 2066 of 2264
    trials where they caught 2011 (benchmarks/false_alarm.py --across).

    Why windows of 30% and each run's own probe level: between hours the machine moves as a whole.
    Over three hours on the 2-core VM the baseline model's usual latency went from 5.1 to 6.5 ms and
    the probe's usual level from 100 to 110 us, while the runs' int8/fp32 spread 0.7% (sd). With 15%
    windows and one probe level for both runs, 59 of 480 compares of a 5% slowdown across those
    hours found no state both runs shared and were not judged (382 caught); with these, 5 (464).
    """
    from dataclasses import replace

    n = len(pb.rounds)
    if len(pb.state) != n or len(pc.state) != len(pc.rounds):
        return pb, pc
    kb, kc = quiet_rounds(pb), quiet_rounds(pc)
    if len(kb) >= QUIET_ROUNDS and len(kc) >= QUIET_ROUNDS:  # both runs have their quiet state: it alone
        pb, pc = (m if len(k) == len(m.rounds) else _only_rounds(m, k) for m, k in ((pb, kb), (pc, kc)))
        n = len(pb.rounds)
    label = machine_states(list(pb.state + pc.state), margin)
    if probe_margin and len(pb.probes) == n and len(pc.probes) == len(pc.rounds):
        # each run's probes against its own usual level: the level moves between hours (100 us, then 110)
        hit = [not in_probe_state(p, level, probe_margin) for m in (pb, pc)
               for level in [state_level(m.probes, probe_margin)] for p in m.probes]
        label = [2 * k + h for k, h in zip(label, hit, strict=True)]
    sb, sc = label[:n], label[n:]
    shared = {k for k in set(label) if min(sb.count(k), sc.count(k)) >= STRATUM_ROUNDS}

    def cut(m: Measurement, states: list[int]) -> Measurement:
        keep = [i for i, k in enumerate(states) if k in shared]
        n = len(m.rounds)
        if len(keep) < min(n / 2, STATE_ROUNDS) or not keep:
            level = state_level(pb.state + pc.state, margin) or 1.0
            return replace(m, other_state=f"{n - len(keep)} of {n} rounds timed in machine states the other run has "
                                          f"under {STRATUM_ROUNDS} rounds in (the baseline model's latency "
                                          f"{statistics.median(m.state) / level - 1:+.0%} against both runs' usual)")
        m = replace(m, stratum=tuple(states))
        if len(keep) < n:
            m = _only_rounds(m, keep)
        return usable_rounds(m, None, margin)
    return cut(pb, sb), cut(pc, sc)


def quiet_rounds(m: Measurement, margin: float = QUIET_MARGIN) -> list[int]:
    """The indices of ``m``'s alternated rounds in its quiet state: the baseline model's latency at
    most ``margin`` over the run's fastest round (measure.extend_s times a cell until it has
    :data:`~optbench.measure.latency.QUIET_ROUNDS` of them)."""
    timed = [x for x in m.state if x > 0]
    if not timed:
        return []
    fastest = min(timed)
    return [i for i, x in enumerate(m.state) if 0 < x <= fastest * (1 + margin)]


def probe_kept(probes: tuple[float, ...] | list[float], level: float, margin: float = STATE_MARGIN) -> list[int] | None:
    """The indices of the rounds whose speed probe lies in the state at ``level``; None when under
    half of them and under :data:`STATE_ROUNDS` do, as :func:`usable_rounds` rules for a cell."""
    keep = [i for i, p in enumerate(probes) if in_probe_state(p, level, margin)]
    return keep if len(keep) >= min(len(probes) / 2, STATE_ROUNDS) else None


def alternated_series(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History points of :data:`ALTERNATED` (``rounds``: [ratio, baseline median, speed probe]), each
    run's value put on one footing for trends, as :func:`decide_alternated` does for two runs.

    Every round is put in a machine state, as :func:`shared_states` does: the :data:`PAIRED_MARGIN`
    window of the baseline model's latency over the whole series, and whether its speed probe lies
    over :data:`STATE_MARGIN` above the level most of the series' probes share (rounds recorded
    without a probe count as undisturbed). The log ratio is fitted as run + state + one slope on the
    baseline model's log latency, each state weighted by its spread (weighted least squares, the
    spreads shrunk toward their geometric mean as in :func:`decide_alternated`), and a run's value
    is its level in the state of most rounds, at the series' mean baseline latency; ``ci95`` is its
    t interval. Rounds of a state no other run was timed in are set aside (they say nothing of the
    state's offset); a run left with under :data:`MIN_ROUNDS` rounds, or timed only in states no
    run links to the main one, is flagged. Rounds over 3.5 robust sd from the first fit are set
    aside once, as in :func:`set_aside_wild`.

    On the 2-core VM, in a noisy hour with half the rounds in a second state, the run-to-run sd of
    this value over 8 unchanged runs was 0.47% and 0.29% for int8 at batch 1 and 8, no run left out,
    where the usual state alone had left 3 and 1 runs out at 0.50% and 0.54%; int8's own latency
    moved 3.7% and 4.7% (benchmarks/trend_noise.py).
    """
    import numpy as np

    out = [dict(p, ci95=None) for p in points]
    rows = [(i, r, b, x[0] if x else 0.0) for i, p in enumerate(points) if not p.get("flagged")
            for r, b, *x in (p.get("rounds") or []) if r and r > 0 and b and b > 0]
    if not rows:
        for p in out:
            if p.get("rounds") is not None and not p.get("flagged"):
                p["flagged"] = f"under {MIN_ROUNDS} rounds timed alternately"
        return out
    label = machine_states([b for _, _, b, _ in rows], PAIRED_MARGIN)
    probes = [x for *_, x in rows if x > 0]
    plevel = state_level(probes) if probes else None
    state = [2 * k + bool(plevel and x > 0 and not in_probe_state(x, plevel, STATE_MARGIN)) for k, (*_, x) in zip(label, rows, strict=True)]
    runs_in: dict[int, set[int]] = {}
    for (i, *_), s in zip(rows, state, strict=True):
        runs_in.setdefault(s, set()).add(i)
    # the states linked to the main one (most rounds) through runs timed in both, each shared by 2 runs
    main = max(runs_in, key=lambda s: (state.count(s), -s))
    linked, frontier = {main}, [main]
    while frontier:
        s = frontier.pop()
        for other, its in runs_in.items():
            if other not in linked and len(its) > 1 and its & runs_in[s]:
                linked.add(other)
                frontier.append(other)
    kept = [(i, math.log(r), math.log(b), s) for (i, r, b, _), s in zip(rows, state, strict=True) if s in linked]
    count = Counter(i for i, *_ in kept)
    kept = [row for row in kept if count[row[0]] >= MIN_ROUNDS]
    for i, p in enumerate(out):
        if not p.get("flagged") and p.get("rounds") is not None and count.get(i, 0) < MIN_ROUNDS:
            p["flagged"] = f"under {MIN_ROUNDS} rounds timed in the machine states the series shares"
    if not kept:
        return out
    runs = sorted({i for i, *_ in kept})
    states = sorted({s for *_, s in kept} - {main})
    idx = {i: n for n, i in enumerate(runs)}
    col = {s: n for n, s in enumerate(states)}
    grand = statistics.fmean(x for _, _, x, _ in kept)

    def fit(rows: list, var_of: dict | None = None) -> tuple:
        """Weighted least squares of y on run + state + slope, the run effects absorbed (Frisch-Waugh-
        Lovell): (run levels, their variances, residuals, residual df), O(rounds x states^2)."""
        g = np.array([idx[i] for i, *_ in rows])
        y = np.array([r[1] for r in rows])
        z = np.zeros((len(rows), len(states) + 1))
        for n, (_, _, x, s) in enumerate(rows):
            if s != main:
                z[n, col[s]] = 1.0
            z[n, -1] = x - grand
        w = np.array([1.0 / var_of[r[3]] for r in rows]) if var_of else np.ones(len(rows))
        sw = np.bincount(g, w, len(runs))
        ybar = np.bincount(g, w * y, len(runs)) / sw
        zbar = np.stack([np.bincount(g, w * z[:, j], len(runs)) for j in range(z.shape[1])], axis=1) / sw[:, None]
        zt, yt = z - zbar[g], y - ybar[g]
        cov = np.linalg.pinv(zt.T @ (zt * w[:, None]))
        theta = cov @ (zt.T @ (w * yt))
        res = yt - zt @ theta
        df = len(rows) - len(runs) - int(np.linalg.matrix_rank(zt))
        scale = 1.0 if var_of else float(res @ (w * res)) / max(df, 1)
        level = ybar - zbar @ theta
        var = scale * (1 / sw + np.einsum("ij,jk,ik->i", zbar, cov, zbar))
        return level, var, res, df

    level, var, res, df = fit(kept)
    mad = float(np.median(np.abs(res))) * 1.4826
    if mad > 0:
        inliers = [row for row, e in zip(kept, res, strict=True) if abs(e) <= HISTORY_REJECT * mad]
        left = Counter(i for i, *_ in inliers)
        if all(left[i] >= MIN_ROUNDS for i in runs):
            kept = inliers
            level, var, res, df = fit(kept)
    if df < 1:
        return out
    if states:  # each state weighted by its spread, shrunk toward the geometric mean (decide_alternated)
        share = df / (len(kept) - len(runs))
        ss = dict.fromkeys([main, *states], 0.0)
        for e, row in zip(res, kept, strict=True):
            ss[row[3]] += float(e * e)
        rounds_in = Counter(row[3] for row in kept)
        var_of = moderated(ss, {s: rounds_in[s] * share for s in ss})
        if min(var_of.values()) > 0:
            level, var, res, df = fit(kept, var_of)
    from scipy.special import stdtrit  # Student's t quantile, without scipy.stats' ~1 s import

    half = float(stdtrit(df, 0.975))
    for n, i in enumerate(runs):
        se = math.sqrt(max(float(var[n]), 0.0))
        out[i]["value"] = math.exp(float(level[n]))
        out[i]["ci95"] = [math.exp(float(level[n]) - half * se), math.exp(float(level[n]) + half * se)]
    return out


def _own_move(mb: Measurement, mc: Measurement) -> float | None:
    """The log change of a cell's own timings between two runs, as :func:`decide` estimates it."""
    a, b = run_estimate(mb), run_estimate(mc)
    return None if a is None or b is None else b - a


def baseline_partners(baseline: str | None, rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Cell key -> the key of the suite baseline's cell of the same model, backend and workload
    (for every cell but the baseline's own): the partner a technique's timings are judged against."""
    rows = list(rows)
    where = {_context(r): r["cell"] for r in rows if baseline and r.get("technique", {}).get("label") == baseline}
    return {r["cell"]: where[_context(r)] for r in rows if where.get(_context(r)) not in (None, r["cell"])}


def drift_index(ms: list[Measurement]) -> Measurement | None:
    """The run's drift as several cells saw it: round by round, the geometric mean of their round
    medians, over the rounds every one of them kept. None without two such rounds."""
    if not ms:
        return None
    maps = [dict(zip(m.round_ids, m.rounds, strict=False)) for m in ms]
    ids = tuple(i for i in ms[0].round_ids if all(mp.get(i, 0) > 0 for mp in maps))
    if len(ids) < 2:
        return None
    rounds = tuple(math.exp(statistics.fmean(math.log(mp[i]) for mp in maps)) for i in ids)
    return Measurement(value=statistics.median(rounds), rounds=rounds, round_ids=ids)


def against_others(mb: Measurement, mc: Measurement, others: list[tuple[Measurement, Measurement]], rule: MetricRule,
                   alpha: float, history: Noise | None = None) -> Verdict | None:
    """A cell judged against the run's other baseline cells (``others``: (baseline run, current run)
    pairs): its round medians over theirs (:func:`drift_index`), round by round, tested between the
    two runs like any ratio (``history``: a run-to-run noise that widens the test where larger). None
    without such cells or shared rounds, or where the ratios cannot be compared."""
    xb, xc = drift_index([b for b, _ in others]), drift_index([c for _, c in others])
    if xb is None or xc is None:
        return None
    rb, rc = relative_to(mb, xb), relative_to(mc, xc)
    if rb is None or rc is None or screen(rb, rc):
        return None
    return decide(rb, rc, rule, alpha=alpha, history=history, replicates="round medians relative to the run's other baseline cells")


def moved_alone(partner: tuple[Measurement, Measurement], others: list[tuple[Measurement, Measurement]],
                alpha: float) -> Verdict | None:
    """How the baseline's cell moved against the run's other baseline cells (``ratio`` and the
    one-sided ``p`` of :func:`against_others`)."""
    return against_others(*partner, others, MetricRule(0.0), alpha)


def gross_change(mb: Measurement, mc: Measurement, partner: tuple[Measurement, Measurement] | None,
                 rule: MetricRule) -> Verdict | None:
    """A regression or improvement of a cell timed in another machine state than the baseline's,
    where the change is past what a state switch does (:data:`GROSS_RELATIVE`, relative to the
    baseline's cell of the same run where both runs have it, else :data:`GROSS_ABSOLUTE`); else None.
    Medians of every round: the rounds of another state are what there is. A cell timed in the
    slow mode or with unstable samples stays not comparable."""
    if not (mb.other_state or mc.other_state) or any(m.slow or m.unstable for m in (mb, mc)) or not (mb.value and mc.value):
        return None
    ratio, limit, what = mc.value / mb.value, GROSS_ABSOLUTE, "its own timings"
    if partner and all(p.value and not p.slow and not p.unstable for p in partner):
        ratio, limit, what = ratio / (partner[1].value / partner[0].value), GROSS_RELATIVE, "its ratio to the baseline's cell"
    worse = ratio if rule.higher_is_worse else 1 / ratio
    if limit ** -1 < worse < limit:
        return None
    side = "baseline" if mb.other_state else "current"
    return Verdict(REGRESSION if worse > 1 else IMPROVEMENT, mc.value / mb.value, None, None,
                   f"medians of every round, across machine states ({side}: {mb.other_state or mc.other_state})",
                   f"timed in another machine state, but {what} moved x{ratio:.2f}, past the x{limit:g} a state switch makes")


#: an unchanged verdict is shown unconfirmed where its estimate lies past the threshold and its one-sided p,
#: short of the compare's level, is under this (significant on its own, not after the compare's share-out
#: over its many tests), or where its estimate lies past :data:`GROSS_RELATIVE` whatever its p (rounds too
#: scattered to confirm a 2x slowdown). benchmarks/false_alarm.py's eight stored hours (20 rounds, compare
#: without history): 0 of 139 compares of unchanged runs within an hour and 8 of 1978 across hours showed
#: one (an estimate past 5% at any p: 32 and 360; past 1.5x: none); of 1236 compares of a 5%-slowed run
#: across hours, 20 showed the slowdown so
UNCONFIRMED_P = 0.05


def unconfirmed(v: Verdict, rule: MetricRule, alpha: float) -> str:
    """'regression' or 'improvement' where an unchanged verdict, its p short of ``alpha``, has its
    estimate past the threshold at p under :data:`UNCONFIRMED_P`, or past :data:`GROSS_RELATIVE` at
    any p; else ''. Such a change is not flagged (the compare's false-alarm rate holds), but "no
    regression" alone would hide it: a 3-round run with one round in another state once read a 2x
    slowdown as x1.90 [1.15, 3.14], p 0.012 against the 0.005 its compare needed, and in CI a 5-round
    run whose baseline model was timed in another state left one judged on the cell's own scattered
    rounds (with the between-run drift allowance), neither flagged nor shown. Verdicts left unchanged
    on purpose (the baseline's cell moved, not this one) passed the test and are not marked."""
    if v.status != UNCHANGED or not rule.judged or not v.ratio or v.p is None or v.p < alpha:
        return ""
    worse = v.ratio if rule.higher_is_worse else 1 / v.ratio
    past = 1 + rule.threshold if v.p < UNCONFIRMED_P else max(GROSS_RELATIVE, 1 + rule.threshold)
    if worse > past:
        return REGRESSION
    if worse < 1 / past:
        return IMPROVEMENT
    return ""


def _fastest_probe(rows: Iterable[dict[str, Any]]) -> float | None:
    probes = [p for r in rows for p in (r.get("metrics", {}).get("latency", {}) or {}).get("speed_probe_s", []) or [] if p > 0]
    return min(probes) if probes else None


def _with_probe_screen(m: Measurement, fastest: float | None) -> Measurement:
    """Flag a measurement whose probe is past SLOW_FACTOR x the fastest of both runs (the runner
    compares with its own run only, so a run that starts slow escapes its check)."""
    if m.slow or not fastest or not m.probes:
        return m
    worst = max(m.probes)
    if worst > SLOW_FACTOR * fastest:
        from dataclasses import replace

        return replace(m, slow=f"speed probe {worst / fastest:.1f}x the fastest of both runs")
    return m


def compare_runs(base_meta: dict[str, Any], base_rows: list[dict[str, Any]], cur_meta: dict[str, Any],
                 cur_rows: list[dict[str, Any]], *, history_noise: dict[tuple[str, ...], Noise] | None = None,
                 family_alpha: float = FAMILY_ALPHA, relative: bool = True, drift_relative: float = DRIFT_RELATIVE,
                 paired: bool = True,
                 state_margin: float | None = STATE_MARGIN, drift_sd: float = DRIFT_SD) -> Comparison:
    """Compare two runs cell by cell (matched by cell key); rows are merged rows (one per cell).

    Timed metrics share ``family_alpha``: with m of them judged, each is tested at
    ``family_alpha / m``, so one compare of unchanged runs raises a false alarm at most that
    often (if the noise model holds). A technique's cell is judged ``relative`` to the suite
    baseline's cell of the same round (:func:`relative_to`: the drift between runs cancels),
    unless that baseline cell itself changed, or moved against the run's other baseline cells
    (:data:`ALONE_P`, :func:`moved_alone`): then a change it makes must show in the cell's own
    timings too, and a change it hides is found against those others (:func:`against_others`);
    the baseline's cells, and every cell without a
    round-by-round partner, are judged on their absolute timings, against the history's
    run-to-run noise or, without one, an assumed between-run drift (:data:`DRIFT_PER_RUN`, at least ``drift_sd`` per run).
    """
    cmp = Comparison(run_summary(base_meta), run_summary(cur_meta))
    cmp.environment = environment_difference(base_meta.get("environment", {}), cur_meta.get("environment", {}))
    cmp.suite_changed = bool(base_meta.get("suite_sha256")) and base_meta.get("suite_sha256") != cur_meta.get("suite_sha256")
    thresholds = cur_meta.get("thresholds") or {}
    base_by = {r["cell"]: r for r in base_rows}
    cur_by = {r["cell"]: r for r in cur_rows}
    cmp.added = sorted(cell_name(cur_by[k]) for k in cur_by.keys() - base_by.keys())
    cmp.removed = sorted(cell_name(base_by[k]) for k in base_by.keys() - cur_by.keys())
    fastest = _fastest_probe(list(base_rows) + list(cur_rows)) if not cmp.environment else None
    history_noise = history_noise or {}

    both: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for key in sorted(base_by.keys() & cur_by.keys(), key=lambda k: cell_name(cur_by[k])):
        b, c = base_by[key], cur_by[key]
        name = cell_name(c)
        if c.get("status") == "failed" and b.get("status") == "ok":
            cmp.cells.append(CellNote(key, name, REGRESSION, f"failed: {c.get('reason', '')}"))
        elif c.get("status") == "ok" and b.get("status") == "failed":
            cmp.cells.append(CellNote(key, name, IMPROVEMENT, f"fixed (baseline failed: {b.get('reason', '')})"))
        elif c.get("status") != "ok" or b.get("status") != "ok":
            cmp.cells.append(CellNote(key, name, c.get("status", "?"), c.get("reason") or b.get("reason") or ""))
        elif cmp.environment:
            cmp.cells.append(CellNote(key, name, NOT_COMPARABLE, f"environment differs: {cmp.environment}"))
        else:
            both.append((key, b, c))

    partner = baseline_partners(cur_meta.get("baseline") or base_meta.get("baseline"), [c for _, _, c in both])
    metrics_of: dict[str, list[tuple[str, str, Measurement, Measurement, str | None]]] = {}
    paired_of: dict[tuple[str, str], tuple[Measurement, Measurement]] = {}
    for key, b, c in both:
        pkey = partner.get(key)
        for metric in sorted(set(b.get("metrics", {})) & set(c.get("metrics", {}))):
            mb, mc = Measurement.from_row(b, metric), Measurement.from_row(c, metric)
            if mb is None or mc is None:
                continue
            mb, mc = _with_probe_screen(mb, fastest), _with_probe_screen(mc, fastest)
            pb, pc = (paired_rounds(mb, fastest), paired_rounds(mc, fastest)) if paired and relative and pkey else (None, None)
            if pb is not None and pc is not None:
                paired_of[(key, metric)] = shared_states(pb, pc, PAIRED_MARGIN, state_margin)
            if mb.timed and mc.timed:
                # each cell against its own probes in both runs: what a cell ran just before shifts its
                # probe by a few percent (torch-dynamic-int8: +5%), the machine's state by 6%
                level = state_level(mb.state + mc.state, state_margin) if state_margin else None
                mb, mc = usable_rounds(mb, level, state_margin or 0.0), usable_rounds(mc, level, state_margin or 0.0)
            metrics_of.setdefault(metric, []).append((key, cell_name(c), mb, mc, pkey))
    n_timed = sum(1 for metric, items in metrics_of.items() if rule_for(metric, thresholds).judged
                  for _, _, mb, mc, _ in items if mb.timed or mc.timed)
    alpha = family_alpha / max(1, n_timed)
    cmp.alpha, cmp.timed_tests = alpha, n_timed
    for metric, items in metrics_of.items():
        rule = rule_for(metric, thresholds)
        clean = [(mb, mc) for _, _, mb, mc, _ in items if mb.timed and not screen(mb, mc)]
        pooled = pooled_noise(clean) if len(clean) > 1 else None

        def absolute(key: str, mb: Measurement, mc: Measurement, rule: MetricRule = rule, pooled: Noise | None = pooled,
                     metric: str = metric) -> Verdict:
            return decide(mb, mc, rule, pooled=pooled, history=history_noise.get((key, metric)), alpha=alpha,
                          drift=DRIFT_PER_RUN if mb.timed else 0.0, drift_sd=drift_sd if mb.timed else 0.0)

        # the baseline's cells (and cells without a partner) first: absolute timings
        verdicts = {key: absolute(key, mb, mc) for key, _, mb, mc, pkey in items if pkey is None or not relative}
        by_key = {key: (mb, mc) for key, _, mb, mc, _ in items}
        rel: dict[str, tuple[Measurement, Measurement]] = {}
        # the history can say a cell's own timings drift less than its ratio to the baseline's cell
        own_steadier = {key for key, *_ in items if (key, metric) in history_noise and (key, metric, "relative") in history_noise
                        and history_noise[(key, metric)].var < history_noise[(key, metric, "relative")].var}
        for key, _, mb, mc, pkey in items:
            if key not in verdicts and key not in own_steadier and pkey in verdicts and verdicts[pkey].status == UNCHANGED:
                pb, pc = by_key[pkey]
                rb, rc = relative_to(mb, pb), relative_to(mc, pc)
                if rb is not None and rc is not None:
                    rel[key] = (rb, rc)
        baseline_keys = sorted(set(partner.values()) & verdicts.keys())

        def widest(key: str, metric: str = metric) -> Noise | None:
            """The larger of a cell's history noises (absolute, relative): a cell judged against the
            run's other baseline cells has no history of its own"""
            known = [n for n in (history_noise.get((key, metric)), history_noise.get((key, metric, "relative"))) if n]
            return max(known, key=lambda n: n.var) if known else None

        rel_pooled = pooled_noise([p for p in rel.values() if not screen(*p)]) if len(rel) > 1 else None
        alternated = {key: paired_of[(key, metric)] for key, *_ in items if (key, metric) in paired_of and key not in verdicts}
        for key, _, mb, mc, pkey in items:
            if key in verdicts:
                continue
            alt = v = decide_alternated(*alternated[key], rule, alpha=alpha) if key in alternated else None
            if v is not None and v.status != NOT_COMPARABLE:
                pass  # the model and the baseline's shared the machine's state: nothing else to rule out
            elif key in rel:
                v = decide(*rel[key], rule, pooled=rel_pooled, history=history_noise.get((key, metric, "relative")),
                           alpha=alpha, drift=drift_relative,
                           replicates="round medians relative to the baseline's cell of the same round")
                if v.status == NOT_COMPARABLE:
                    v.ratio = _ratio(mb.value, mc.value)
                own = _own_move(mb, mc)
                others = [by_key[k] for k in baseline_keys if k != pkey and verdicts[k].status == UNCHANGED]
                alone = moved_alone(by_key[pkey], others, alpha) if others else None
                moved = alone is not None and alone.p is not None and alone.p < ALONE_P and alone.ratio not in (None, 1.0)
                if v.status in (REGRESSION, IMPROVEMENT) and own is not None and v.ratio and own * math.log(v.ratio) <= 0:
                    # the ratio moved one way, the cell's own timings the other (or not at all). Either the
                    # whole run drifted and the cell changed within it, or the baseline's cell moved on its own
                    # (none at batch 1 ran 7% faster in one run while every other cell stayed put: an unchanged
                    # verdict with a wide drift allowance can hide that). The run's other baseline cells tell
                    # the two apart: with them, the baseline's cell moved alone only if it moved against them
                    if alone is None or (moved and math.log(alone.ratio) * math.log(v.ratio) < 0):
                        v.method += (f"; not flagged: its own timings moved {math.expm1(own):+.1%}, so the baseline's "
                                     f"cell moved, not this one" + (f" ({alone.ratio - 1:+.1%} against the run's other "
                                     f"baseline cells, p={alone.p:.2g})" if moved else ""))
                        v.status = UNCHANGED
                    else:
                        v.method += (f"; its own timings moved {math.expm1(own):+.1%} with the whole run: the baseline's "
                                     f"cell moved {alone.ratio - 1:+.1%} against the run's other baseline cells")
                elif v.status == UNCHANGED and moved and own is not None:
                    # the baseline's cell moved alone the way this cell moved, hiding its change in the ratio
                    # (none at batch 1 2-3% slower than none at batch 8 in a run where int8 was slowed 5%):
                    # judged against the run's other baseline cells instead, and its own timings must agree
                    v2 = against_others(mb, mc, others, rule, alpha, widest(key))
                    if v2 is not None and v2.status in (REGRESSION, IMPROVEMENT) and v2.ratio \
                            and own * math.log(v2.ratio) > 0 and math.log(alone.ratio) * math.log(v2.ratio) > 0:
                        v2.method += (f"; the baseline's cell moved {alone.ratio - 1:+.1%} against them (p={alone.p:.2g}), "
                                      f"which hid the change relative to it ({v.ratio - 1:+.1%})")
                        v = v2
            else:
                v = absolute(key, mb, mc)
                stood_in = False  # the run's other baseline cells stood in for a baseline's cell not comparable
                if pkey in verdicts and verdicts[pkey].status == NOT_COMPARABLE and v.status != NOT_COMPARABLE:
                    # the baseline's cell was timed in another machine state (or unstable): the run's other
                    # baseline cells stand in for it, and, unable to tell whether they moved alone, the change
                    # must show in the cell's own timings too. 20 rounds, stored hours: 8 more 5% slowdowns
                    # caught of 335, no false alarm in the 20 compares of unchanged runs judged so
                    others = [by_key[k] for k in baseline_keys if verdicts[k].status == UNCHANGED]
                    v2 = against_others(mb, mc, others, rule, alpha, widest(key)) if others else None
                    if v2 is not None and v2.status != NOT_COMPARABLE:
                        own = _own_move(mb, mc)
                        v2.method += f"; the baseline's cell is not comparable ({verdicts[pkey].reason or verdicts[pkey].method})"
                        if v2.status in (REGRESSION, IMPROVEMENT) and (own is None or own * math.log(v2.ratio) <= 0):
                            v2.method += f"; not flagged: its own timings moved {math.expm1(own or 0.0):+.1%}"
                            v2.status = UNCHANGED
                        v, stood_in = v2, True
                if key in own_steadier and pkey in verdicts and verdicts[pkey].status == UNCHANGED:
                    v.method += "; absolute timings: in the history they drift less than the ratio to the baseline's cell"
                elif pkey in verdicts and verdicts[pkey].status != UNCHANGED and not stood_in:
                    v.method += f"; the baseline's cell changed ({verdicts[pkey].status})"
            if alt is not None and v is not alt:  # say why the alternated rounds did not decide
                if v.status == NOT_COMPARABLE:
                    v.reason = f"{v.reason}; alternated rounds: {alt.reason}" if v.reason else f"alternated rounds: {alt.reason}"
                else:
                    v.method += f"; not judged on its alternated rounds: {alt.reason}"
            verdicts[key] = v
        for key, name, mb, mc, pkey in items:
            if verdicts[key].status == NOT_COMPARABLE and rule.judged and mb.timed and mc.timed:
                verdicts[key] = gross_change(mb, mc, by_key.get(pkey) if pkey else None, rule) or verdicts[key]
            cmp.results.append(MetricResult(key, name, metric, mc.unit or mb.unit, mb.value, mc.value, rule.threshold, verdicts[key],
                                            unconfirmed=unconfirmed(verdicts[key], rule, alpha)))
    cmp.results.sort(key=lambda r: (r.name, r.metric))
    unreplicated = sum(1 for r in cmp.results if r.verdict.method.startswith("asv's rule"))
    if unreplicated:
        cmp.notes.append(f"{unreplicated} timed metric{'s were' if unreplicated != 1 else ' was'} judged on within-process samples "
                         "only (rounds: 1 and too little history): drift between runs can show as a change; use rounds: 3 or more")
    if cmp.environment:
        cmp.notes.append(f"environments differ ({cmp.environment}): cells are not comparable")
    if cmp.suite_changed:
        cmp.notes.append("the suite changed between the runs: cells with the same key are compared, the others listed as added/removed")
    return cmp
