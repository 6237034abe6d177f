"""Does optbench's latency agree with a plain torch timing loop on the same model and input?

Both measure the tiny reference model's forward pass (batch 1, seq 128, same seeded
input, same thread count), each in a fresh process, in interleaved rounds so slow drift
of the machine does not favour one of them. Prints each round's medians and the ratio;
asserts nothing about speed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap

import pytest

THREADS = 1  # one thread keeps the 2-core VM out of its OpenMP slow mode, for both sides
PLAIN_LOOP = textwrap.dedent(f"""
    import json, statistics, time, torch
    from optbench.models import reference
    torch.set_num_threads({THREADS})
    model, _ = reference.load("tiny")
    model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (1, 128), generator=g)
    with torch.inference_mode():
        for _ in range(20):
            model(x)
        times = []
        t_end = time.perf_counter() + 3.0
        while time.perf_counter() < t_end or len(times) < 50:
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    print(json.dumps({{"median": statistics.median(times), "n": len(times)}}))
""")

SUITE = f"""name: agreement
model: {{source: reference, size: tiny}}
threads: {THREADS}
workload: {{batch: 1, seq_len: 128}}
measure: {{min_reps: 50, min_time_s: 3.0, max_time_s: 10, metrics: [latency]}}
seed: 0
techniques: [none]
"""


def test_latency_agrees_with_plain_torch_loop(benchmark, tmp_path, figure):
    from optbench.models import paths

    if paths.card("tiny") is None:
        pytest.skip("the tiny reference checkpoint is not built")
    suite = tmp_path / "agreement.yaml"
    suite.write_text(SUITE)
    ratios: list[float] = []
    benchmark.pedantic(lambda: _rounds(suite, tmp_path, ratios, figure), rounds=1, iterations=1)
    figure(f"optbench / plain-loop latency ratio: median {statistics.median(ratios):.3f} over {len(ratios)} interleaved rounds")
    benchmark.extra_info["ratios"] = ratios
    assert all(r > 0 for r in ratios)


def _rounds(suite, tmp_path, ratios, figure):
    for i in range(3):
        out = tmp_path / f"run{i}"
        subprocess.run([sys.executable, "-m", "optbench", "run", str(suite), "-o", str(out)], check=True, capture_output=True)
        row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
        ours = row["metrics"]["latency"]
        plain = json.loads(subprocess.run([sys.executable, "-c", PLAIN_LOOP], check=True, capture_output=True, text=True).stdout)
        ratios.append(ours["median"] / plain["median"])
        figure(f"round {i + 1}: optbench median {ours['median'] * 1e3:.3f} ms (n={ours['n']}, "
               f"CI [{ours['ci95'][0] * 1e3:.3f}, {ours['ci95'][1] * 1e3:.3f}]{', UNSTABLE' if ours['unstable'] else ''}) "
               f"vs plain loop {plain['median'] * 1e3:.3f} ms (n={plain['n']}): ratio {ratios[-1]:.3f}")
