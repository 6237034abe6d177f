"""What CI reads: a Markdown summary, JUnit XML, pytest-benchmark JSON (and a terminal summary).

No torch, no plugins: these run in ``optbench compare`` and ``optbench export``.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from typing import Any
from xml.etree import ElementTree as ET

from .compare import IMPROVEMENT, NOT_COMPARABLE, REGRESSION, Comparison, MetricResult, cell_name

_ICON = {REGRESSION: "🔴", IMPROVEMENT: "🟢", NOT_COMPARABLE: "⚪", "unchanged": ""}


def fmt_value(v: float | None, unit: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if unit == "s":
        return f"{v * 1e3:.3f} ms" if v < 1 else f"{v:.3f} s"
    if unit == "B":
        for div, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(v) >= div:
                return f"{v / div:.2f} {name}"
        return f"{v:.0f} B"
    if unit == "fraction":
        return f"{v:.4f}"
    return f"{v:.5g}" + (f" {unit}" if unit else "")


def fmt_change(r: MetricResult) -> str:
    v = r.verdict
    if v.ratio is None or not math.isfinite(v.ratio):
        return "-"
    s = f"{(v.ratio - 1) * 100:+.2f}%"
    if v.ci95:
        s += f" [{(v.ci95[0] - 1) * 100:+.1f}%, {(v.ci95[1] - 1) * 100:+.1f}%]"
    return s


def _head(cmp: Comparison) -> str:
    b, c = cmp.baseline, cmp.current
    return (f"{c.get('suite')}: run {c.get('run_id')} (commit {(c.get('git') or '?')[:10]}) against "
            f"{b.get('run_id')} (commit {(b.get('git') or '?')[:10]})")


def _verdict_line(cmp: Comparison) -> str:
    n_reg = len(cmp.regressions) + len(cmp.failing_cells)
    judged = [r for r in cmp.results if r.verdict.status != NOT_COMPARABLE]
    parts = [f"{n_reg} regression{'s' * (n_reg != 1)}" if n_reg else "no regression",
             f"{len(cmp.improvements)} improvement{'s' * (len(cmp.improvements) != 1)}",
             f"{len(judged)} cell metrics compared"]
    if cmp.not_comparable:
        parts.append(f"{len(cmp.not_comparable)} not comparable")
    if cmp.unconfirmed:
        parts.append(f"{len(cmp.unconfirmed)} unconfirmed")
    if cmp.added or cmp.removed:
        parts.append(f"{len(cmp.added)} cells added, {len(cmp.removed)} removed")
    return ", ".join(parts)


def _notable(cmp: Comparison) -> list[MetricResult]:
    return [r for r in cmp.results if r.verdict.status in (REGRESSION, IMPROVEMENT, NOT_COMPARABLE) or r.unconfirmed]


def _status(r: MetricResult) -> str:
    return f"unconfirmed {r.unconfirmed}" if r.unconfirmed else r.verdict.status


def _family(cmp: Comparison) -> str:
    n = max(1, cmp.timed_tests)
    return f"a {cmp.alpha * n:.0%} false-alarm rate over {n} timed test{'s' * (n != 1)}"


def _why(r: MetricResult, cmp: Comparison) -> str:
    """The verdict's reason; for an unconfirmed change, why it is not flagged."""
    if r.unconfirmed:
        return (f"estimated past the threshold, but p={r.verdict.p:.2g} is not under the {cmp.alpha:.2g} a flag needs "
                f"here, {_family(cmp)}: more rounds would settle it")
    return r.verdict.reason


