"""Table rows shared by the Markdown and HTML reports (plain strings, escaped by the renderer).

Cells are ``Cell`` strings carrying an optional numeric sort key (the HTML tables sort by
it); rows are ``Row`` lists carrying the anchor the first screen links to.
"""

from __future__ import annotations

from typing import Any

from .summary import Report, fmt_bytes, fmt_pct, fmt_ratio, fmt_small, fmt_speed, parallel_figures


class Cell(str):
    """A table cell's text; ``sort`` is the number the HTML table sorts it by (None: by its text)."""

    sort: float | None

    def __new__(cls, text: str, sort: float | None = None) -> Cell:
        obj = super().__new__(cls, text)
        obj.sort = sort if sort is None or sort == sort else None  # NaN sorts as text
        return obj


class Row(list):
    """A table row (list of cells) with the id the summary links to."""

    def __init__(self, cells: list[Any], anchor: str = "") -> None:
        super().__init__(c if isinstance(c, Cell) else Cell(str(c)) for c in cells)
        self.anchor = anchor


def _num(text: str, value: float | int | None) -> Cell:
    return Cell(text, None if value is None else float(value))

COMPARISON_HEADERS = ["technique", "backend", "batch", "seq", "speed vs baseline [95% CI]", "size (memory)",
                      "size (serialized)", "FLOPs/token", "perplexity", "KL (nats/token)", "top-1 agreement", "note"]
RESULT_HEADERS = ["technique", "backend", "batch", "seq", "status", "latency median [95% CI]", "p90", "n",
                  "model bytes", "serialized", "parameters", "FLOPs/token", "perplexity", "top-1 acc", "peak RSS", "overhead"]


def _ms(x: float) -> str:
    return f"{x * 1e3:.3f} ms" if x < 1 else f"{x:.3f} s"


def _metric(row: dict[str, Any], name: str) -> Any:
    m = row.get("metrics", {}).get(name)
    return None if m is None else m.get("value", m.get("median"))


def _flops(r: float | None) -> str:
    if not r:
        return "n/a"
    if abs(r - 1) < 0.005:
        return "same"
    return f"{r:.2f}x fewer" if r > 1 else f"{1 / r:.2f}x more"


def _int(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) else None


def comparison_rows(report: Report) -> list[Row]:
    out = []
    for c in report.comparisons:
        wl = c.row["workload"]
        note = c.not_comparable or (f"UNSTABLE: {c.unstable}" if c.unstable else "")
        out.append(Row([
            c.label, c.row["backend"], _num(str(wl["batch"]), _int(wl["batch"])), _num(str(wl["seq_len"]), _int(wl["seq_len"])),
            _num(fmt_speed(c.speedup), c.speedup[0] if c.speedup else None),
            _num(fmt_ratio(c.size_ratio, "smaller", "larger") if c.size_ratio else "n/a", c.size_ratio),
            _num(fmt_ratio(c.serialized_ratio, "smaller", "larger") if c.serialized_ratio else "n/a", c.serialized_ratio),
            _num(_flops(c.flops_ratio), c.flops_ratio),
            _num(fmt_pct(c.ppl_change), c.ppl_change), _num(fmt_small(c.kl), c.kl),
            _num("n/a" if c.agreement is None else f"{c.agreement * 100:.2f}%", c.agreement), note,
        ], anchor=f"cmp-{c.row['cell']}"))
    return out


def result_rows(report: Report) -> list[Row]:
    out = []
    for r in sorted(report.rows, key=lambda r: (r["backend"], r["workload"]["batch"], r["workload"]["seq_len"], r["technique"]["label"] != report.baseline, r["technique"]["label"])):
        wl = r["workload"]
        lat = r.get("metrics", {}).get("latency")
        ppl, top1 = _metric(r, "perplexity"), _metric(r, "top1_accuracy")
        flops, params = _metric(r, "flops_per_token"), _metric(r, "parameters")
        status = r["status"] + (" (unstable)" if r.get("unstable") else "")
        mb, sb, rss = _metric(r, "model_bytes"), _metric(r, "serialized_bytes"), _metric(r, "peak_rss")
        out.append(Row([
            r["technique"]["label"], r["backend"], _num(str(wl["batch"]), _int(wl["batch"])), _num(str(wl["seq_len"]), _int(wl["seq_len"])), status,
            _num(f"{_ms(lat['median'])} [{_ms(lat['ci95'][0])}, {_ms(lat['ci95'][1])}]" if lat else "", lat["median"] if lat else None),
            _num(_ms(lat["p90"]) if lat else "", lat["p90"] if lat else None), _num(str(lat["n"]) if lat else "", lat["n"] if lat else None),
            _num(fmt_bytes(mb) if mb else "", mb), _num(fmt_bytes(sb) if sb else "", sb),
            _num(f"{params:,}" if params else "", params), _num(f"{flops / 1e6:.2f} M" if flops else "", flops),
            _num(f"{ppl:.4f}" if ppl else "", ppl), _num(f"{top1 * 100:.2f}%" if top1 is not None else "", top1),
            _num(fmt_bytes(rss) if rss else "", rss),
            _num(f"{r['harness_overhead_s']:.3f} s" if "harness_overhead_s" in r else "", r.get("harness_overhead_s")),
        ], anchor=f"cell-{r['cell']}"))
    return out


