"""From result rows to what a reader needs: each technique against the baseline.

Speed ratios carry a 95% interval from a seeded bootstrap of the two cells' raw latency
samples (ratio of medians), so "1.13x faster" comes with how sure we are of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from optbench.measure.latency import SLOW_MACHINE_FACTOR, parse_percent, probe_of


def ratio_ci(base: list[float], other: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """median(base) / median(other) with a percentile-bootstrap 95% interval."""
    import numpy as np

    a, b = np.sort(np.asarray(base, dtype=float)), np.sort(np.asarray(other, dtype=float))
    point = float(np.median(a) / np.median(b))
    if len(a) < 3 or len(b) < 3:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)

    def boot_medians(x: np.ndarray) -> np.ndarray:
        # x is sorted, so a resample's median is x at the middle order statistics of its drawn
        # indices: sorting small int rows is ~3x faster than np.median over resampled values
        n = len(x)
        idx = rng.integers(0, n, (n_boot, n))
        idx.sort(axis=1)
        return (x[idx[:, (n - 1) // 2]] + x[idx[:, n // 2]]) / 2

    r = boot_medians(a) / boot_medians(b)
    return point, float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))


def _val(row: dict[str, Any], metric: str) -> float | None:
    m = row.get("metrics", {}).get(metric)
    if m is None:
        return None
    return m.get("value", m.get("median"))


@dataclass
class Comparison:
    row: dict[str, Any]
    baseline: dict[str, Any] | None
    context: str
    speedup: tuple[float, float, float] | None = None
    size_ratio: float | None = None  # baseline bytes / these bytes (>1 = smaller)
    serialized_ratio: float | None = None
    flops_ratio: float | None = None
    ppl_change: float | None = None  # relative, +0.004 = +0.4%
    kl: float | None = None
    agreement: float | None = None
    unstable: str = ""
    not_comparable: str = ""

    @property
    def label(self) -> str:
        return self.row["technique"]["label"]


@dataclass
class TechniqueSummary:
    label: str
    comparisons: list[Comparison] = field(default_factory=list)
    sentence: str = ""
    failed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ParallelFigure:
    """One parallel cell's scaling against the same work in one process (the figures the parallel
    plugins measure; efficiency = speed-up / ranks, 1 = linear)."""

    row: dict[str, Any]
    ranks: int
    speedup: float
    timed: str        # what the speed-up is a ratio of
    agreement: str    # how close the result is to one process's (a mismatch fails the cell)
    unit: str = "rank"  # what ``ranks`` counts: torchrun ranks, or a pool's "worker"s
    rank_peak_rss: float | None = None
    launch_s: float | None = None

    @property
    def label(self) -> str:
        return self.row["technique"]["label"]

    @property
    def efficiency(self) -> float:
        return self.speedup / self.ranks


def parallel_figures(rows: list[dict[str, Any]]) -> list[ParallelFigure]:
    """The scaling figures of every finished parallel cell (data, pipeline, tensor and task
    parallelism), in the rows' order; [] when the run has none."""
    out = []
    for r in rows:
        if r.get("status") != "ok":
            continue
        m = r.get("metrics", {})
        unit = "rank"
        parallel, single = _val(r, "train_throughput"), _val(r, "single_process_train_throughput")
        if parallel and single:
            ranks = int(m["train_throughput"].get("world_size") or 1)
            speedup = parallel / single
            timed = "training tokens/s"
            agreement = _diff_text(m.get("loss_max_abs_diff"), "loss")
        elif "parallel_speedup" in m:
            ranks = int(m["parallel_speedup"].get("world_size") or 1)
            speedup = _val(r, "parallel_speedup")
            timed = "forward latency"
            agreement = _diff_text(m.get("output_max_abs_diff"), "output")
        elif "makespan_ratio" in m:
            ranks, unit = int(m["makespan_ratio"].get("workers") or 1), "worker"
            speedup = _val(r, "makespan_ratio")
            tasks = (m.get("makespan_serial") or {}).get("tasks")
            timed = f"makespan of {tasks} tasks" if tasks else "makespan"
            diff = _val(r, "task_result_max_diff")
            agreement = "same result per task" if diff == 0 else f"results within {diff:.2g}" if diff is not None else ""
        else:
            continue
        if not speedup or ranks < 1:
            continue
        out.append(ParallelFigure(r, ranks, float(speedup), timed, agreement, unit, _val(r, "rank_peak_rss"), _val(r, "launch_seconds")))
    return out


