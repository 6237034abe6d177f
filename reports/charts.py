"""Charts drawn by matplotlib (Agg canvas, SVG output), only those the data supports.

Each chart is an SVG with real ``<text>`` (``svg.fonttype: none``: small, searchable,
escaped by matplotlib's XML writer). The HTML report inlines them, so the single file works
offline and prints; the Markdown report links the same SVGs written under ``charts/``.
Every chart has a title, axis units and a one-line caption saying what to read from it.
"""

from __future__ import annotations

import html
import io
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .summary import Comparison, Report, parallel_figures
from .verdict import FAIR, GOOD, NONE, POOR, accuracy_level, short_context, speed_light, varying_keys

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLORS = {GOOD: "#1a7f37", FAIR: "#bf8700", POOR: "#cf222e", NONE: "#6e7781"}
FRONT = "#0550ae"
#: more comparisons than this: one point per technique (geometric mean over workloads)
MAX_POINTS = 30
#: at most this many nightly-history charts (series with a step come first)
MAX_TRENDS = 12
RC = {
    "svg.fonttype": "none",  # text stays text: small files, selectable, escaped by the SVG writer
    "svg.hashsalt": "optbench",  # deterministic ids
    "text.parse_math": False,  # a "$" in a technique label is a dollar sign, not TeX
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#d0d7de",
    "grid.linewidth": 0.5,
    "legend.fontsize": 8,
    "legend.frameon": False,
}


@dataclass
class Chart:
    name: str  # file stem under charts/, unique in the report
    title: str
    caption: str  # one line: what to read from it
    svg: str  # a standalone SVG document

    def inline(self) -> str:
        """The SVG as an HTML fragment: no XML prolog or metadata, ids prefixed so charts never collide."""
        prefix = f"c-{self.name}-"
        s = self.svg[self.svg.index("<svg"):]
        s = re.sub(r"<metadata>.*?</metadata>\s*", "", s, flags=re.S)

        def fix_tag(m: re.Match[str]) -> str:
            tag = m.group(0)
            tag = tag.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "").replace(' xmlns="http://www.w3.org/2000/svg"', "")
            tag = tag.replace("xlink:href=", "href=")
            tag = re.sub(r'\bid="([^"]+)"', lambda i: f'id="{prefix}{i.group(1)}"', tag)
            tag = re.sub(r"url\(#([^)]+)\)", lambda u: f"url(#{prefix}{u.group(1)})", tag)
            return re.sub(r'href="#([^"]+)"', lambda h: f'href="#{prefix}{h.group(1)}"', tag)

        s = re.sub(r"<[^<>]+>", fix_tag, s)  # tags only: text content is escaped, so never matches
        s = s.replace("<svg ", f'<svg class="chart-svg" role="img" aria-labelledby="{prefix}title" ', 1)
        close = s.index(">") + 1
        return s[:close] + f'<title id="{prefix}title">{html.escape(self.title)}</title>' + s[close:]


def build_charts(report: Report) -> list[Chart]:
    """Every chart the report's data supports, in reading order; [] when there is nothing to draw."""
    makers = [_speed_vs_accuracy, _size_vs_accuracy, _speedup_bars, _parallel_scaling, _loss_curves, _structure_pareto]
    if not _needs_charts(report):
        return []
    import matplotlib

    from .verdict import is_training

    if is_training(report):
        # optimizers and structures are compared by loss curves and cost against quality: every
        # technique has the same size, and a training row carries no speed ratio to chart
        makers = [_loss_curves, _parallel_scaling, _structure_pareto]
    charts: list[Chart] = []
    with matplotlib.rc_context(RC):
        for make in makers:
            chart = make(report)
            if chart:
                charts.append(chart)
        for i, trend in enumerate(trends_to_chart(report.trends)):
            chart = _trend(trend, i)
            if chart:
                charts.append(chart)
    return charts