def problem_rows(report: Report) -> list[Row]:
    return [Row([r["technique"]["label"], r["backend"], str(r["workload"]["batch"]), r["status"], r.get("reason", "")],
                anchor=f"problem-{r['cell']}")
            for r in report.failed + report.skipped]


TRAINING_HEADERS = ["technique", "workload", "status", "final held-out perplexity", "steps to target", "seconds to target",
                    "tokens/s", "parameters", "FLOPs/token"]


def drop_empty_columns(headers: list[str], rows: list[Row]) -> tuple[list[str], list[Row]]:
    """Leave out the columns no row has a value in (a workload column when nothing varies)."""
    keep = [i for i in range(len(headers)) if any(r[i] for r in rows)] if rows else list(range(len(headers)))
    return [headers[i] for i in keep], [Row([r[i] for i in keep], anchor=r.anchor) for r in rows]


def training_rows(report: Report) -> list[Row]:
    """One row per training cell: the figures a training suite is judged by ("not reached" is a result)."""
    from .verdict import short_context, varying_keys

    rows = [r for r in report.rows if r.get("training") or r.get("workload", {}).get("kind") == "train"]
    keys = [k for k in varying_keys(rows) if k != "backend"] if rows else []
    out = []
    for r in rows:
        m = r.get("metrics", {})
        ppl, steps, secs = _metric(r, "perplexity"), _metric(r, "steps_to_target"), _metric(r, "seconds_to_target")
        tps = _metric(r, "tokens_per_s") or _metric(r, "throughput")
        params = _metric(r, "params") or _metric(r, "parameters")
        flops = _metric(r, "flops_per_token")
        ok = r["status"] == "ok"
        not_reached = "not reached" if ok and ("steps_to_target" in m or "seconds_to_target" in m) else ""
        status = r["status"] + (f": {r.get('reason', '')}" if r.get("reason") else "")
        if (r.get("training") or {}).get("diverged"):
            status += f" (diverged: {r['training']['diverged']})"
            not_reached = "diverged"
        out.append(Row([
            r["technique"]["label"], short_context(r, keys), status,
            _num(f"{ppl:.4f}" if ppl else "", ppl),
            _num(f"{steps:.0f}" if steps is not None else not_reached, steps),
            _num(f"{secs:.1f} s" if secs is not None else not_reached, secs),
            _num(f"{tps:,.0f}" if tps else "", tps), _num(f"{params:,.0f}" if params else "", params),
            _num(f"{flops / 1e6:.2f} M" if flops else "", flops),
        ], anchor=f"train-{r['cell']}"))
    return out


PARALLEL_HEADERS = ["technique", "ranks", "speed-up over one process", "efficiency (1 = linear)", "timed",
                    "result against one process", "peak RSS per rank", "launch (torchrun)"]


def parallel_rows(report: Report) -> list[Row]:
    """One row per parallel cell: its speed-up over the same work in one process, and whether it computed the same thing."""
    out = []
    for f in parallel_figures(report.rows):
        out.append(Row([
            f.label, _num(str(f.ranks), f.ranks), _num(f"{f.speedup:.2f}x", f.speedup), _num(f"{f.efficiency:.2f}", f.efficiency),
            f.timed, f.agreement, _num(fmt_bytes(f.rank_peak_rss) if f.rank_peak_rss else "", f.rank_peak_rss),
            _num(f"{f.launch_s:.1f} s" if f.launch_s is not None else "", f.launch_s),
        ], anchor=f"par-{f.row['cell']}"))
    return out


def environment_rows(report: Report) -> list[list[str]]:
    env = report.meta.get("environment", {})
    git = env.get("git", {})
    pk = env.get("packages", {})
    return [
        ["CPU", f"{env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores available)"],
        ["GPU", ", ".join(env.get("gpu") or []) or "none"],
        ["Python / OS", f"{env.get('python', '?')} / {env.get('os', '?')}"],
        ["packages", ", ".join(f"{k} {v}" for k, v in pk.items() if v)],
        ["threads / OpenMP", f"{env.get('threads') or 'default'} / " + (", ".join(f"{k}={v}" for k, v in env.get("omp", {}).items()) or "defaults")],
        ["git", f"{git.get('commit', 'n/a')[:12]}{' (dirty)' if git.get('dirty') else ''}"],
        ["fingerprint", env.get("id", "?")],
    ]


def plugin_rows(report: Report) -> list[list[str]]:
    plugins = report.meta.get("environment", {}).get("plugins", {})
    return [[name, ver] for name, ver in sorted(plugins.items())]
