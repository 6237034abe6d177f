"""Tests of the example plugin, written with the fixtures of ``optbench.testing``.

pytest loads ``optbench.testing`` by itself (it is a ``pytest11`` plugin installed with
optbench), so ``optbench_pm``, ``register_plugin`` and ``run_suite_text`` need no import.
"""

from __future__ import annotations

import pytest
import torch
from optbench.errors import SuiteError
from optbench_example_plugin import plugin
from optbench_example_plugin.lowrank import LowRankLinear, factorize, linear_stats
from torch import nn

# an untrained reference model: needs no checkpoint and runs in milliseconds
SMALL_MODEL = "{source: reference, size: tiny, depth: 1, width: 64, heads: 2}"
# its Linear layers (in, out), head excluded: attn.qkv, attn.proj, mlp.fc, mlp.out
SMALL_MODEL_LINEARS = [(64, 192), (64, 64), (64, 256), (256, 64)]


def expected_saving(rank: int) -> int:
    """Parameters saved at ``rank``: each layer that shrinks loses in*out - rank*(in+out)."""
    return sum(i * o - rank * (i + o) for i, o in SMALL_MODEL_LINEARS if rank * (i + o) < i * o)


@pytest.fixture
def pm(optbench_pm, register_plugin):
    """The manager with this plugin registered from the code under test, installed or not."""
    if "lowrank" in optbench_pm.info:
        optbench_pm.unregister("lowrank")  # the installed copy: the one under test replaces it
    return register_plugin(plugin, "lowrank")


def test_the_plugin_registers_a_technique_and_a_metric(pm):
    technique = pm.techniques().get("low-rank")
    assert technique.kind == "compress" and technique.params == {"rank": 0, "ratio": 0.25, "skip_head": True}
    assert "linear-params" in pm.metrics()
    assert pm.owner_where("techniques", "low-rank") == "plugin 'lowrank' (in-process)"
    assert pm.check() == []  # what `optbench plugins --check` runs


def test_factorisation_is_exact_when_the_rank_covers_the_weight():
    torch.manual_seed(0)
    dense = nn.Linear(48, 96)
    with torch.no_grad():  # a weight of rank 6 by construction
        dense.weight.copy_(torch.randn(96, 6) @ torch.randn(6, 48) / 8)
    low = LowRankLinear.from_linear(dense, rank=6)
    x = torch.randn(5, 48)
    torch.testing.assert_close(low(x), dense(x), atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in low.parameters()) == 6 * (48 + 96) + 96  # vs 48 * 96 + 96


def test_only_layers_that_shrink_are_factorised_and_the_head_is_kept():
    model = nn.ModuleDict({"fc": nn.Linear(64, 256), "proj": nn.Linear(64, 64), "head": nn.Linear(64, 256, bias=False)})
    before = sum(p.numel() for p in model.parameters())
    done = factorize(model, rank=32)
    # fc: 32 * (64 + 256) = 10240 < 16384 weights; proj: 32 * 128 = 4096, not fewer than 64 * 64
    assert done == {"replaced": ["fc"], "kept": ["proj", "head"]}
    assert isinstance(model["fc"], LowRankLinear) and type(model["head"]) is nn.Linear
    assert before - sum(p.numel() for p in model.parameters()) == 64 * 256 - 32 * (64 + 256)
    assert linear_stats(model) == {"params": before - 6144, "dense_params": before, "layers": 3, "factorized": 1}


def test_bad_parameters_are_rejected_before_anything_runs(run_suite_text):
    with pytest.raises(SuiteError, match=r"suite.yaml:2: technique 'low-rank': ratio must be in \(0, 1\], got 1.5"):
        run_suite_text("""
            techniques:
              - low-rank: {ratio: 1.5}
        """, plugins={"lowrank": plugin})


def test_parameters_drop_and_outputs_get_closer_as_rank_rises(run_suite_text):
    rows = run_suite_text(f"""
        model: {SMALL_MODEL}
        workload: {{batch: 1, seq_len: 16}}
        measure: {{metrics: [cost, linear-params, fidelity]}}
        techniques:
          - none
          - low-rank: {{rank: [8, 40, 64]}}
    """, plugins={"lowrank": plugin})
    by_label = {r["technique"]["label"]: r for r in rows}
    assert set(by_label) == {"none", "low-rank[rank=8]", "low-rank[rank=40]", "low-rank[rank=64]"}
    base = by_label["none"]["metrics"]

    for rank, factorised in ((8, 4), (40, 3)):
        row = by_label[f"low-rank[rank={rank}]"]
        assert row["status"] == "ok", row["reason"]
        m = row["metrics"]
        # the parameter count really drops, by exactly what the shapes say
        assert base["parameters"]["value"] - m["parameters"]["value"] == expected_saving(rank)
        assert m["linear_params_dense"]["value"] - m["linear_params"]["value"] == expected_saving(rank)
        assert m["factorized_layers"]["value"] == factorised
        assert row["plugins"]["lowrank"].startswith(("optbench-example-plugin==", "(in-process)=="))

    # a higher rank keeps the output closer to the original model's
    kl = {r: by_label[f"low-rank[rank={r}]"]["metrics"]["kl_divergence"]["value"] for r in (8, 40)}
    assert base["kl_divergence"]["value"] == pytest.approx(0, abs=1e-9)
    assert 0 < kl[40] < kl[8]
    assert by_label["low-rank[rank=40]"]["metrics"]["top1_agreement"]["value"] >= by_label["low-rank[rank=8]"]["metrics"]["top1_agreement"]["value"]

    # at rank 64 no layer would shrink: the cell is skipped, not shown as a copy of the baseline
    skipped = by_label["low-rank[rank=64]"]
    assert skipped["status"] == "skipped" and "would not shrink any Linear layer" in skipped["reason"]


def test_on_the_trained_tiny_model_half_rank_shrinks_linears_by_a_third_and_stays_close(run_suite_text):
    # no model: given, so this runs on the trained tiny reference model shipped with optbench
    rows = run_suite_text("""
        measure: {metrics: [fidelity, linear-params]}
        techniques: [none, {low-rank: {ratio: 0.5}}]
    """, plugins={"lowrank": plugin})
    base, low = (r["metrics"] for r in sorted(rows, key=lambda r: r["technique"]["label"] != "none"))
    assert base["linear_params"]["value"] == base["linear_params_dense"]["value"] == low["linear_params_dense"]["value"]
    assert low["linear_params"]["value"] < 0.7 * base["linear_params"]["value"]
    assert low["factorized_layers"]["value"] == 12  # attn.proj (256 x 256) at rank 128 would not shrink
    assert low["kl_divergence"]["value"] < 0.02  # nats/token
    assert low["top1_agreement"]["value"] > 0.9