def trends_to_chart(trends: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history series worth a chart: those with a step first, at most MAX_TRENDS (a suite of
    15 cells x 3 key metrics would otherwise add 45 charts to a report read in a minute)."""
    usable = [t for t in trends if len(t.get("points") or []) >= 2]
    ranked = sorted(usable, key=lambda t: not t.get("steps"))  # stable: the history's own order otherwise
    return ranked[:MAX_TRENDS]


def _needs_charts(report: Report) -> bool:
    return bool(report.comparisons or report.trends or any(r.get("training") for r in report.rows)
                or len(_structure_points(report)) >= 2 or bool(parallel_figures(report.rows)))


# --- drawing helpers ------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas; no pyplot, no global figure state
    return fig


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "optbench (matplotlib)"})
    return buf.getvalue()


def _legend_label(text: str) -> str:
    # matplotlib hides legend entries whose label starts with "_"
    return " " + text if text.startswith("_") else text


def _ratio_axis(ax: Axes, axis: str, values: list[float], pad: tuple[float, float] = (1.15, 1.15)) -> None:
    """A log axis of ratios with readable ticks ("0.5x", "1x", "2x"), never crowded."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    vals = [v for v in values if v and v > 0 and math.isfinite(v)] + [1.0]
    lo, hi = min(vals) / pad[0], max(vals) * pad[1]
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"set_{axis}lim")(lo, hi)
    candidates = [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 0.67, 0.8, 0.9, 1.1, 1.25, 1.5, 2, 3, 4, 5, 8, 10, 20, 50, 100, 200, 500]
    min_gap = math.log(hi / lo) / 9  # at most ~9 ticks, evenly apart on the log axis
    ticks = [1.0]
    for t in sorted((t for t in candidates if lo <= t <= hi), key=lambda t: abs(math.log(t))):
        if all(abs(math.log(t / u)) >= min_gap for u in ticks):
            ticks.append(t)
    ticks.sort()
    a = getattr(ax, f"{axis}axis")
    a.set_major_locator(FixedLocator(ticks))
    a.set_minor_locator(NullLocator())
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))


def _pct_axis(ax: Axes, xs: list[float], budget: float) -> None:
    """Perplexity change in percent: linear within the budget, logarithmic beyond (changes span 0.001% to 1000%)."""
    from matplotlib.ticker import FuncFormatter

    lin = max(budget * 100, 1e-3)
    ax.set_xscale("symlog", linthresh=lin, linscale=1.5)
    lo = min([0.0, *xs]) * 100
    hi = max([budget * 100 * 1.5, *(x * 100 for x in xs)])
    ax.set_xlim(lo - 0.15 * lin if lo >= -lin else lo * 1.5, hi * 1.6 if hi > lin else hi + 0.3 * lin)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "0%" if v == 0 else f"{v:+g}%"))


def _place_labels(ax: Axes, fig: Figure, pts: list[tuple[float, float, str]], fontsize: float = 7.5) -> None:
    """Label points without overlaps: greedy, in axes-fraction space, nudging up/down, right or left."""
    w_in, h_in = fig.get_size_inches()
    ax_w, ax_h = w_in * 72 * 0.80, h_in * 72 * 0.72  # the axes' size in points, about (constrained layout)
    to_axes = ax.transScale + ax.transLimits
    cw, lh, off = 0.56 * fontsize / ax_w, 1.25 * fontsize / ax_h, 5 / ax_w
    placed: list[tuple[float, float, float, float]] = []
    marks = []
    for x, y, _ in pts:
        fx, fy = to_axes.transform((x, y))
        marks.append((fx - 0.008, fy - 0.012, fx + 0.008, fy + 0.012))
    order = sorted(range(len(pts)), key=lambda i: -pts[i][1])

    def free(box: tuple[float, float, float, float]) -> bool:
        if box[0] < 0 or box[2] > 1.02 or box[1] < -0.02 or box[3] > 1.02:
            return False
        return not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed + marks)

    for i in order:
        x, y, text = pts[i]
        fx, fy = to_axes.transform((x, y))
        w = cw * len(text)
        choice = None
        for k in range(0, 9):
            for dy in ((0,) if k == 0 else (-k * lh, k * lh)):
                for side in (1, -1):
                    x0 = fx + off if side == 1 else fx - off - w
                    box = (x0, fy + dy - lh / 2, x0 + w, fy + dy + lh / 2)
                    if free(box):
                        choice = (side, dy, box)
                        break
                if choice:
                    break
            if choice:
                break
        if choice is None:
            choice = (1, 0.0, (fx + off, fy - lh / 2, fx + off + w, fy + lh / 2))
        side, dy, box = choice
        placed.append(box)
        ax.annotate(text, (x, y), xytext=(side * 5, dy * ax_h), textcoords="offset points", fontsize=fontsize,
                    ha="left" if side == 1 else "right", va="center", color="#1f2328", annotation_clip=False,
                    # patchA=None: a plain leader line, not clipped to the text box (that clipping costs ~0.3 s a chart)
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#8c959f", "patchA": None, "shrinkA": 0, "shrinkB": 3}
                    if abs(dy) > 0 else None)


