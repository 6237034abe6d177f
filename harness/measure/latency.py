"""Latency: warm-up until stable, repetitions until enough, distribution-free statistics.

The confidence interval of the median comes from order statistics (the binomial
distribution of how many samples fall below the median), so it needs no normality.
A cell whose samples are bimodal or long-tailed is flagged ``unstable``: on the 2-core VMs
this project runs on, a 45 ms forward pass sometimes takes ~780 ms (OpenMP busy-waiting
under host load), and such a cell must never be published as a clean figure.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class LatencyStats:
    median: float
    p90: float
    mean: float
    stdev: float
    min: float
    n: int
    ci95: tuple[float, float]
    warmup: int
    unstable: bool
    unstable_reason: str
    samples: list[float]
    unit: str = "s"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d


def median_ci(sorted_samples: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Order-statistic confidence interval for the median (exact binomial, no normality).

    With fewer than 6 samples no pair of order statistics reaches 95%; the full range is
    returned then, which is wider than 95% and honest about it.
    """
    from scipy.stats import binom

    xs = sorted_samples
    n = len(xs)
    if n == 0:
        return (math.nan, math.nan)
    if n < 6:
        return (xs[0], xs[-1])
    alpha = 1 - confidence
    # largest j with P(B <= j-1) <= alpha/2, B ~ Bin(n, 1/2); interval [x_(j), x_(n-j+1)]
    j = int(binom.ppf(alpha / 2, n, 0.5))
    while j > 0 and binom.cdf(j - 1, n, 0.5) > alpha / 2:
        j -= 1
    j = max(j, 1)
    return (xs[j - 1], xs[n - j])


def percentile(sorted_samples: list[float], q: float) -> float:
    xs = sorted_samples
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def instability(samples: list[float], ratio: float = 1.5) -> str:
    """Why these samples are not a clean figure, or '' when they are.

    Two signs: p90 far above the median (a long tail), or a separate cluster of samples
    at least twice the median (a bimodal slow mode) holding 5% or more of them.
    """
    xs = sorted(samples)
    if len(xs) < 5:
        return ""
    med = percentile(xs, 0.5)
    p90 = percentile(xs, 0.9)
    if med <= 0:
        return ""
    slow = sum(1 for x in xs if x >= 2 * med) / len(xs)
    reasons = []
    if p90 > ratio * med:
        reasons.append(f"p90 is {p90 / med:.2f}x the median")
    if slow >= 0.05:
        reasons.append(f"bimodal: {slow:.0%} of samples are over 2x the median")
    return "; ".join(reasons)


def summarize(samples: list[float], warmup: int = 0, unstable_ratio: float = 1.5) -> LatencyStats:
    xs = sorted(samples)
    reason = instability(xs, unstable_ratio)
    return LatencyStats(
        median=percentile(xs, 0.5), p90=percentile(xs, 0.9), mean=statistics.fmean(xs),
        stdev=statistics.stdev(xs) if len(xs) > 1 else 0.0, min=xs[0], n=len(xs), ci95=median_ci(xs),
        warmup=warmup, unstable=bool(reason), unstable_reason=reason, samples=list(samples),
    )


def speed_probe(reps: int = 60, warmup: int = 10) -> float:
    """Median seconds of a fixed 256x256 matmul on the current torch thread count (~12 ms in all).

    Measured before and after a cell's timing loop. A cell can only see spread within its
    own samples; a machine that stays in a slow mode for a whole cell (the 2-core VM's
    OpenMP busy-wait under host load makes everything ~10-30x slower for minutes) looks
    steady. Comparing this probe across the cells of a run exposes it. The probe after
    timing (a warm process) also tells the VM's two speed states apart, which compare
    needs (:data:`STATE_MARGIN`): 190-193 us in the steady one, 201-206 us in the
    slower one, where a 15-repetition probe varied 188-196 us within one state.
    """
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(256, 256, generator=g)
    b = torch.randn(256, 256, generator=g)
    for _ in range(warmup):  # the first matmul after a fork wakes the thread pool
        torch.mm(a, b)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


#: how far over a state's level a speed probe still counts as that state (4%: a 60-repetition probe
#: varied 188-196 us within one state); compare's window and settle_s's wait share it
STATE_MARGIN = 0.04


def in_state(probe: float, level: float, margin: float = STATE_MARGIN) -> bool:
    """Whether a speed probe lies in the state whose probes sit at ``level``: at most ``margin`` over it
    (faster is in: a cell settles on the fastest state it has seen, see :func:`settle`)."""
    return probe <= level * (1 + margin)


