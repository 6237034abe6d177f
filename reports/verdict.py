"""The first screen: the recommendation sentence and the traffic-light table.

A director reads only this part, so every rule that colours a cell is stated in ``LEGEND``
and every mark also reads in black and white (✓ ~ ✗). The recommendation is computed,
never written by hand: within the suite's accuracy budget, the technique with the best
speed-up whose speed-up is credible (95% interval above 1x, timings stable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .summary import Comparison, Report, fmt_bytes, fmt_pct, fmt_ratio, fmt_small, fmt_speed

GOOD, FAIR, POOR, NONE = "good", "fair", "poor", "none"
MARKS = {GOOD: "✓", FAIR: "~", POOR: "✗", NONE: "–"}
#: a size change smaller than this either way is "about the same"
SIZE_STEP = 1.10
#: accuracy: amber up to this many budgets, red beyond
ACCURACY_AMBER = 2.0
#: more comparisons than this on the first screen: one aggregated row per technique
MAX_FIRST_SCREEN_ROWS = 24


def legend(budget: float) -> list[tuple[str, str]]:
    """(column, rule) pairs, printed under the table so every colour is explained."""
    b = fmt_budget(budget)
    return [
        ("speed", "✓ the whole 95% interval of the speed ratio is above 1x; ✗ the whole interval is below 1x; "
                  "~ the interval includes 1x (no clear change) or the timings were unstable"),
        ("memory, size", f"✓ at least {SIZE_STEP:.1f}x smaller; ✗ at least {SIZE_STEP:.1f}x larger; ~ in between"),
        ("accuracy", f"✓ perplexity change within the {b} budget; ~ up to {ACCURACY_AMBER:g}x the budget; "
                     f"✗ beyond that (KL is shown, not coloured)"),
    ]


def fmt_budget(budget: float) -> str:
    return f"+{budget * 100:g}% perplexity"


@dataclass
class Light:
    level: str
    text: str

    @property
    def mark(self) -> str:
        return MARKS[self.level]


@dataclass
class VerdictRow:
    label: str
    context: str
    anchor: str  # id of the detail row this summary row links to
    status: str  # ok | failed | skipped | not comparable
    reason: str = ""
    speed: Light | None = None
    memory: Light | None = None
    size: Light | None = None
    accuracy: Light | None = None
    note: str = ""
    recommended: bool = False

    @property
    def lights(self) -> list[Light | None]:
        return [self.speed, self.memory, self.size, self.accuracy]


@dataclass
class Verdict:
    headline: str  # the recommendation sentence
    level: str  # GOOD: a recommendation; FAIR: nothing beats the baseline; POOR: no comparison possible
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # unreliable speed figures, failed cells
    rows: list[VerdictRow] = field(default_factory=list)
    recommended: str = ""
    aggregated: bool = False  # one row per technique over several workloads


# --- cell lights --------------------------------------------------------------------------


def speed_light(c: Comparison) -> Light:
    if c.speedup is None:
        return Light(NONE, "n/a")
    point, lo, hi = c.speedup
    text = fmt_speed(c.speedup)
    if c.unstable:
        return Light(FAIR, text + " (unstable timings)")
    if lo == lo and lo > 1:
        return Light(GOOD, text)
    if hi == hi and hi < 1:
        return Light(POOR, text)
    return Light(FAIR, text)


def size_light(ratio: float | None) -> Light:
    if not ratio:
        return Light(NONE, "n/a")
    text = "same" if abs(ratio - 1) < 0.005 else fmt_ratio(ratio, "smaller", "larger")
    if ratio >= SIZE_STEP:
        return Light(GOOD, text)
    if ratio <= 1 / SIZE_STEP:
        return Light(POOR, text)
    return Light(FAIR, text)


def accuracy_level(change: float | None, budget: float) -> str:
    if change is None:
        return NONE
    if change <= budget + 1e-12:
        return GOOD
    return FAIR if change <= ACCURACY_AMBER * budget else POOR


def accuracy_light(c: Comparison, budget: float) -> Light:
    level = accuracy_level(c.ppl_change, budget)
    if level == NONE and c.kl is None:
        return Light(NONE, "n/a")
    parts = []
    if c.ppl_change is not None:
        parts.append(f"{fmt_pct(c.ppl_change)} perplexity")
    if c.kl is not None:
        parts.append(f"KL {fmt_small(c.kl)}")
    return Light(level, ", ".join(parts))


# --- contexts -----------------------------------------------------------------------------


def _model_text(model: dict[str, Any]) -> str:
    short = {"depth": "d", "width": "w", "heads": "h", "ffn_ratio": "ffn"}
    parts = [str(model.get("size") or model.get("path") or model.get("source", "?"))]
    parts += [f"{short[k]}{model[k]:g}" if isinstance(model[k], (int, float)) else f"{short[k]}{model[k]}"
              for k in short if model.get(k) is not None]
    return " ".join(parts)


_CONTEXT_KEYS = {
    "backend": lambda r: str(r.get("backend", "")),
    "batch": lambda r: f"batch {r['workload'].get('batch')}",
    "seq": lambda r: f"seq {r['workload'].get('seq_len')}",
    "model": lambda r: _model_text(r.get("model", {})),
}


def varying_keys(rows: list[dict[str, Any]]) -> list[str]:
    """The context axes (backend, batch, seq, model) that take more than one value in this run."""
    keys = []
    for k, f in _CONTEXT_KEYS.items():
        try:
            if len({f(r) for r in rows}) > 1:
                keys.append(k)
        except (KeyError, TypeError):
            continue
    return keys


def short_context(row: dict[str, Any], keys: list[str]) -> str:
    """Only what tells this cell apart from the others: "batch 8", "cpu, seq 256"."""
    out = []
    for k in keys:
        try:
            out.append(_CONTEXT_KEYS[k](row))
        except (KeyError, TypeError):
            continue
    return ", ".join(out)


# --- the recommendation -------------------------------------------------------------------


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def _credible(c: Comparison) -> bool:
    return bool(c.speedup) and not c.unstable and c.speedup[1] == c.speedup[1] and c.speedup[1] > 1


def _in_budget(c: Comparison, budget: float) -> bool:
    return c.ppl_change is not None and c.ppl_change <= budget + 1e-12


def _speed_phrase(comps: list[Comparison], keys: list[str]) -> str:
    """The speed part of a sentence: one interval, a few named ones, or a geometric mean."""
    with_speed = [c for c in comps if c.speedup]
    if not with_speed:
        return "speed not measured"
    if len(with_speed) == 1:
        return fmt_speed(with_speed[0].speedup)
    if len(with_speed) <= 3:
        return " and ".join(f"{fmt_speed(c.speedup)} at {short_context(c.row, keys) or c.context}" for c in with_speed)
    g = _geomean([c.speedup[0] for c in with_speed])
    return f"{fmt_ratio(g)} (geometric mean over {len(with_speed)} workloads)"


def _first(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return vals[0] if vals else None


def _technique_phrase(label: str, comps: list[Comparison], keys: list[str], paren: bool = False) -> str:
    """ "int8: 2.1x faster [1.9, 2.3], 3.9x smaller in memory, +0.4% perplexity" (or "int8 (...)" with ``paren``)."""
    parts = [_speed_phrase(comps, keys)]
    size = _first([c.size_ratio for c in comps])
    if size:
        parts.append(fmt_ratio(size, "smaller", "larger") + " in memory")
    ppl = [c.ppl_change for c in comps if c.ppl_change is not None]
    if ppl:
        worst = max(ppl)
        parts.append(f"{fmt_pct(worst)} perplexity" + (" (worst workload)" if len(set(ppl)) > 1 else ""))
    return f"{label} (" + ", ".join(parts) + ")" if paren else f"{label}: " + ", ".join(parts)


def recommend(report: Report) -> Verdict:
    """The first screen's sentence, its notes and warnings, and the traffic-light rows."""
    keys = varying_keys(report.rows)
    if is_training(report):
        # optimizers and structure sweeps are judged by time to target and final quality, not by a speed ratio
        verdict = Verdict(headline=_training_headline(report), level=GOOD, warnings=_warnings(report))
        if verdict.headline.startswith("No recommendation"):
            verdict.level = POOR
        diverged = [r for r in report.rows if (r.get("training") or {}).get("diverged")]
        if diverged:
            verdict.warnings.append(f"{len(diverged)} of {len(report.rows)} cells diverged and stopped early: "
                                    + "; ".join(f"{r['technique']['label']}: {r['training']['diverged']}" for r in diverged[:4])
                                    + ("; ..." if len(diverged) > 4 else "") + ".")
        return verdict
    verdict = _recommend(report, keys)
    if report.skipped:
        reasons = "; ".join(sorted({r.get("reason", "") for r in report.skipped}))
        verdict.notes.append(f"{len(report.skipped)} of {len(report.rows)} cells skipped, so not measured here: {reasons}.")
    verdict.rows = verdict_rows(report, verdict.recommended, keys)
    verdict.aggregated = len(report.comparisons) > MAX_FIRST_SCREEN_ROWS
    return verdict


