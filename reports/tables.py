"""Table rows shared by the Markdown and HTML reports (plain strings, escaped by the renderer)."""

from __future__ import annotations

from typing import Any

from .summary import Report, fmt_bytes, fmt_pct, fmt_ratio, fmt_small, fmt_speed

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


def comparison_rows(report: Report) -> list[list[str]]:
    out = []
    for c in report.comparisons:
        wl = c.row["workload"]
        note = c.not_comparable or (f"UNSTABLE: {c.unstable}" if c.unstable else "")
        out.append([
            c.label, c.row["backend"], str(wl["batch"]), str(wl["seq_len"]), fmt_speed(c.speedup),
            fmt_ratio(c.size_ratio, "smaller", "larger") if c.size_ratio else "n/a",
            fmt_ratio(c.serialized_ratio, "smaller", "larger") if c.serialized_ratio else "n/a",
            _flops(c.flops_ratio),
            fmt_pct(c.ppl_change), fmt_small(c.kl),
            "n/a" if c.agreement is None else f"{c.agreement * 100:.2f}%", note,
        ])
    return out


def result_rows(report: Report) -> list[list[str]]:
    out = []
    for r in sorted(report.rows, key=lambda r: (r["backend"], r["workload"]["batch"], r["workload"]["seq_len"], r["technique"]["label"] != report.baseline, r["technique"]["label"])):
        wl = r["workload"]
        lat = r.get("metrics", {}).get("latency")
        ppl, top1 = _metric(r, "perplexity"), _metric(r, "top1_accuracy")
        flops, params = _metric(r, "flops_per_token"), _metric(r, "parameters")
        status = r["status"] + (" (unstable)" if r.get("unstable") else "")
        out.append([
            r["technique"]["label"], r["backend"], str(wl["batch"]), str(wl["seq_len"]), status,
            f"{_ms(lat['median'])} [{_ms(lat['ci95'][0])}, {_ms(lat['ci95'][1])}]" if lat else "",
            _ms(lat["p90"]) if lat else "", str(lat["n"]) if lat else "",
            fmt_bytes(_metric(r, "model_bytes")) if _metric(r, "model_bytes") else "",
            fmt_bytes(_metric(r, "serialized_bytes")) if _metric(r, "serialized_bytes") else "",
            f"{params:,}" if params else "", f"{flops / 1e6:.2f} M" if flops else "",
            f"{ppl:.4f}" if ppl else "", f"{top1 * 100:.2f}%" if top1 is not None else "",
            fmt_bytes(_metric(r, "peak_rss")) if _metric(r, "peak_rss") else "",
            f"{r['harness_overhead_s']:.3f} s" if "harness_overhead_s" in r else "",
        ])
    return out


def problem_rows(report: Report) -> list[list[str]]:
    return [[r["technique"]["label"], r["backend"], str(r["workload"]["batch"]), r["status"], r.get("reason", "")]
            for r in report.failed + report.skipped]


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