def _diff_text(metric: dict[str, Any] | None, what: str) -> str:
    """How far a distributed result is from one process's, against the tolerance it was checked at."""
    if not metric or metric.get("value") is None:
        return ""
    if metric["value"] == 0:
        return f"identical {what}"
    if metric.get("relative") is not None:  # the tolerance applies to the difference over the largest |value|
        text = f"{what} off by {metric['relative']:.2g} of its largest value"
    else:
        text = f"{what} off by {metric['value']:.2g} {metric.get('unit') or ''}".rstrip()
    tol = metric.get("tolerance")
    return text + (f" (tolerance {tol:g})" if tol is not None else "")


def context_of(row: dict[str, Any]) -> str:
    wl = row["workload"]
    model = row["model"]
    mdesc = model.get("source", "?") + ":" + ",".join(f"{k}={v}" for k, v in model.items() if k != "source" and v is not None)
    return f"{mdesc} | {row['backend']} | batch {wl['batch']} | seq {wl['seq_len']}"


def compare(row: dict[str, Any], base: dict[str, Any] | None) -> Comparison:
    c = Comparison(row=row, baseline=base, context=context_of(row))
    if row.get("unstable"):
        c.unstable = row["unstable"]
    if base is None or base.get("status") != "ok":
        c.not_comparable = "baseline cell missing" if base is None else f"baseline cell {base['status']}: {base.get('reason', '')}"
        return c
    if base.get("unstable") and not c.unstable:
        c.unstable = "baseline: " + base["unstable"]
    lat, blat = row["metrics"].get("latency"), base["metrics"].get("latency")
    if lat and blat:
        c.speedup = ratio_ci(blat["samples"], lat["samples"])
    for attr, metric in (("size_ratio", "model_bytes"), ("serialized_ratio", "serialized_bytes"), ("flops_ratio", "flops_per_token")):
        v, bv = _val(row, metric), _val(base, metric)
        if v and bv:
            setattr(c, attr, bv / v)
    p, bp = _val(row, "perplexity"), _val(base, "perplexity")
    if p is not None and bp:
        c.ppl_change = p / bp - 1
    c.kl = _val(row, "kl_divergence")
    c.agreement = _val(row, "top1_agreement")
    return c


def fmt_ratio(r: float, word_up: str = "faster", word_down: str = "slower") -> str:
    return f"{r:.2f}x {word_up}" if r >= 1 else f"{1 / r:.2f}x {word_down}"


def fmt_speed(s: tuple[float, float, float] | None) -> str:
    if s is None:
        return "n/a"
    point, lo, hi = s
    text = fmt_ratio(point)
    if lo == lo and hi == hi:  # not NaN; the interval is written in the same direction as the point
        a, b = (lo, hi) if point >= 1 else (1 / hi, 1 / lo)
        text += f" [{a:.2f}, {b:.2f}]"
        if lo <= 1 <= hi:
            text += " (within noise)"  # the interval includes "no change"
    return text


def fmt_small(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4f}" if x == 0 or abs(x) >= 1e-3 else f"{x:.2e}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def fmt_pct(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x * 100:+.2f}%" if x == 0 or abs(x) >= 1e-4 else f"{x * 100:+.4f}%"


def _sentence(label: str, comps: list[Comparison]) -> str:
    ok = [c for c in comps if not c.not_comparable]
    if not ok:
        return f"{label}: not comparable ({comps[0].not_comparable})" if comps else f"{label}: no results"
    speeds = [f"{fmt_speed(c.speedup)} at batch {c.row['workload']['batch']}" for c in ok if c.speedup]
    parts = []
    if speeds:
        parts.append(", ".join(speeds))
    sizes = [c.size_ratio for c in ok if c.size_ratio]
    if sizes:
        parts.append(fmt_ratio(sizes[0], "smaller", "larger") + " in memory")
    ppl = [c.ppl_change for c in ok if c.ppl_change is not None]
    if ppl:
        parts.append(f"{fmt_pct(ppl[0])} perplexity")
    kl = [c.kl for c in ok if c.kl is not None]
    if kl:
        parts.append(f"KL {fmt_small(kl[0])} nats/token")
    unstable = [c for c in ok if c.unstable]
    text = f"{label}: " + "; ".join(parts)
    if unstable:
        text += " (UNSTABLE timings: " + "; ".join(f"batch {c.row['workload']['batch']}: {c.unstable}" for c in unstable) + ")"
    return text