def baseline_line(report: Report) -> str:
    """What the ratios are relative to: the baseline's own figures (one workload) or where it ran."""
    ok = [r for r in report.baselines if r["status"] == "ok"]
    if len(ok) != 1:
        return ""  # several workloads: their figures are in the detail tables
    m = ok[0].get("metrics", {})
    parts = []
    if m.get("latency"):
        med = m["latency"]["median"]
        wl = ok[0]["workload"]
        call = "forward pass" if wl.get("kind", "forward") == "forward" else f"{wl.get('kind')} call"
        parts.append(f"{med * 1e3:.1f} ms per {call}" if med < 1 else f"{med:.2f} s per {call}")
        parts[-1] += f" (batch {wl.get('batch')} x {wl.get('seq_len')} tokens)"
    if m.get("model_bytes"):
        parts.append(f"{fmt_bytes(m['model_bytes']['value'])} of weights")
    if m.get("perplexity"):
        parts.append(f"held-out perplexity {m['perplexity']['value']:.3f}")
    return f"Baseline {report.baseline}: " + ", ".join(parts) + "." if parts else ""


def _recommend(report: Report, keys: list[str]) -> Verdict:
    budget = report.budget
    b = fmt_budget(budget)
    by_label: dict[str, list[Comparison]] = {}
    for c in report.comparisons:
        by_label.setdefault(c.label, []).append(c)

    warnings = _warnings(report)
    if not report.comparisons:
        if not report.baselines:
            why = f"the baseline '{report.baseline}' was not measured"
        elif all(r["status"] != "ok" for r in report.baselines):
            b0 = report.baselines[0]
            why = f"the baseline '{report.baseline}' {b0['status']}: {b0.get('reason', '')}"
        else:
            why = "no technique other than the baseline finished"
        return Verdict(headline=f"No recommendation: {why}.", level=POOR, warnings=warnings)

    comparable = {k: v for k, v in by_label.items() if all(not c.not_comparable for c in v)}
    if not comparable:
        reason = report.comparisons[0].not_comparable
        return Verdict(headline=f"No recommendation: nothing could be compared with the baseline ({reason}).",
                       level=POOR, warnings=warnings)

    in_budget = {k: v for k, v in comparable.items() if all(_in_budget(c, budget) for c in v)}
    credible = {k: v for k, v in in_budget.items() if all(_credible(c) for c in v)}

    def score(comps: list[Comparison]) -> float:
        pts = [c.speedup[0] for c in comps if c.speedup]
        return _geomean(pts) if pts else 0.0

    notes: list[str] = []
    mentioned: set[str] = set()  # techniques a note already describes
    if credible:
        best = max(credible, key=lambda k: score(credible[k]))
        failed = {s.label for s in report.summaries if not s.comparisons and any(r["status"] == "failed" for r in s.failed)}
        choice = "the best choice" if not failed else f"the best choice of the {len(comparable)} measured ({len(failed)} failed)"
        phrase = _technique_phrase(best, credible[best], keys)
        headline = f"Within a {b} budget, {best} is {choice}:{phrase[len(best) + 1:]}."
        level, recommended = GOOD, best
        # a faster one left out for unstable timings: the director should know
        for k, v in in_budget.items():
            if k not in credible and score(v) > score(credible[best]) and any(c.unstable for c in v):
                notes.append(f"{k} measured faster ({_speed_phrase(v, keys)}) but its timings were unstable, "
                             "so it is not recommended on this run; re-run on a quiet machine to confirm.")
    else:
        level, recommended = FAIR, ""
        headline = f"Within a {b} budget, no technique is credibly faster than the baseline ({report.baseline})."
        near = sorted(in_budget, key=lambda k: -score(in_budget[k]))
        if near:
            k = near[0]
            why = "its timings were unstable" if any(c.unstable for c in in_budget[k]) else "its 95% interval includes 1x (no clear change)"
            if score(in_budget[k]) <= 1:
                why = "it is not faster"
            notes.append(f"Closest within budget: {_technique_phrase(k, in_budget[k], keys, paren=True)}; not recommended because {why}.")
            mentioned.add(k)
    # what the budget cost: the fastest credible technique that is over it
    over = {k: v for k, v in comparable.items() if k not in in_budget and all(_credible(c) for c in v)}
    best_score = score(credible[recommended]) if recommended else 1.0
    faster_over = [k for k in over if score(over[k]) > best_score]
    if faster_over:
        k = max(faster_over, key=lambda k: score(over[k]))
        notes.append(f"Faster but over the budget: {_technique_phrase(k, over[k], keys, paren=True)}.")
    # the smallest model within the budget, when size is what the reader is after
    sized = {k: _first([c.size_ratio for c in v]) for k, v in in_budget.items()}
    sized = {k: s for k, s in sized.items() if s and s >= SIZE_STEP}
    if sized:
        k = max(sized, key=lambda k: sized[k])
        if k != recommended and k not in mentioned:
            notes.append(f"Smallest within budget: {_technique_phrase(k, in_budget[k], keys, paren=True)}.")
    return Verdict(headline=headline, level=level, notes=notes, warnings=warnings, recommended=recommended)


