"""Compression techniques change the model for real: each test asserts the effect."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from optbench.api import CellContext
from optbench.errors import SuiteError
from optbench.measure.accuracy import eval_windows, fidelity, logits_for
from optbench.measure.flops import flops_per_token
from optbench.measure.memory import model_bytes, serialized_bytes
from optbench.models import corpus, reference
from optbench.models.gpt import attention_flops
from optbench.plugins.cpu import CPUBackend
from optbench.plugins.metrics import _linear_sparsity
from optbench.plugins.prune import Prune
from optbench.plugins.quantize import Quantize
from optbench.suite import parse_suite

logging.getLogger("torchao").setLevel(logging.ERROR)


class _Data:
    def load(self, split):
        return corpus.split_bytes(split)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model, _ = reference.load("tiny")
    return model


@pytest.fixture(scope="module")
def windows():
    return eval_windows(corpus.split_bytes("heldout"), 64, max_tokens=2048)


def ctx():
    return CellContext(cell={}, backend=CPUBackend(), device="cpu", seed=0, dataset=_Data())


def test_int8_weight_only_shrinks_the_reference_model_and_stays_close(tiny, windows):
    q = Quantize().apply(copy.deepcopy(tiny), {"method": "int8-weight-only"}, ctx())
    ratio = model_bytes(tiny)["param_bytes"] / model_bytes(q)["param_bytes"]
    ser_ratio = serialized_bytes(tiny) / serialized_bytes(q)
    assert 3.3 < ratio < 3.8 and 3.3 < ser_ratio < 3.8  # measured 3.50x: embeddings stay fp32
    f = fidelity(logits_for(tiny, windows), logits_for(q, windows))
    assert f.kl < 1e-3 and f.top1_agreement > 0.98


@pytest.mark.parametrize("method, min_ratio, max_kl", [
    ("int8-dynamic", 3.3, 5e-3),
    ("int4-weight-only", 3.0, 5e-2),  # CPU int4 stores its values unpacked in int8: no smaller than int8
    ("fp8-weight-only", 3.3, 5e-2),
    ("torch-dynamic-int8", 3.3, 1e-2),
])
def test_quantization_methods_shrink_bytes(tiny, windows, method, min_ratio, max_kl):
    q = Quantize().apply(copy.deepcopy(tiny), {"method": method}, ctx())
    assert model_bytes(tiny)["param_bytes"] / model_bytes(q)["param_bytes"] > min_ratio
    assert serialized_bytes(tiny) / serialized_bytes(q) > min_ratio
    assert fidelity(logits_for(tiny, windows), logits_for(q, windows)).kl < max_kl
    # quantization changes the storage, not the arithmetic: FLOPs per token stay (the counter
    # sees no kernel of torch.ao's quantized Linear; it used to report 13x fewer FLOPs)
    f0, f1 = (flops_per_token(m, 32, attention_formula=attention_flops)["flops_per_token"] for m in (tiny, q))
    assert f1 == f0


def test_device_limited_methods_skip_with_a_reason():
    cpu = CPUBackend()
    assert Quantize().supported({"method": "fp8-dynamic"}, cpu) == (False, "fp8 dynamic quantization needs a CUDA GPU of compute capability 8.9 or newer")
    ok, why = Prune().supported({**Prune.params, "method": "semi-structured-2:4"}, cpu)
    assert not ok and "CUDA" in why


@pytest.mark.parametrize("method", ["structured-heads", "structured-ffn"])
def test_structured_pruning_removes_parameters_and_flops(tiny, method):
    pruned = Prune().apply(copy.deepcopy(tiny), {**Prune.params, "method": method, "amount": 0.5}, ctx())
    p0, p1 = (sum(p.numel() for p in m.parameters()) for m in (tiny, pruned))
    f0, f1 = (flops_per_token(m, 128, attention_formula=attention_flops)["flops_per_token"] for m in (tiny, pruned))
    assert p1 < 0.9 * p0 and f1 < 0.85 * f0
    if method == "structured-heads":
        assert [b.attn.heads for b in pruned.blocks] == [2, 2, 2, 2] and pruned.config.layer_heads == (2, 2, 2, 2)
    else:
        assert [b.mlp.fc.out_features for b in pruned.blocks] == [512] * 4
    out = pruned(torch.randint(0, 256, (2, 16)))
    assert out.shape == (2, 16, 256) and torch.isfinite(out).all()
    # the pruned model round-trips through its own config
    rebuilt = type(pruned)(pruned.config)
    rebuilt.load_state_dict(pruned.state_dict())


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_pruning_reports_its_sparsity_exactly(tiny, scope):
    pruned = Prune().apply(copy.deepcopy(tiny), {**Prune.params, "method": "magnitude", "amount": 0.3, "scope": scope}, ctx())
    linears = [m for n, m in pruned.named_modules() if isinstance(m, torch.nn.Linear) and n != "head"]
    zeros = sum(int((m.weight == 0).sum()) for m in linears)
    total = sum(m.weight.numel() for m in linears)
    assert zeros / total == pytest.approx(0.3, abs=1e-3)
    if scope == "layer":
        assert all(float((m.weight == 0).float().mean()) == pytest.approx(0.3, abs=2e-3) for m in linears)
    head = pruned.head.weight
    assert _linear_sparsity(pruned) == pytest.approx((zeros + int((head == 0).sum())) / (total + head.numel()))


def test_recovery_finetune_keeps_pruned_weights_at_zero(tiny):
    params = {**Prune.params, "method": "magnitude", "amount": 0.5, "finetune_steps": 3}
    pruned = Prune().apply(copy.deepcopy(tiny), params, ctx())
    w = pruned.blocks[0].mlp.fc.weight
    assert float((w == 0).float().mean()) > 0.3
    assert not torch.equal(pruned.blocks[0].ln1.weight, tiny.blocks[0].ln1.weight)  # it trained


def test_bad_pruning_parameters_fail_validation(pm):
    text = "name: x\ntechniques:\n  - none\n  - prune: {method: structured-heads, amount: 1.5}\n  - prune: {method: magnitud}\n"
    with pytest.raises(SuiteError) as e:
        parse_suite(text, "s.yaml", pm)
    assert "s.yaml:4: technique 'prune': amount must be in [0, 1), got 1.5" in e.value.lines
    assert any(line.startswith("s.yaml:5:") and "did you mean 'magnitude'" in line for line in e.value.lines)


def _share(tiny, **p):
    from optbench.plugins.share import Share

    return Share().apply(copy.deepcopy(tiny), {**Share.params, **p}, ctx())


def test_cross_layer_sharing_halves_unique_bytes(tiny):
    shared = _share(tiny, method="cross-layer", group=2)
    assert shared.blocks[0] is shared.blocks[1] and shared.blocks[2] is shared.blocks[3]
    blocks = sum(p.numel() * 4 for p in tiny.blocks.parameters())
    assert model_bytes(tiny)["unique_bytes"] - model_bytes(shared)["unique_bytes"] == blocks // 2
    assert serialized_bytes(shared) < 0.6 * serialized_bytes(tiny)


def test_clustering_uses_at_most_2_to_the_k_values_per_layer(tiny, windows):
    clustered = _share(tiny, method="cluster", bits=3)
    layers = [m for m in clustered.modules() if hasattr(m, "codebook")]
    assert len(layers) == 4 * 4 + 1
    assert all(len(torch.unique(m.weight)) <= 8 for m in layers)
    assert all(m.indices.dtype == torch.uint8 for m in layers)
    assert model_bytes(clustered)["unique_bytes"] < 0.35 * model_bytes(tiny)["unique_bytes"]
    assert fidelity(logits_for(tiny, windows), logits_for(clustered, windows)).top1_agreement > 0.5


def test_tied_embeddings_share_one_matrix(tiny):
    tied = _share(tiny, method="tied-embeddings")
    assert tied.head.weight is tied.tok.weight
    assert model_bytes(tiny)["unique_bytes"] - model_bytes(tied)["unique_bytes"] == tiny.head.weight.numel() * 4


def test_bad_sharing_parameters(pm):
    with pytest.raises(SuiteError) as e:
        parse_suite("name: x\ntechniques: [none, {share: {method: cluster, bits: 12}}]\n", "s.yaml", pm)
    assert e.value.lines == ["s.yaml:2: technique 'share': bits must be between 1 and 8 (indices are stored as uint8), got 12"]


def test_distillation_trains_a_smaller_student_and_the_control_never_asks_the_teacher(tiny):
    from optbench.plugins.distill import Distill, train_student

    params = {**Distill.params, "student_depth": 1, "student_width": 64, "student_heads": 2, "steps": 3, "batch": 2, "seq_len": 16}
    student, info = train_student(tiny, params, corpus.split_bytes("train"))
    assert len(student.blocks) == 1 and student.config.width == 64
    assert info["student_params"] == sum(p.numel() for p in student.parameters()) < 0.2 * sum(p.numel() for p in tiny.parameters())
    assert len(info["curve"]) == 3 and all(c["loss"] > 0 for c in info["curve"])

    class NoTeacher(torch.nn.Module):
        config = tiny.config

        def forward(self, x):
            raise AssertionError("the control must not consult the teacher")

    control, _ = train_student(NoTeacher(), {**params, "alpha": 0.0}, corpus.split_bytes("train"))
    again, _ = train_student(NoTeacher(), {**params, "alpha": 0.0}, corpus.split_bytes("train"))
    assert torch.equal(control.head.weight, again.head.weight)  # fixed seed: the same student
    assert not torch.equal(control.head.weight, student.head.weight)  # the teacher changed the training
    assert Distill().label({**params, "alpha": 0.0}) == "student-only-d1w64" and Distill().label(params) == "distill-d1w64"


def test_distilled_student_beats_the_same_student_trained_without_the_teacher(tiny):
    """Issue 5's acceptance test: fixed seed, the default budget, held-out perplexity."""
    from optbench.measure.accuracy import eval_windows, evaluate
    from optbench.plugins.distill import Distill, train_student

    windows = eval_windows(corpus.split_bytes("heldout"), 128, 16384)
    distilled, _ = train_student(tiny, dict(Distill.params), corpus.split_bytes("train"))
    control, _ = train_student(tiny, {**Distill.params, "alpha": 0.0}, corpus.split_bytes("train"))
    ppl_kd, ppl_control = evaluate(distilled, windows).perplexity, evaluate(control, windows).perplexity
    # measured: 14.90 vs 16.46 at seed 0 (seeds 1-3: 5-8% better); a 3% margin is not noise
    assert ppl_kd < 0.97 * ppl_control, (ppl_kd, ppl_control)