def parse_budget(text: str | float | None, default: float = 0.01) -> float:
    """The suite's ``accuracy_budget`` ("1%", "+0.5%") as a fraction (0.01); the default when unset or unreadable."""
    if text is None or text == "":
        return default
    try:
        return parse_percent(text)
    except ValueError:
        return default


@dataclass
class Report:
    meta: dict[str, Any]
    rows: list[dict[str, Any]]
    baseline: str
    summaries: list[TechniqueSummary]
    comparisons: list[Comparison]
    baselines: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    run_dir: str
    #: largest relative perplexity increase the suite accepts (accuracy_budget "1%" -> 0.01)
    budget: float = 0.01
    #: nightly history series (cell, metric, unit, points, steps), from the history store; [] without one
    trends: list[dict[str, Any]] = field(default_factory=list)
    _charts: list[Any] | None = field(default=None, repr=False)

    @property
    def suite_name(self) -> str:
        return self.meta.get("suite", "")

    def charts(self) -> list[Any]:
        """The charts this report's data supports, drawn once and shared by every renderer."""
        if self._charts is None:
            from .charts import build_charts

            self._charts = build_charts(self)
        return self._charts

    def to_json(self) -> str:
        return json.dumps({"meta": self.meta, "rows": self.rows}, default=str)


def mark_slow_machine(rows: list[dict[str, Any]], factor: float = SLOW_MACHINE_FACTOR) -> None:
    """Flag cells measured while the machine ran slow, by their speed probe.

    Each latency measurement times a fixed matmul before and after its loop; a cell whose
    probe took more than ``factor`` times the run's fastest probe was measured on a slowed
    machine, however steady its own samples look.
    """
    probes = {id(r): probe_of(r) for r in rows if r.get("status") == "ok" and probe_of(r)}
    if len(probes) < 2:
        return
    fastest = min(probes.values())
    for r in rows:
        p = probes.get(id(r))
        if p is not None and p > factor * fastest:
            reason = f"machine slow during this cell: speed probe {p / fastest:.1f}x the run's fastest"
            r["unstable"] = f"{r['unstable']}; {reason}" if r.get("unstable") else reason


def build_report(meta: dict[str, Any], rows: list[dict[str, Any]], run_dir: str,
                 trends: list[dict[str, Any]] | None = None) -> Report:
    """Compare every row with its context's baseline cell; ``trends`` are history series to chart."""
    baseline = meta.get("baseline", "none")
    mark_slow_machine(rows)
    by_ctx: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["technique"]["label"] == baseline:
            by_ctx[context_of(r)] = r
    comparisons: list[Comparison] = []
    summaries: dict[str, TechniqueSummary] = {}
    for r in rows:
        label = r["technique"]["label"]
        if label == baseline:
            continue
        s = summaries.setdefault(label, TechniqueSummary(label))
        if r["status"] != "ok":
            s.failed.append(r)
            continue
        c = compare(r, by_ctx.get(context_of(r)))
        comparisons.append(c)
        s.comparisons.append(c)
    for s in summaries.values():
        s.sentence = _sentence(s.label, s.comparisons)
        if s.failed and not s.comparisons:
            s.sentence = f"{s.label}: {s.failed[0]['status']} ({s.failed[0]['reason']})"
    baselines = [r for r in rows if r["technique"]["label"] == baseline]
    return Report(
        meta=meta, rows=rows, baseline=baseline, summaries=list(summaries.values()), comparisons=comparisons,
        baselines=baselines, failed=[r for r in rows if r["status"] == "failed"],
        skipped=[r for r in rows if r["status"] == "skipped"], run_dir=run_dir,
        budget=parse_budget(meta.get("accuracy_budget")), trends=[t for t in (trends or []) if t.get("points")],
    )