def is_training(report: Report) -> bool:
    return any(r.get("training") or (r.get("workload") or {}).get("kind") == "train" for r in report.rows)


def _training_headline(report: Report) -> str:
    ok = [r for r in report.rows if r["status"] == "ok" and r.get("training")]
    if not ok:
        return "No recommendation: no training cell finished."
    keys = varying_keys(ok)

    def name(r: dict[str, Any]) -> str:
        ctx = short_context(r, [k for k in keys if k != "backend"])
        return r["technique"]["label"] + (f" · {ctx}" if ctx else "")

    def val(r: dict[str, Any], m: str) -> float | None:
        v = r.get("metrics", {}).get(m)
        return None if v is None else v.get("value", v.get("median"))

    reached = [r for r in ok if val(r, "steps_to_target") is not None or val(r, "seconds_to_target") is not None]
    parts = []
    if reached:
        # steps first: they do not depend on the machine's load; seconds break a tie
        def key(r: dict[str, Any]) -> tuple[float, float]:
            steps, secs = val(r, "steps_to_target"), val(r, "seconds_to_target")
            return (math.inf if steps is None else steps, math.inf if secs is None else secs)

        reached.sort(key=key)
        r = reached[0]
        steps, secs = val(r, "steps_to_target"), val(r, "seconds_to_target")
        figures = ", ".join(([f"{steps:.0f} steps"] if steps is not None else []) + ([f"{secs:.1f} s"] if secs is not None else []))
        parts.append(f"first to the target loss: {name(r)} ({figures})")
        tied = [name(x) for x in reached[1:] if steps is not None and val(x, "steps_to_target") == steps]
        if tied:
            parts[-1] += f", in as many steps as {', '.join(tied)}"
        not_reached = len(ok) - len(reached)
        if not_reached:
            parts[-1] += f"; {not_reached} of {len(ok)} did not reach it"
    elif any("seconds_to_target" in r.get("metrics", {}) or "steps_to_target" in r.get("metrics", {}) for r in ok):
        parts.append("no cell reached the target loss")
    ppl = [r for r in ok if val(r, "perplexity") is not None]
    if ppl:
        r = min(ppl, key=lambda r: val(r, "perplexity"))
        parts.append(f"lowest held-out perplexity: {name(r)}, {val(r, 'perplexity'):.3f}")
    from .charts import _pareto, _structure_points, si

    pts = _structure_points(report)
    if len(pts) >= 2:
        front = _pareto([(p[1], p[2]) for p in pts], maximize_y=False)
        unit = pts[0][3]
        parts.append("lowest perplexity for its cost (Pareto front, " + unit + "): "
                     + ", ".join(f"{pts[i][0]} ({si(pts[i][1])}, perplexity {pts[i][2]:.3f})" for i in front))
    return ("Training: " + "; ".join(parts) + ".") if parts else "Training results below."


