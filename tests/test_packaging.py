"""The wheel a user installs: one import package, optbench, with its data; no generic top-level names."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_optbench_alone_with_its_models_and_templates(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    # setuptools warns of a data folder that is not a package of its own ("Package would be ignored")
    assert "would be ignored" not in build.stdout + build.stderr, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("optbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"optbench"}, top  # never harness/, plugins/, reports/ as import names of their own
    for data in ("models/data/tiny.pt", "models/data/tiny.json", "models/data/pydoc_corpus.json",
                 "reports/templates/report.html.j2", "reports/templates/report.md.j2", "plugins/quantize.py"):
        assert f"optbench/{data}" in names, data
