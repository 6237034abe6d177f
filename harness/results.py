"""results.jsonl: one schema-versioned row per cell, appended and fsynced as each finishes.

A truncated last line (a crash mid-write) is ignored on read, never fatal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = "results.jsonl"
RUN = "run.json"
FINISHED = ("ok", "skipped")  # failed cells are run again on resume


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash mid-write
            if isinstance(row, dict) and "cell" in row:
                rows.append(row)
    return rows


def latest_by_round(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """The last row written for each (cell, round): a re-run of a failed cell supersedes it."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        out[(r["cell"], int(r.get("round", 1)))] = r
    return out


def rows_by_cell(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One row per cell: the latest row of each round, rounds merged (see :func:`merge_rounds`)."""
    per_cell: dict[str, list[dict[str, Any]]] = {}
    for (key, _), row in sorted(latest_by_round(rows).items(), key=lambda kv: kv[0][1]):
        per_cell.setdefault(key, []).append(row)
    return {key: merge_rounds(rs) for key, rs in per_cell.items()}


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the rows of one cell's interleaved rounds (DESIGN §5) into one row.

    Round 1 measured everything; later rounds measured the timed metrics again. Each timed
    metric's raw samples are pooled across rounds and summarised afresh; ``rounds`` keeps
    each round's own median, so the spread between processes stays visible. A cell whose
    round medians differ by more than the unstable ratio is flagged ``unstable``.
    """
    if len(rounds) == 1:
        return rounds[0]
    from .measure.latency import summarize

    first = rounds[0]
    row = {**first, "metrics": dict(first.get("metrics", {})), "rounds_merged": [r.get("round", 1) for r in rounds]}
    row["seconds"] = round(sum(r.get("seconds", 0.0) for r in rounds), 4)
    bad = [r for r in rounds if r.get("status") != "ok"]
    if bad and first.get("status") == "ok":
        worst = bad[-1]
        row.update(status=worst["status"], reason=f"round {worst.get('round', '?')}: {worst.get('reason', '')}")
    slow = [f"round {r.get('round')}: {r['slow_machine']}" for r in rounds if r.get("slow_machine")]
    if slow:
        row["slow_machine"] = "; ".join(slow)
    ok = [r for r in rounds if r.get("status") == "ok"]
    timed = {name for r in ok[1:] for name, v in r.get("metrics", {}).items() if isinstance(v, dict) and "samples" in v}
    reasons: list[str] = []
    for name in sorted(timed):
        parts = [r["metrics"][name] for r in ok if name in r.get("metrics", {})]
        pooled = [x for p in parts for x in p["samples"]]
        ratio = parts[0].get("unstable_ratio", 1.5)
        stats = summarize(pooled, parts[0].get("warmup", 0), ratio).to_dict()
        extra = {k: v for k, v in parts[0].items() if k not in stats and k != "paired" and not isinstance(v, list)}
        merged = {**extra, **stats, "unit": parts[0].get("unit", "s")}
        if any("speed_probe_s" in p for p in parts):
            merged["speed_probe_s"] = [x for p in parts for x in p.get("speed_probe_s", [])]
        merged["rounds"] = [_round_entry(r, name) for r in ok if name in r.get("metrics", {})]
        medians = [x["median"] for x in merged["rounds"]]
        if min(medians) > 0 and max(medians) / min(medians) > ratio:
            why = f"round medians differ {max(medians) / min(medians):.2f}x"
            merged["unstable"] = True
            merged["unstable_reason"] = "; ".join(filter(None, [merged.get("unstable_reason", ""), why]))
        row["metrics"][name] = merged
        if merged.get("unstable"):
            reasons.append(merged["unstable_reason"])
    for name, v in list(row["metrics"].items()):  # values derived from a pooled one: throughput
        if isinstance(v, dict) and v.get("per") in timed and "numerator" in v:
            row["metrics"][name] = {**v, "value": v["numerator"] / row["metrics"][v["per"]]["median"]}
    if "latency" in timed:
        if reasons:
            row["unstable"] = "; ".join(reasons)
        else:
            row.pop("unstable", None)
    return row


def _round_entry(row: dict[str, Any], name: str) -> dict[str, Any]:
    """One round of a timed metric as the merged row keeps it: its median, and what compare
    needs to judge the round on its own (its speed probe after timing, its own instability)."""
    m = row["metrics"][name]
    entry = {"round": row.get("round", 1), "median": m["median"], "n": m["n"], "ci95": m["ci95"]}
    if m.get("speed_probe_s"):
        entry["probe"] = m["speed_probe_s"][-1]
    if m.get("unstable"):
        entry["unstable"] = m.get("unstable_reason") or "unstable"
    if m.get("paired"):  # measure.paired_s: this round's model over the baseline's, timed alternately
        entry["paired"] = {k: m["paired"][k] for k in ("ratio", "base_median", "speed_probe_s") if k in m["paired"]}
    if m.get("settle"):  # measure.settle_s: how long the round waited for its state, how many timings it set aside
        entry["waited_s"], entry["set_aside"] = m["settle"]["waited_s"], len(m["settle"]["set_aside"])
    return entry


class ResultsFile:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / RESULTS
        self._repair()

    def _repair(self) -> None:
        """Make sure the file ends with a newline, so a cut-off line stays isolated."""
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, sort_keys=True, default=str) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def rows(self) -> list[dict[str, Any]]:
        return read_rows(self.path)

    def finished(self) -> dict[tuple[str, int], str]:
        """(cell key, round) -> status, for every round that need not run again."""
        return {k: r["status"] for k, r in latest_by_round(self.rows()).items() if r.get("status") in FINISHED}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows())


def write_json_atomic(path: str | Path, data: Any) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
