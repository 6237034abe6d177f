"""The example third-party plugin, installed by real pip as a separate distribution.

examples/optbench-example-plugin is built and installed (real wheel, real .dist-info,
entry point and all) into a target directory that goes on PYTHONPATH: exactly what an
installed plugin looks like to optbench, without touching the test environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SMALL_MODEL, cli, rows_of

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "optbench-example-plugin"
DIST = "optbench-example-plugin==0.1.0"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(target dir on PYTHONPATH, copy of the example's source) after `pip install --target`."""
    tmp = tmp_path_factory.mktemp("example")
    # build from a copy, so the build leaves no build/ or *.egg-info in the source tree
    src = tmp / "src-copy"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    target = tmp / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                          "--target", str(target), str(src)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    assert (target / "optbench_example_plugin-0.1.0.dist-info" / "entry_points.txt").exists()
    return target, src


def env_with(target: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def test_plugins_lists_it_with_version_hooks_and_what_it_provides(installed):
    target, _ = installed
    listed = json.loads(cli("plugins", "--json", env_extra=env_with(target)).stdout)
    (lowrank,) = [p for p in listed if p["name"] == "lowrank"]
    assert lowrank["dist"] == "optbench-example-plugin" and lowrank["version"] == "0.1.0"
    assert lowrank["module"] == "optbench_example_plugin.plugin"
    assert lowrank["hooks"] == ["optbench_register_metrics", "optbench_register_techniques"]
    assert lowrank["provides"] == {"techniques": ["low-rank"], "metrics": ["linear-params"]}
    assert Path(lowrank["path"]).is_relative_to(target)

    table = cli("plugins", env_extra=env_with(target))
    assert table.returncode == 0 and table.stderr == ""
    (line,) = [ln for ln in table.stdout.splitlines() if ln.startswith("lowrank ")]
    assert "optbench-example-plugin 0.1.0" in line and "register_techniques" in line and "techniques: low-rank" in line

    check = cli("plugins", "--check", env_extra=env_with(target))
    builtins = len(json.loads(cli("plugins", "--json").stdout))
    assert (check.returncode, check.stdout) == (0, f"{builtins + 1} plugins OK\n")


def test_a_suite_using_it_runs_and_the_report_names_it(installed, tmp_path):
    target, _ = installed
    suite = tmp_path / "low-rank.yaml"
    suite.write_text(f"""name: low-rank
model: {SMALL_MODEL}
workload: {{batch: 1, seq_len: 16}}
measure: {{min_reps: 5, min_time_s: 0.05, max_time_s: 5, eval_tokens: 512, eval_seq_len: 32,
          metrics: [latency, cost, fidelity, linear-params]}}
techniques: [none, {{low-rank: {{rank: 16}}}}]
""")
    out = tmp_path / "out"
    run = cli("run", str(suite), "-o", str(out), env_extra=env_with(target))
    assert run.returncode == 0, run.stderr
    rows = {r["technique"]["label"]: r for r in rows_of(out)}
    row = rows["low-rank[rank=16]"]
    assert row["status"] == "ok", row["reason"]
    assert row["plugins"]["lowrank"] == DIST
    assert row["plugin_of"]["technique"] == f"lowrank ({DIST})"
    # 4 Linear layers factorised at rank 16 (the head kept): 64x192, 64x64, 64x256, 256x64
    saved = sum(i * o - 16 * (i + o) for i, o in [(64, 192), (64, 64), (64, 256), (256, 64)])
    assert rows["none"]["metrics"]["parameters"]["value"] - row["metrics"]["parameters"]["value"] == saved == 32768
    assert row["metrics"]["factorized_layers"]["value"] == 4
    assert row["metrics"]["kl_divergence"]["value"] > 0
    report = (out / "report.md").read_text()
    assert "low-rank[rank=16]" in report
    assert "lowrank" in report and DIST in report


def test_the_examples_own_tests_pass(installed):
    """The example's tests (written with optbench.testing) run against the installed copy."""
    target, src = installed
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=src, env={**os.environ, **env_with(target)}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "6 passed" in out.stdout