def _warnings(report: Report) -> list[str]:
    out = []
    n = len(report.rows)
    if report.failed:
        out.append(f"{len(report.failed)} of {n} cells failed; their rows are marked FAILED with the reason.")
    base_unstable = [r for r in report.baselines if r.get("unstable")]
    unstable = [c for c in report.comparisons if c.unstable]
    if base_unstable:
        out.append("Speed figures are unreliable: the baseline's timings were unstable "
                   f"({base_unstable[0]['unstable']}); re-run on a quiet machine before deciding on speed.")
    elif unstable:
        names = ", ".join(sorted({c.label for c in unstable}))
        out.append(f"Speed figures are unreliable for {len(unstable)} of {len(report.comparisons)} comparisons "
                   f"({names}): timings unstable, shown amber and never recommended.")
    return out


# --- the table ------------------------------------------------------------------------------


def verdict_rows(report: Report, recommended: str, keys: list[str] | None = None) -> list[VerdictRow]:
    """One row per technique and workload (or per technique, aggregated, when there are many)."""
    keys = varying_keys(report.rows) if keys is None else keys
    budget = report.budget
    aggregate = len(report.comparisons) > MAX_FIRST_SCREEN_ROWS
    rows: list[VerdictRow] = [
        VerdictRow(f"{r['technique']['label']} (baseline)", short_context(r, keys), f"cell-{r['cell']}", r["status"], r.get("reason", ""))
        for r in report.baselines if r["status"] != "ok"
    ]
    if not aggregate:
        for c in report.comparisons:
            ctx = short_context(c.row, keys)
            if c.not_comparable:
                rows.append(VerdictRow(c.label, ctx, f"cmp-{c.row['cell']}", "not comparable", c.not_comparable))
                continue
            rows.append(VerdictRow(
                c.label, ctx, f"cmp-{c.row['cell']}", "ok", speed=speed_light(c), memory=size_light(c.size_ratio),
                size=size_light(c.serialized_ratio), accuracy=accuracy_light(c, budget),
                note=c.unstable, recommended=c.label == recommended,
            ))
    else:
        by_label: dict[str, list[Comparison]] = {}
        for c in report.comparisons:
            by_label.setdefault(c.label, []).append(c)
        for label, comps in by_label.items():
            rows.append(_aggregate_row(label, comps, budget, recommended))
    for s in report.summaries:
        for r in s.failed:
            if aggregate and s.comparisons:
                continue  # counted in the technique's aggregated note
            rows.append(VerdictRow(s.label, short_context(r, keys), f"cell-{r['cell']}", r["status"], r.get("reason", "")))
    if aggregate:
        for row in rows:
            fails = [r for s in report.summaries if s.label == row.label for r in s.failed]
            if fails and row.status == "ok":
                row.note = (row.note + "; " if row.note else "") + f"{len(fails)} cells {fails[0]['status']}"
    order = {s.label: i for i, s in enumerate(report.summaries)}
    rows.sort(key=lambda r: order.get(r.label, -1))  # stable: the suite's order, workloads kept together
    return rows