def settle(level: float, deadline: float, probe: float | None = None, *, margin: float = STATE_MARGIN,
           clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
           take_probe: Callable[[], float] | None = None, pause: float = 0.25,
           also: Callable[[], bool] | None = None) -> tuple[float, float, bool]:
    """Wait until the machine is back in the state whose speed probes sit at ``level``.

    The 2-core VM switches state every few seconds to minutes (probe 170 us, then 185, then 210,
    kernels slowing unalike), and a cell timed in another state than its other rounds cannot be
    compared (:func:`optbench.compare.usable_rounds`). Probes every ``pause`` seconds, from
    ``probe`` (taken already) on, until one is in the state (and ``also``, asked only then, says
    yes: a neighbour the probe cannot see, measure.extend_s) or ``clock`` passes ``deadline``.
    Returns the last probe, the seconds waited, and whether the state came back (``also`` is
    not asked again: it may time the cell); the caller times whatever state it ends in.
    """
    take_probe = take_probe or speed_probe
    start = clock()
    if probe is None:
        probe = take_probe()
    while not (back := in_state(probe, level, margin) and (also is None or also())) and clock() < deadline:
        sleep(pause)
        probe = take_probe()
    return probe, clock() - start, back


SLOW_MACHINE_FACTOR = 3.0  # the slow mode is 10-30x; a quiet machine's probe varies under 2x


def probe_of(row: dict[str, Any]) -> float | None:
    """The slower of a result row's two speed probes, or None if it has none."""
    probes = row.get("metrics", {}).get("latency", {}).get("speed_probe_s")
    return max(probes) if probes else None


def after_probe(row: dict[str, Any]) -> float | None:
    """A result row's speed probe after timing (the machine's state, see :func:`speed_probe`), or None."""
    probes = row.get("metrics", {}).get("latency", {}).get("speed_probe_s")
    return probes[-1] if probes else None


#: measure.extend_s: a round counts as timed in the machine's quiet state when the cell's median, the
#: baseline model's median in its alternation, and its speed probes all lie at most this far over
#: the fastest of the cell's rounds: the width of compare's state windows
#: (optbench.compare.PAIRED_MARGIN). The VM's slow state (1.4x) lies outside it, and so does a
#: neighbour busy on one of the 2 cores, which the one-core-sized probe does not see (113 us beside
#: it as without) but the models do: the baseline model at batch 1 read 9.6-15.8 ms beside it,
#: 5.2-6.0 ms without (2026-12-05, the 2-core VM)
QUIET_MARGIN = 0.30
#: measure.extend_s: a cell is timed again until this many of its rounds are quiet, the rounds compare
#: judges a cell on when most of its rounds lie in a state the other run lacks
#: (optbench.compare.STATE_ROUNDS)
QUIET_ROUNDS = 6


@dataclass(frozen=True)
class Short:
    """A cell with too few rounds in the quiet state: its fastest round's speed probe and median
    (the levels an extra round waits for), and how many of its rounds are quiet."""

    probe: float
    median: float
    quiet: int


def _quiet_round(r: dict[str, Any], probe: float, median: float, alternated: bool, base: float | None,
                 margin: float) -> bool:
    """Whether one round of a cell lies in its quiet state: not marked slow, its probe after timing
    and its median within ``margin`` of the cell's fastest (``probe``, ``median``), and, for a cell
    timed alternately, the alternation's probe and baseline median too (``base``: the fastest)."""

    def within(x: float | None, level: float | None) -> bool:
        return x is not None and level is not None and x <= level * (1 + margin)

    lat = r["metrics"]["latency"]
    if r.get("slow_machine") or not within(after_probe(r), probe) or not within(lat.get("median"), median):
        return False
    if not alternated:
        return True
    p = lat.get("paired") or {}
    return within(p.get("speed_probe_s"), probe) and within(p.get("base_median"), base)


def short_of_quiet(rows: list[dict[str, Any]], need: int = QUIET_ROUNDS, margin: float = QUIET_MARGIN) -> dict[str, Short]:
    """The cells of a run (its result rows, one per cell and round) with under ``need`` rounds timed in
    the quiet state (:data:`QUIET_MARGIN`). A cell that failed or was skipped, or took no probe, is
    not short: more rounds would not help it. A cell timed alternately with the baseline's model
    counts only its alternated rounds, whose probe and baseline median must lie in the state too."""
    by_cell: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_cell.setdefault(r["cell"], {})[int(r.get("round", 1))] = r  # the last row of a round wins
    short: dict[str, Short] = {}
    for key, rounds in by_cell.items():
        if any(r.get("status") != "ok" for r in rounds.values()):
            continue
        lats = [r["metrics"].get("latency") or {} for r in rounds.values()]
        probes = [p for r in rounds.values() if (p := after_probe(r))]
        medians = [lat["median"] for lat in lats if lat.get("median")]
        if not probes or not medians:
            continue
        alternated = [lat["paired"] for lat in lats if lat.get("paired")]
        probe, median = min(probes), min(medians)
        base = min((p["base_median"] for p in alternated if p.get("base_median")), default=None)
        n = sum(_quiet_round(r, probe, median, bool(alternated), base, margin) for r in rounds.values())
        if n < need:
            short[key] = Short(probe, median, n)
    return short