def text_summary(cmp: Comparison) -> str:
    """What ``optbench compare`` prints: the verdict, then each regression, improvement and note."""
    lines = [_head(cmp), "  " + _verdict_line(cmp)]
    for c in cmp.cells:
        lines.append(f"  {c.status.upper():15} {c.name}: {c.reason}")
    for r in _notable(cmp):
        why = _why(r, cmp)
        lines.append(f"  {_status(r).upper():15} {r.name} {r.metric}: {fmt_value(r.baseline, r.unit)} -> "
                     f"{fmt_value(r.current, r.unit)} {fmt_change(r)}, threshold {r.threshold:.0%}{f' ({why})' if why else ''}")
    for name in cmp.added:
        lines.append(f"  ADDED           {name}")
    for name in cmp.removed:
        lines.append(f"  REMOVED         {name}")
    for t in cmp.trends:
        lines.append(f"  TREND           {t['cell']} {t['metric']}: step x{t['ratio']:.3f} ({t['direction']}) at run {t['run_id']}, "
                     f"{t['runs_ago']} run{'s' * (t['runs_ago'] != 1)} ago")
    for n in cmp.notes:
        lines.append(f"  note: {n}")
    return "\n".join(lines)


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def markdown(cmp: Comparison) -> str:
    """A summary fit for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
    icon = "🔴" if cmp.regressed else "🟢"
    out = [f"## {icon} optbench compare: {_md_escape(cmp.current.get('suite') or '?')}", "",
           f"**{_verdict_line(cmp)}**", "",
           f"Current `{cmp.current.get('run_id')}` (commit `{(cmp.current.get('git') or '?')[:10]}`) against baseline "
           f"`{cmp.baseline.get('run_id')}` (commit `{(cmp.baseline.get('git') or '?')[:10]}`).", ""]
    if cmp.notes:
        out += [f"> {_md_escape(n)}" for n in cmp.notes] + [""]
    if cmp.cells:
        out += ["| cell | status | reason |", "|---|---|---|"]
        out += [f"| {_md_escape(c.name)} | {_ICON.get(c.status, '')} {c.status} | {_md_escape(c.reason)} |" for c in cmp.cells]
        out.append("")
    notable = _notable(cmp)
    if notable:
        out += ["| cell | metric | baseline | current | change [95% CI] | threshold | verdict |", "|---|---|---:|---:|---|---:|---|"]
        for r in notable:
            why = _why(r, cmp)
            why = f" ({_md_escape(why)})" if why else ""
            icon = "🟡" if r.unconfirmed else _ICON[r.verdict.status]
            out.append(f"| {_md_escape(r.name)} | {r.metric} | {fmt_value(r.baseline, r.unit)} | {fmt_value(r.current, r.unit)} | "
                       f"{fmt_change(r)} | {r.threshold:.0%} | {icon} {_status(r)}{why} |")
        out.append("")
    if cmp.trends:
        out += ["**Steps in the history** (change-point detection over the recent runs):", ""]
        out += [f"- {_md_escape(t['cell'])} {t['metric']}: x{t['ratio']:.3f} ({t['direction']}) at run `{t['run_id']}`, "
                f"{t['runs_ago']} run{'s' * (t['runs_ago'] != 1)} ago" for t in cmp.trends]
        out.append("")
    if cmp.added or cmp.removed:
        out += [f"Cells added: {', '.join(cmp.added) or 'none'}; removed: {', '.join(cmp.removed) or 'none'}.", ""]
    rest = [r for r in cmp.results if r not in notable]
    if rest:
        out += ["<details><summary>All compared metrics</summary>", "",
                "| cell | metric | baseline | current | change [95% CI] | threshold |", "|---|---|---:|---:|---|---:|"]
        out += [f"| {_md_escape(r.name)} | {r.metric} | {fmt_value(r.baseline, r.unit)} | {fmt_value(r.current, r.unit)} | "
                f"{fmt_change(r)} | {r.threshold:.0%} |" for r in rest]
        out += ["", "</details>", ""]
    out.append(f"A regression is flagged only when it is statistically significant (one-sided p < {cmp.alpha:.2g}, "
               f"{_family(cmp)}) and its interval "
               "reaches the metric's threshold; cells measured while the machine was slow or unstable are not comparable. "
               "An unconfirmed change is estimated past the threshold but not significant at that level: "
               "it does not fail the compare; more rounds would settle it.")
    return "\n".join(out) + "\n"


def junit(cmp: Comparison) -> str:
    """JUnit XML: one test case per compared cell and metric (and per cell judged as a whole); regressions fail."""
    suite_name = f"optbench.{cmp.current.get('suite') or 'suite'}"
    ts = ET.Element("testsuite", name=suite_name, timestamp=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    props = ET.SubElement(ts, "properties")
    for k, v in (("baseline", cmp.baseline.get("run_id")), ("current", cmp.current.get("run_id")),
                 ("baseline_commit", cmp.baseline.get("git")), ("current_commit", cmp.current.get("git"))):
        ET.SubElement(props, "property", name=k, value=str(v or ""))
    failures = skipped = tests = 0
    for c in cmp.cells:
        tests += 1
        tc = ET.SubElement(ts, "testcase", classname=suite_name, name=f"{c.name} [status]", time="0")
        if c.status == REGRESSION:
            failures += 1
            ET.SubElement(tc, "failure", message=c.reason, type="regression").text = c.reason
        elif c.status not in (IMPROVEMENT,):
            skipped += 1
            ET.SubElement(tc, "skipped", message=f"{c.status}: {c.reason}")
    for r in cmp.results:
        tests += 1
        tc = ET.SubElement(ts, "testcase", classname=f"{suite_name}.{r.metric}", name=f"{r.name} [{r.metric}]", time="0")
        detail = (f"{r.metric}: {fmt_value(r.baseline, r.unit)} -> {fmt_value(r.current, r.unit)} {fmt_change(r)}, "
                  f"threshold {r.threshold:.0%}; {r.verdict.method}" + (f"; {r.verdict.reason}" if r.verdict.reason else ""))
        if r.verdict.status == REGRESSION:
            failures += 1
            ET.SubElement(tc, "failure", message=f"regression: {detail}", type="regression").text = detail
        elif r.verdict.status == NOT_COMPARABLE:
            skipped += 1
            ET.SubElement(tc, "skipped", message=f"not comparable: {r.verdict.reason}")
        else:
            ET.SubElement(tc, "system-out").text = f"{r.verdict.status}: {detail}"
    ts.set("tests", str(tests))
    ts.set("failures", str(failures))
    ts.set("errors", "0")
    ts.set("skipped", str(skipped))
    root = ET.Element("testsuites")
    root.append(ts)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- pytest-benchmark's JSON layout (pytest_benchmark.stats.Stats + Metadata.as_dict) ---------------


def _quartiles(xs: list[float]) -> tuple[float, float]:
    """pytest-benchmark's q1/q3 (its methods 2 and 3), so the numbers match what it would compute."""
    n = len(xs)
    if n == 1:
        return xs[0], xs[0]
    if n % 2:
        k, q = n // 4, n % 4
        if q == 1:
            return 0.25 * xs[k - 1] + 0.75 * xs[k], 0.75 * xs[3 * k] + 0.25 * xs[3 * k + 1]
        return 0.75 * xs[k] + 0.25 * xs[k + 1], 0.25 * xs[3 * k + 1] + 0.75 * xs[3 * k + 2]
    return statistics.median(xs[: n // 2]), statistics.median(xs[n // 2:])


def benchmark_stats(samples: list[float]) -> dict[str, Any]:
    """The fields of pytest_benchmark.stats.Stats for one list of timings (seconds)."""
    import bisect

    xs = sorted(samples)
    n = len(xs)
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs) if n > 1 else 0.0
    q1, q3 = _quartiles(xs)
    iqr = q3 - q1
    lo_fence, hi_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_out = sum(1 for x in xs if x < lo_fence or x > hi_fence)
    sd_out = sum(1 for x in xs if x < mean - sd or x > mean + sd)
    total = sum(xs)
    return {
        "min": xs[0], "max": xs[-1], "mean": mean, "stddev": sd, "rounds": n, "median": statistics.median(xs),
        "iqr": iqr, "q1": q1, "q3": q3, "iqr_outliers": iqr_out, "stddev_outliers": sd_out, "outliers": f"{sd_out};{iqr_out}",
        "ld15iqr": xs[0] if n == 1 else xs[bisect.bisect_left(xs, lo_fence)],
        "hd15iqr": xs[0] if n == 1 else xs[bisect.bisect_right(xs, hi_fence) - 1],
        "ops": n / total if total else 0, "total": total, "data": list(samples), "iterations": 1,
    }


def pytest_benchmark(meta: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A run as pytest-benchmark's ``--benchmark-json`` file: one benchmark per ok cell's timed metric.

    ``pytest-benchmark compare FILE`` and github-action-benchmark's ``pytest`` tool read it.
    Each benchmark's ``extra_info`` carries the cell's other metrics (bytes, perplexity...).
    """
    env = meta.get("environment", {})
    git = env.get("git", {})
    benchmarks = []
    for row in sorted(rows, key=cell_name):
        if row.get("status") != "ok":
            continue
        metrics = row.get("metrics", {})
        extra = {k: v.get("value") for k, v in metrics.items() if isinstance(v, dict) and "value" in v}
        extra.update(cell=row["cell"], technique=row.get("technique", {}).get("label"), unstable=row.get("unstable", ""))
        for metric, m in metrics.items():
            if not (isinstance(m, dict) and m.get("samples")):
                continue
            name = f"{metric}[{cell_name(row)}]"
            params = {"technique": row.get("technique", {}).get("label"), "backend": row.get("backend"),
                      **{k: v for k, v in (row.get("workload") or {}).items() if isinstance(v, (str, int, float))}}
            benchmarks.append({
                "group": f"{meta.get('suite')}: {metric}", "name": name, "fullname": f"{meta.get('suite')}::{name}",
                "params": params, "param": cell_name(row), "extra_info": extra,
                "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": len(m["samples"]), "max_time": None,
                            "min_time": None, "warmup": m.get("warmup", 0)},
                "stats": benchmark_stats(m["samples"]),
            })
    return {
        "machine_info": {"node": env.get("hostname", ""), "processor": env.get("cpu", ""), "machine": env.get("machine", ""),
                         "python_compiler": "", "python_implementation": "CPython", "python_implementation_version": env.get("python", ""),
                         "python_version": env.get("python", ""), "python_build": [], "release": env.get("os", ""),
                         "system": (env.get("os") or "").split(" ")[0], "cpu": {"brand_raw": env.get("cpu", ""), "count": env.get("cpu_count")},
                         "optbench_environment_id": env.get("id")},
        "commit_info": {"id": git.get("commit", "unknown"), "time": None, "author_time": None, "dirty": bool(git.get("dirty")),
                        "project": "optbench", "branch": "(unknown)"},
        "benchmarks": benchmarks,
        "datetime": meta.get("started") or dt.datetime.now(dt.timezone.utc).isoformat(),
        "version": "5.1.0",
    }