def _aggregate_row(label: str, comps: list[Comparison], budget: float, recommended: str) -> VerdictRow:
    n = len(comps)
    comparable = [c for c in comps if not c.not_comparable]
    anchor = f"cmp-{comps[0].row['cell']}"
    if not comparable:
        return VerdictRow(label, f"over {n} workloads", anchor, "not comparable", comps[0].not_comparable)
    speeds = [c for c in comparable if c.speedup]
    speed = Light(NONE, "n/a")
    if speeds:
        g = _geomean([c.speedup[0] for c in speeds])
        faster = sum(_credible(c) for c in speeds)
        slower = sum(1 for c in speeds if c.speedup[2] == c.speedup[2] and c.speedup[2] < 1)
        unstable = sum(1 for c in speeds if c.unstable)
        text = f"{fmt_ratio(g)} geo-mean; credibly faster in {faster}/{len(speeds)}, slower in {slower}"
        if unstable:
            text += f", unstable in {unstable}"
        level = GOOD if faster == len(speeds) else POOR if slower == len(speeds) else FAIR
        speed = Light(level, text)

    def ratio_light(vals: list[float | None]) -> Light:
        vs = sorted(v for v in vals if v)
        if not vs:
            return Light(NONE, "n/a")
        light = size_light(vs[len(vs) // 2])
        if vs[0] != vs[-1] and abs(vs[-1] / vs[0] - 1) > 0.005:
            light.text += f" (median; {vs[0]:.2f}-{vs[-1]:.2f})"
        return light

    changes = [c.ppl_change for c in comparable if c.ppl_change is not None]
    kls = [c.kl for c in comparable if c.kl is not None]
    if changes or kls:
        worst = max(changes) if changes else None
        parts = ([f"{fmt_pct(worst)} perplexity (worst)"] if worst is not None else []) + ([f"KL ≤ {fmt_small(max(kls))}"] if kls else [])
        accuracy = Light(accuracy_level(worst, budget), ", ".join(parts))
    else:
        accuracy = Light(NONE, "n/a")
    return VerdictRow(label, f"over {n} workloads", anchor, "ok", speed=speed,
                      memory=ratio_light([c.size_ratio for c in comparable]),
                      size=ratio_light([c.serialized_ratio for c in comparable]), accuracy=accuracy,
                      note=f"{len(comparable) - len(speeds)} without timings" if len(speeds) < len(comparable) else "",
                      recommended=label == recommended)