def quick_median(call: Callable[[], float], reps: int = 5) -> float:
    """The median of ``reps`` timed calls (``call`` returns its seconds): a cell's own latency, read
    in a moment, to wait for its quiet state (measure.extend_s) where the speed probe cannot see it."""
    return statistics.median(call() for _ in range(reps))


def parse_percent(text: str | float) -> float:
    """A suite's percentage ('5%', '+5%') as a fraction (0.05); a number is taken as a fraction already.

    One reader for every percentage a suite holds: precision, thresholds, accuracy_budget.
    """
    if isinstance(text, (int, float)):
        return float(text)
    return float(str(text).strip().lstrip("+").rstrip("%")) / 100


def parse_precision(p: str | float | None) -> float | None:
    return None if p is None else parse_percent(p)


def measure(
    time_call: Callable[[], float],
    *,
    warmup: str | int = "auto",
    min_reps: int = 10,
    min_time_s: float = 1.0,
    max_time_s: float = 30.0,
    precision: str | float | None = None,
    unstable_ratio: float = 1.5,
    clock: Callable[[], float] = time.perf_counter,
) -> LatencyStats:
    """Time ``time_call`` (which returns the seconds of one synchronised call).

    Warm-up ``auto`` runs at least 3 calls and stops once the last three agree within 10%
    of their median (at most 50 calls or 25% of ``max_time_s``). Then calls repeat until
    both ``min_reps`` and ``min_time_s`` are reached; with a ``precision`` target instead
    until the 95% CI half-width of the median is within that fraction of it. Always
    bounded by ``max_time_s`` (after at least ``min_reps`` calls).
    """
    start = clock()
    n_warm = 0
    if warmup == "auto":
        recent: list[float] = []
        while True:
            recent.append(time_call())
            n_warm += 1
            last = recent[-3:]
            if n_warm >= 3:
                m = statistics.median(last)
                if max(abs(x - m) for x in last) <= 0.1 * m or n_warm >= 50 or clock() - start > 0.25 * max_time_s:
                    break
    else:
        for _ in range(int(warmup)):
            time_call()
            n_warm += 1
    target = parse_precision(precision)
    samples: list[float] = []
    t0 = clock()
    while True:
        samples.append(time_call())
        n = len(samples)
        elapsed = clock() - t0
        if n < min_reps:
            continue
        if elapsed >= max_time_s:
            break
        if target is not None:
            if n >= 6 and n % 5 == 0:
                xs = sorted(samples)
                lo, hi = median_ci(xs)
                if (hi - lo) / 2 <= target * percentile(xs, 0.5):
                    break
        elif elapsed >= min_time_s:
            break
    return summarize(samples, n_warm, unstable_ratio)


#: alternation block of :func:`alternate`: short enough that both models of a pair of blocks see one
#: machine state (the 2-core VM holds a state for seconds to minutes), long enough for several calls
PAIRED_BLOCK_S = 0.05


def alternate(call_base: Callable[[], float], call_model: Callable[[], float], total_s: float, *,
              block_s: float = PAIRED_BLOCK_S, min_blocks: int = 4,
              clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Time a baseline and a model in alternating blocks of ``block_s`` for ``total_s`` in all
    (at least ``min_blocks`` blocks of each), after one warm-up block of each; both callables
    return the seconds of one synchronised call.

    Returns the model's median over the baseline's (``ratio``) and the baseline's median
    (``base_median``: the machine state both were timed in). Timed one after the other, even in
    separate processes seconds apart, the two drift apart with the machine; alternated they
    share it. On the 2-core VM in a noisy hour (int8 weight-only over fp32, batch 1, 30 rounds
    of 0.5 s each way, `benchmarks/paired_timing.py`), the ratio's round-to-round spread within
    one machine state was 1.8-2.6% alternated in 50 ms blocks, 12% timed one after the other.
    """
    def block(f: Callable[[], float], xs: list[float]) -> None:
        stop = clock() + block_s
        xs.append(f())
        while clock() < stop:
            xs.append(f())

    for f in (call_base, call_model):  # warm-up block: caches and allocator settle after the other model ran
        block(f, [])
    base: list[float] = []
    model: list[float] = []
    end = clock() + total_s
    blocks = 0
    while blocks < min_blocks or clock() < end:
        block(call_base, base)
        block(call_model, model)
        blocks += 1
    b, m = statistics.median(base), statistics.median(model)
    return {"ratio": m / b if b > 0 else None, "base_median": b, "median": m, "n": [len(base), len(model)],
            "blocks": blocks, "block_s": block_s}
