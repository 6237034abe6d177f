"""Change-point detection over a metric's history: the run where a step happened.

Comparing each night with the previous one misses a slow creep and a step that a noisy
night hid; asv answers with step detection over the whole series, and so does this
module: the exact penalised least-squares segmentation of the log values (optimal
partitioning, O(n^2) with one vectorised pass per point: ~10 ms for 365 runs), each
new segment costing ``BETA * sigma^2 * log(n)``, with ``sigma`` the noise of one point,
estimated robustly from successive differences. Before segmenting, each point is clipped
to its neighbours' median +- 4 sigma, so one slow-mode night is an outlier, not a step
(asv gets the same robustness from an L1 cost). A deterministic series (bytes) has
``sigma`` 0, so any change in it is a step.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

#: penalty multiplier, chosen on synthetic series (benchmarks/trend_calibration.py)
BETA = 6.0
#: points further than this many sigma from their neighbours' median are clipped
CLIP = 4.0


def point_noise(ys: list[float]) -> float:
    """Robust noise of one point of a log series: MAD of successive differences / sqrt(2)."""
    diffs = [b - a for a, b in zip(ys, ys[1:], strict=False)]
    if len(diffs) < 2:
        return 0.0
    med = statistics.median(diffs)
    return 1.4826 * statistics.median(abs(d - med) for d in diffs) / math.sqrt(2)


def find_steps(values: list[float], *, min_size: int = 2, beta: float = BETA) -> list[int]:
    """Indexes where a new level starts (each > 0), for a series of positive values."""
    ys = [math.log(v) for v in values if v and v > 0 and math.isfinite(v)]
    if len(ys) != len(values) or len(ys) < 2 * min_size:
        return []
    sigma = point_noise(ys)
    if sigma == 0:
        # deterministic: a step wherever the value changes
        return [i for i in range(1, len(ys)) if abs(ys[i] - ys[i - 1]) > 1e-9]
    return segment(_clip(ys, sigma), beta * sigma * sigma * math.log(len(ys)), min_size)


def _clip(ys: list[float], sigma: float, half: int = 3) -> list[float]:
    out = []
    for i, y in enumerate(ys):
        med = statistics.median(ys[max(0, i - half):i + half + 1])
        out.append(min(max(y, med - CLIP * sigma), med + CLIP * sigma))
    return out


def segment(ys: list[float], penalty: float, min_size: int = 2) -> list[int]:
    """Optimal partitioning: the change points minimising squared error + ``penalty`` per segment."""
    import numpy as np

    y = np.asarray(ys, dtype=float)
    n = len(y)
    s1 = np.concatenate([[0.0], np.cumsum(y)])
    s2 = np.concatenate([[0.0], np.cumsum(y * y)])
    best = np.full(n + 1, np.inf)
    best[0] = -penalty
    last = np.zeros(n + 1, dtype=int)
    for t in range(min_size, n + 1):
        s = np.arange(0, t - min_size + 1)
        s = s[(s == 0) | (s >= min_size)]
        length = t - s
        cost = (s2[t] - s2[s]) - (s1[t] - s1[s]) ** 2 / length
        total = best[s] + cost + penalty
        k = int(np.argmin(total))
        best[t], last[t] = total[k], s[k]
    cuts = []
    t = n
    while t > 0:
        t = int(last[t])
        if t > 0:
            cuts.append(t)
    return sorted(cuts)


def steps(values: list[float], run_ids: list[str] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Steps as the report draws them: index of the first point after, the levels before and after."""
    idx = find_steps(values, **kw)
    out = []
    bounds = [0] + idx + [len(values)]
    for k, i in enumerate(idx):
        before = statistics.median(values[bounds[k]:i])
        after = statistics.median(values[i:bounds[k + 2]])
        out.append({"index": i, "run_id": run_ids[i] if run_ids else None, "before": before, "after": after,
                    "ratio": after / before if before else None})
    return out