def _pareto(points: list[tuple[float, float]], maximize_y: bool = True) -> list[int]:
    """Indices of the points no other point beats on both axes (x lower is better; y higher, or lower)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = False
        for j, (x2, y2) in enumerate(points):
            if j == i:
                continue
            better_y = y2 >= y if maximize_y else y2 <= y
            strictly = x2 < x or (y2 > y if maximize_y else y2 < y)
            if x2 <= x and better_y and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _draw_front(ax: Axes, xs: list[float], ys: list[float], idx: list[int], maximize_y: bool = True) -> None:
    if not idx:
        return
    fx, fy = [xs[i] for i in idx], [ys[i] for i in idx]
    # the best y reachable at a cost of at most x: flat from one front point to the next, then a step
    ax.step(fx, fy, where="post", color=FRONT, lw=1.2, ls="--", zorder=1, label="Pareto front")
    ax.scatter(fx, fy, s=110, facecolors="none", edgecolors=FRONT, linewidths=1.4, zorder=4)


# --- points: one per comparison, or per technique over many workloads -------------------------------


@dataclass
class _Point:
    label: str
    speed: tuple[float, float, float] | None
    ppl: float | None
    size: float | None  # serialized size ratio when there is one, else model bytes
    speed_level: str
    unstable: bool


def _points(report: Report) -> tuple[list[_Point], str]:
    comps = [c for c in report.comparisons if not c.not_comparable]
    keys = varying_keys(report.rows)
    if len(comps) <= MAX_POINTS:
        pts = []
        for c in comps:
            ctx = short_context(c.row, keys)
            pts.append(_Point(c.label + (f" · {ctx}" if ctx else ""), c.speedup, c.ppl_change,
                              c.serialized_ratio or c.size_ratio, speed_light(c).level, bool(c.unstable)))
        return pts, ""
    by_label: dict[str, list[Comparison]] = {}
    for c in comps:
        by_label.setdefault(c.label, []).append(c)
    pts = []
    for label, cs in by_label.items():
        sp = [c.speedup for c in cs if c.speedup]
        speed = None
        if sp:
            g = math.exp(sum(math.log(s[0]) for s in sp) / len(sp))
            los, his = [s[1] for s in sp if s[1] == s[1]], [s[2] for s in sp if s[2] == s[2]]
            speed = (g, min(los) if los else float("nan"), max(his) if his else float("nan"))
        ppl = [c.ppl_change for c in cs if c.ppl_change is not None]
        sizes = sorted(c.serialized_ratio or c.size_ratio for c in cs if c.serialized_ratio or c.size_ratio)
        levels = {speed_light(c).level for c in cs}
        level = GOOD if levels == {GOOD} else POOR if levels == {POOR} else FAIR
        pts.append(_Point(label, speed, max(ppl) if ppl else None, sizes[len(sizes) // 2] if sizes else None, level,
                          any(c.unstable for c in cs)))
    return pts, (f"One point per technique: geometric mean over its {len(comps) // max(len(by_label), 1)} or so workloads; "
                 "bars span the lowest to highest 95% bound over them.")


def _scatter_vs_accuracy(report: Report, ykey: str) -> Chart | None:
    pts, agg_note = _points(report)
    budget = report.budget
    if ykey == "speed":
        pts = [p for p in pts if p.speed and p.ppl is not None]
    else:
        pts = [p for p in pts if p.size and p.ppl is not None]
    if not pts:
        return None
    fig = _figure(7.6, 4.4)
    ax = fig.add_subplot()
    xs = [p.ppl * 100 for p in pts]
    ys = [p.speed[0] if ykey == "speed" else p.size for p in pts]
    # the baseline is an option too: a technique slower and less accurate than it is dominated
    all_x, all_y = [0.0, *xs], [1.0, *ys]
    front = _pareto(list(zip(all_x, all_y, strict=True)))  # indices into all_x / all_y: 0 is the baseline
    _pct_axis(ax, [p.ppl for p in pts], budget)
    bounds = ys + ([p.speed[1] for p in pts if p.speed[1] == p.speed[1]] + [p.speed[2] for p in pts if p.speed[2] == p.speed[2]]
                   if ykey == "speed" else [])
    _ratio_axis(ax, "y", bounds)
    ax.axhline(1, color="#57606a", lw=0.8, zorder=0)
    ax.axvline(budget * 100, color=COLORS[POOR], lw=1, ls=":", zorder=0)
    ax.text(budget * 100, 1.0, f" budget +{budget * 100:g}%", transform=ax.get_xaxis_transform(), va="top", ha="left",
            fontsize=7.5, color=COLORS[POOR])
    for p, x, y in zip(pts, xs, ys, strict=True):
        level = accuracy_level(p.ppl, budget)
        inside = level == GOOD
        color = COLORS[level] if ykey == "size" else COLORS[p.speed_level]
        if ykey == "speed" and p.speed and p.speed[1] == p.speed[1]:
            ax.errorbar([x], [y], yerr=[[y - p.speed[1]], [p.speed[2] - y]], fmt="none", ecolor=color, elinewidth=1, capsize=2, zorder=2)
        ax.scatter([x], [y], s=36, marker="o" if inside else "X", color=color, zorder=3,
                   edgecolors="white" if not p.unstable else "black", linewidths=0.6)
    ax.scatter([0], [1], s=70, marker="*", color="#57606a", zorder=3)
    _draw_front(ax, all_x, all_y, front)
    _place_labels(ax, fig, [(0.0, 1.0, f"{report.baseline} (baseline)")] + [(x, y, p.label) for p, x, y in zip(pts, xs, ys, strict=True)])
    ax.set_xlabel("perplexity change vs baseline (%, held-out; right is worse)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=FRONT, ls="--", label="Pareto front"),
               Line2D([], [], color="#57606a", marker="o", ls="", label=f"within the +{budget * 100:g}% budget"),
               Line2D([], [], color="#57606a", marker="X", ls="", label="over the budget")]
    if ykey == "speed":
        ax.set_ylabel("speed-up vs baseline (x, log scale; up is faster)")
        title = "Speed against accuracy"
        caption = ("Up and to the left is better: points on the dashed Pareto front are not beaten on both speed and "
                   f"accuracy by any other; left of the dotted line is within the +{budget * 100:g}% budget; bars are 95% intervals.")
        if any(p.unstable for p in pts):
            handles.append(Line2D([], [], color="#57606a", marker="o", ls="", mec="black", label="unstable timings (outlined)"))
    else:
        ax.set_ylabel("size reduction vs baseline (x smaller, log scale)")
        title = "Size against accuracy"
        caption = ("Up and to the left is better: the dashed front shows the most shrink for each accuracy cost; "
                   f"left of the dotted line is within the +{budget * 100:g}% budget (serialized size where measured).")
    ax.legend(handles=handles, loc="best")
    ax.set_title(title)
    if agg_note:
        caption += " " + agg_note
    return Chart("speed-vs-accuracy" if ykey == "speed" else "size-vs-accuracy", title, caption, _svg(fig))


def _speed_vs_accuracy(report: Report) -> Chart | None:
    return _scatter_vs_accuracy(report, "speed")


def _size_vs_accuracy(report: Report) -> Chart | None:
    return _scatter_vs_accuracy(report, "size")


def _speedup_bars(report: Report) -> Chart | None:
    pts, agg_note = _points(report)
    pts = [p for p in pts if p.speed]
    if not pts:
        return None
    pts.sort(key=lambda p: p.speed[0])
    fig = _figure(7.6, 1.2 + 0.28 * len(pts))
    ax = fig.add_subplot()
    ys = list(range(len(pts)))
    bounds = [p.speed[0] for p in pts] + [b for p in pts for b in p.speed[1:] if b == b]
    _ratio_axis(ax, "x", bounds, pad=(1.6, 1.35))  # room for the value labels at both ends
    for y, p in zip(ys, pts, strict=True):
        point, lo, hi = p.speed
        ax.barh([y], [point - 1], left=1, height=0.6, color=COLORS[p.speed_level], alpha=0.85,
                hatch="////" if p.unstable else None, edgecolor="black" if p.unstable else "none", linewidth=0.5)
        if lo == lo and hi == hi:
            ax.errorbar([point], [y], xerr=[[point - lo], [hi - point]], fmt="none", ecolor="#1f2328", elinewidth=0.9, capsize=2.5)
        if point >= 1:  # the value beyond the whisker's far end, away from the 1x line
            ax.text(max(point, hi if hi == hi else point) * 1.03, y, f"{point:.2f}x", va="center", ha="left", fontsize=7.5)
        else:
            ax.text(min(point, lo if lo == lo else point) / 1.03, y, f"{point:.2f}x", va="center", ha="right", fontsize=7.5)
    ax.axvline(1, color="#1f2328", lw=0.9)
    ax.set_yticks(ys, [p.label for p in pts])
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("speed-up vs baseline (x, log scale; right of 1x is faster)")
    ax.set_title("Speed-up per technique")
    caption = ("Bars right of 1x are faster than the baseline; the whiskers are 95% intervals, so a whisker crossing 1x "
               "means no clear change; green: credibly faster, red: credibly slower, amber: unclear, hatched: unstable timings.")
    if agg_note:
        caption += " " + agg_note
    return Chart("speedup", "Speed-up per technique", caption, _svg(fig))


# --- parallelism: speed-up over one process against linear scaling -------------------------------------


def _parallel_scaling(report: Report) -> Chart | None:
    figs = parallel_figures(report.rows)
    if not figs:
        return None
    from matplotlib.lines import Line2D

    fig = _figure(7.6, 1.5 + 0.3 * len(figs))
    ax = fig.add_subplot()
    ys = list(range(len(figs)))
    # room on the right for "0.85x, 43% of linear" past the farther of the bar and the linear mark
    _ratio_axis(ax, "x", [f.speedup for f in figs] + [float(f.ranks) for f in figs], pad=(1.5, 3.2))
    for y, f in zip(ys, figs, strict=True):
        ax.barh([y], [f.speedup - 1], left=1, height=0.6, color=FRONT if f.speedup >= 1 else COLORS[POOR], alpha=0.85)
        ax.plot([f.ranks], [y], marker="|", ms=13, mew=2, color="#1f2328", zorder=3)
        ax.text(max(f.speedup, f.ranks, 1.0) * 1.05, y, f"{f.speedup:.2f}x, {f.efficiency:.0%} of linear",
                va="center", ha="left", fontsize=7.5)
    ax.axvline(1, color="#1f2328", lw=0.9)
    ax.set_yticks(ys, [f"{f.label} · {_count(f.ranks, f.unit)} · {f.timed}" for f in figs])
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("speed-up over one process (log scale; right of 1x is faster)")
    ax.set_title("Parallel speed-up against linear scaling")
    ax.legend(handles=[Line2D([], [], color="#1f2328", marker="|", ms=10, mew=2, ls="", label="linear: N ranks, N x")],
              loc="lower right")
    caption = ("Each bar is a measured speed-up over one process on the same threads per rank; the black tick is linear scaling "
               "(N ranks, N x), so the gap between bar and tick is lost to communication, start-up and shared cores; "
               "red bars are slower than one process. One measurement per cell, no interval.")
    return Chart("parallel-scaling", "Parallel speed-up against linear scaling", caption, _svg(fig))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --- training: loss curves ------------------------------------------------------------------------


def _loss_curves(report: Report) -> Chart | None:
    rows = [r for r in report.rows if (r.get("training") or {}).get("curve")]
    if not rows:
        return None
    from matplotlib.lines import Line2D

    keys = [k for k in varying_keys(rows) if k != "backend"]
    fig = _figure(7.6, 4.6 + 0.16 * len(rows))
    ax = fig.add_subplot()
    styles, markers = ["-", "--", ":", "-."], ["o", "s", "^", "D", "v", "P", "X", "*"]
    handles = []
    all_losses: list[float] = []
    for i, r in enumerate(rows):
        curve = r["training"]["curve"]
        color = f"C{i % 10}"
        ls, mk = styles[i % len(styles)], markers[i % len(markers)]
        steps = [p["step"] for p in curve if p.get("train_loss") is not None and math.isfinite(p["train_loss"])]
        train = [p["train_loss"] for p in curve if p.get("train_loss") is not None and math.isfinite(p["train_loss"])]
        held = [(p["step"], p["heldout_loss"]) for p in curve if p.get("heldout_loss") is not None and math.isfinite(p["heldout_loss"])]
        ax.plot(steps, train, color=color, ls=ls, lw=1.3)
        if held:
            ax.plot([s for s, _ in held], [v for _, v in held], color=color, ls="", marker=mk, ms=4)
        all_losses += train + [v for _, v in held]
        ctx = short_context(r, keys)
        label = r["technique"]["label"] + (f" ({ctx})" if ctx else "") + ("" if r["status"] == "ok" else f" [{r['status']}]")
        if r["training"].get("diverged"):
            label += " [diverged]"
        handles.append(Line2D([], [], color=color, ls=ls, marker=mk, ms=4, label=_legend_label(label)))
    targets = {r["training"].get("target_loss") or (r.get("workload") or {}).get("target_loss") for r in rows}
    targets.discard(None)
    for t in targets:
        ax.axhline(t, color="#57606a", ls=":", lw=1)
        ax.text(1.0, t, f"target {t:g} ", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=7.5, color="#57606a")
    pos = [v for v in all_losses if v > 0]
    if pos and max(pos) / min(pos) > 5:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (cross-entropy, nats/token)")
    ax.set_title("Training loss per optimizer")
    # below the axes: labels of optimizers with their hyperparameters are long, and the curves need the room
    longest = max(len(h.get_label()) for h in handles)
    fig.legend(handles=handles, loc="outside lower center", ncol=1 if longest > 60 else 2 if longest > 30 else 3, fontsize=7.5)
    caption = ("Lower is better: lines are the training loss, markers the held-out loss; the curve that first crosses "
               "the dotted target line reaches it in the fewest steps (same data order and seed for every line).")
    if not targets:
        caption = caption.replace("; the curve that first crosses the dotted target line reaches it in the fewest steps", "")
    return Chart("loss-curves", "Training loss per optimizer", caption, _svg(fig))


# --- structure sweeps: cost against quality ---------------------------------------------------------


def _metric(row: dict[str, Any], *names: str) -> float | None:
    for n in names:
        m = row.get("metrics", {}).get(n)
        if m is not None:
            v = m.get("value", m.get("median"))
            if v is not None:
                return float(v)
    return None


def _config_of(row: dict[str, Any]) -> tuple:
    model = row.get("model") or {}
    cfg = (row.get("model_info") or {}).get("config") or {}
    return tuple((k, model.get(k) if model.get(k) is not None else cfg.get(k)) for k in ("depth", "width", "heads", "ffn_ratio"))


def si(x: float) -> str:
    """1.2e6 -> "1.2 M"; for costs (FLOPs/token, parameters) in captions and sentences."""
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {unit}"
    return f"{x:.3g}"


def _structure_points(report: Report) -> list[tuple[str, float, float, str]]:
    """(config label, cost, held-out perplexity, cost unit) per model config; [] unless the model varies."""
    ok = [r for r in report.rows if r["status"] == "ok" and _metric(r, "perplexity") is not None]
    overridden = [r for r in ok if any((r.get("model") or {}).get(k) is not None for k in ("depth", "width", "heads", "ffn_ratio"))]
    if len({_config_of(r) for r in overridden}) < 2:
        return []
    use_flops = all(_metric(r, "flops_per_token") for r in overridden)
    seen: dict[tuple, tuple[str, float, float, str]] = {}
    for r in overridden:
        cost = _metric(r, "flops_per_token") if use_flops else _metric(r, "params", "parameters")
        if not cost:
            continue
        cfg = _config_of(r)
        short = {"depth": "d", "width": "w", "heads": "h", "ffn_ratio": "ffn"}
        label = " ".join(f"{short[k]}{v:g}" if isinstance(v, (int, float)) else f"{short[k]}{v}" for k, v in cfg if v is not None)
        tech = r["technique"]["label"]
        if tech != report.baseline and len({x["technique"]["label"] for x in overridden}) > 1:
            label += f" ({tech})"
        key = (cfg, tech)
        point = (label, cost, _metric(r, "perplexity"), "FLOPs/token" if use_flops else "parameters")
        if key not in seen or point[2] < seen[key][2]:
            seen[key] = point
    return list(seen.values())


def _structure_pareto(report: Report) -> Chart | None:
    pts = _structure_points(report)
    if len(pts) < 2:
        return None
    fig = _figure(7.6, 4.4)
    ax = fig.add_subplot()
    xs, ys = [p[1] for p in pts], [p[2] for p in pts]
    front = _pareto(list(zip(xs, ys, strict=True)), maximize_y=False)
    on_front = set(front)
    for i, (_, x, y, _) in enumerate(pts):
        ax.scatter([x], [y], s=34, marker="o" if i in on_front else "x", color=FRONT if i in on_front else "#6e7781", zorder=3)
    _draw_front(ax, xs, ys, front, maximize_y=False)
    ax.set_xscale("log")
    if max(ys) / min(ys) > 3:
        ax.set_yscale("log")
    _place_labels(ax, fig, [(x, y, label) for label, x, y, _ in pts])
    unit = pts[0][3]
    ax.set_xlabel(f"cost: {unit} (log scale; left is cheaper)")
    ax.set_ylabel("held-out perplexity (lower is better)")
    ax.set_title("Cost against quality per model structure")
    ax.legend(loc="upper right")
    caption = (f"Down and to the left is better: configs on the dashed Pareto front give the lowest perplexity for their {unit}; "
               "any config above-right of the front (x) costs more for worse quality.")
    return Chart("structure-pareto", "Cost against quality per model structure", caption, _svg(fig))


# --- nightly history: trends with steps ---------------------------------------------------------------


def _trend(trend: dict[str, Any], i: int) -> Chart | None:
    points = [p for p in trend.get("points", []) if p.get("value") is not None and math.isfinite(p["value"])]
    if not points:
        return None
    fig = _figure(7.6, 2.8)
    ax = fig.add_subplot()
    xs = list(range(len(points)))
    ys = [p["value"] for p in points]
    unit = trend.get("unit") or ""
    ax.plot(xs, ys, color=FRONT, lw=1, marker="o", ms=3)
    ci = [(x, p["ci95"]) for x, p in zip(xs, points, strict=True) if p.get("ci95")]
    if ci:
        ax.errorbar([x for x, _ in ci], [ys[x] for x, _ in ci], yerr=[[ys[x] - c[0] for x, c in ci], [c[1] - ys[x] for x, c in ci]],
                    fmt="none", ecolor="#8c959f", elinewidth=0.8, capsize=1.5)
    index_of = {p.get("run_id"): x for x, p in zip(xs, points, strict=True)}
    for step in trend.get("steps", []):
        x = index_of.get(step.get("run_id"), step.get("index"))
        if x is None:
            continue
        ax.axvline(x - 0.5, color=COLORS[POOR], ls="--", lw=1)
        ratio = step.get("ratio")
        text = f" step x{ratio:.2f}" if ratio else " step"
        ax.text(x - 0.5, 0.98, text, transform=ax.get_xaxis_transform(), va="top", ha="left", fontsize=7.5, color=COLORS[POOR])
    n = len(points)
    every = max(1, math.ceil(n / 8))
    ax.set_xticks(xs[::every], [str(p.get("started", ""))[:10] for p in points][::every], rotation=0)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("run (date started)")
    ax.set_ylabel(f"{trend.get('metric', 'value')}" + (f" ({unit})" if unit else ""))
    title = f"{trend.get('cell', '?')}: {trend.get('metric', '?')} over time"
    ax.set_title(title)
    caption = ("Each point is one run (bars: 95% interval where measured); dashed red lines mark the runs where change-point "
               "detection found a step, labelled with the ratio after/before.")
    if not trend.get("steps"):
        caption = "Each point is one run (bars: 95% interval where measured); no step change was detected in this history."
    if trend.get("about"):
        caption = f"{trend['metric']}: {trend['about']}. {caption}"
    return Chart(f"trend-{i + 1}", title, caption, _svg(fig))
