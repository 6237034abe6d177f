"""Tests of the measurement layer: latency statistics, memory, FLOPs, accuracy, corpus, ratios.

Everything here is small and deterministic (seeded data, fake clocks, tiny models) so the
file runs in seconds on a loaded 2-core VM; nothing asserts on wall-clock timings.
"""

from __future__ import annotations

import itertools
import json
import math
import platform
import re
import sys
import time

import numpy as np
import pytest
import torch
from optbench.measure import accuracy, flops, latency, memory
from optbench.models import corpus
from optbench.models.gpt import GPT, GPTConfig, attention_flops
from optbench.reports.summary import fmt_speed, ratio_ci
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# --------------------------------------------------------------------------- helpers


def expected_median_ci_indices(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based indices (lo, hi) of the exact order-statistic interval, computed independently.

    Largest j >= 1 with P(j <= B <= n - j) >= confidence for B ~ Bin(n, 1/2); the interval
    is [x_(j), x_(n-j+1)] in 1-based order statistics.
    """
    from scipy.stats import binom

    best = None
    for j in range(1, n // 2 + 1):
        coverage = binom.cdf(n - j, n, 0.5) - binom.cdf(j - 1, n, 0.5)
        if coverage >= confidence:
            best = j
        else:
            break
    assert best is not None
    return best - 1, n - best


class FakeTimer:
    """A time_call that returns the next value of a list and advances a fake clock by it."""

    def __init__(self, values, repeat_last: bool = True):
        self.values = list(values)
        self.repeat_last = repeat_last
        self.calls = 0
        self.now = 0.0
        self.returned: list[float] = []

    def time_call(self) -> float:
        if self.calls < len(self.values):
            v = self.values[self.calls]
        elif self.repeat_last:
            v = self.values[-1]
        else:
            raise AssertionError("time_call called more often than expected")
        self.calls += 1
        self.now += v
        self.returned.append(v)
        return v

    def clock(self) -> float:
        return self.now


def small_gpt(depth: int = 2, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(depth=depth, width=64, heads=2, max_seq_len=64))
    return model.eval()


# --------------------------------------------------------------------------- 1. median_ci


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_median_ci_small_n_returns_full_range(n):
    xs = [float(10 * i + 3) for i in range(n)]
    assert latency.median_ci(xs) == (xs[0], xs[-1])


def test_median_ci_empty_is_nan():
    lo, hi = latency.median_ci([])
    assert math.isnan(lo) and math.isnan(hi)


def test_median_ci_n100_exact_order_statistics():
    xs = [float(i) for i in range(1, 101)]
    lo, hi = latency.median_ci(xs)
    i_lo, i_hi = expected_median_ci_indices(100)
    # independently: j = 40, i.e. [x_(40), x_(61)] = [40, 61]
    assert (i_lo, i_hi) == (39, 60)
    assert (lo, hi) == (xs[i_lo], xs[i_hi])
    median = latency.percentile(xs, 0.5)
    assert lo < median < hi


@pytest.mark.parametrize("n", [6, 7, 8, 9, 10, 11, 17, 25, 30, 31, 50, 64, 99, 200])
def test_median_ci_matches_exact_binomial_interval(n):
    xs = [float(i) for i in range(1, n + 1)]
    i_lo, i_hi = expected_median_ci_indices(n)
    assert latency.median_ci(xs) == (xs[i_lo], xs[i_hi])


def test_median_ci_coverage_by_simulation():
    rng = np.random.default_rng(1234)
    n, trials, hits = 30, 2000, 0
    true_median = 0.0  # standard normal
    for _ in range(trials):
        xs = sorted(rng.standard_normal(n).tolist())
        lo, hi = latency.median_ci(xs)
        hits += lo <= true_median <= hi
    # exact coverage for n=30 is about 0.957; 2000 trials -> sd about 0.0046
    assert 0.935 <= hits / trials <= 0.98


# --------------------------------------------------------------------------- 2. instability / summarize


def clean_samples(n: int = 100, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return (0.045 * (1 + 0.01 * rng.standard_normal(n))).tolist()


def test_clean_samples_are_stable():
    xs = clean_samples()
    assert latency.instability(xs) == ""
    s = latency.summarize(xs, warmup=4)
    assert s.unstable is False
    assert s.unstable_reason == ""
    assert s.n == 100
    assert s.warmup == 4
    assert s.median == pytest.approx(float(np.median(xs)))
    assert s.min == min(xs)
    assert s.mean == pytest.approx(float(np.mean(xs)))
    assert s.ci95[0] <= s.median <= s.ci95[1]
    assert s.samples == xs  # raw samples kept in their original order
    d = s.to_dict()
    assert d["ci95"] == list(s.ci95)


def test_bimodal_vm_trap_is_flagged_unstable():
    # the measured trap: ~10% of 45 ms forward passes take ~780 ms
    rng = np.random.default_rng(7)
    fast = 0.045 * (1 + 0.01 * rng.standard_normal(90))
    slow = 0.780 * (1 + 0.01 * rng.standard_normal(10))
    xs = np.concatenate([fast, slow])
    rng.shuffle(xs)
    xs = xs.tolist()
    reason = latency.instability(xs)
    assert "bimodal" in reason
    s = latency.summarize(xs)
    assert s.unstable is True
    assert "bimodal" in s.unstable_reason


def test_bimodal_slow_mode_below_p90_is_still_flagged():
    # 8% slow samples leave p90 in the fast mode: only the bimodal sign can catch it
    rng = np.random.default_rng(8)
    xs = (0.045 * (1 + 0.01 * rng.standard_normal(92))).tolist() + [0.78] * 8
    reason = latency.instability(xs)
    assert "bimodal" in reason
    assert "p90" not in reason
    assert latency.summarize(xs).unstable


def test_long_tail_is_flagged():
    # 20% of samples 1.7-1.9x the median: p90 > 1.5x median, nothing over 2x
    rng = np.random.default_rng(9)
    body = (0.045 * (1 + 0.01 * rng.standard_normal(80))).tolist()
    tail = (0.045 * rng.uniform(1.7, 1.9, 20)).tolist()
    xs = body + tail
    med = float(np.median(xs))
    assert latency.percentile(sorted(xs), 0.9) > 1.5 * med
    reason = latency.instability(xs)
    assert "p90" in reason
    assert "bimodal" not in reason
    assert latency.summarize(xs).unstable
    # with a looser ratio the same tail is acceptable
    assert latency.instability(xs, ratio=2.5) == ""


def test_instability_needs_five_samples():
    assert latency.instability([0.045, 0.78, 0.78, 0.045]) == ""


def test_percentile_interpolates():
    xs = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert latency.percentile(xs, 0.5) == 3.0
    assert latency.percentile(xs, 0.9) == pytest.approx(4.6)
    assert latency.percentile([7.0], 0.9) == 7.0


def test_parse_precision():
    assert latency.parse_precision("1%") == pytest.approx(0.01)
    assert latency.parse_precision(0.05) == 0.05
    assert latency.parse_precision(None) is None


# --------------------------------------------------------------------------- 3. measure (fake clock)


def test_measure_respects_min_reps():
    t = FakeTimer([0.5])
    s = latency.measure(t.time_call, warmup=0, min_reps=10, min_time_s=1.0, max_time_s=100.0, clock=t.clock)
    # min_time_s is reached after 2 calls, but min_reps wins
    assert s.n == 10
    assert t.calls == 10
    assert s.warmup == 0


def test_measure_respects_min_time():
    t = FakeTimer([1 / 64])  # exact in binary: 64 calls are exactly 1.0 s
    s = latency.measure(t.time_call, warmup=0, min_reps=10, min_time_s=1.0, max_time_s=100.0, clock=t.clock)
    assert s.n == 64
    assert sum(s.samples) == 1.0


def test_measure_bounded_by_max_time():
    t = FakeTimer([0.25])
    s = latency.measure(t.time_call, warmup=0, min_reps=3, min_time_s=100.0, max_time_s=2.0, clock=t.clock)
    assert s.n == 8  # 8 * 0.25 = 2.0 s = max_time_s


def test_measure_precision_stops_before_min_time_on_quiet_samples():
    rng = np.random.default_rng(3)
    quiet = (0.045 * (1 + 0.0005 * rng.standard_normal(1000))).tolist()
    t = FakeTimer(quiet)
    s = latency.measure(t.time_call, warmup=0, min_reps=10, min_time_s=5.0, max_time_s=30.0,
                        precision="1%", clock=t.clock)
    assert s.n == 10  # first check point at or after min_reps
    assert t.now < 5.0  # stopped well before min_time_s
    half = (s.ci95[1] - s.ci95[0]) / 2
    assert half <= 0.01 * s.median

    # the same samples without a precision target run until min_time_s
    t2 = FakeTimer(quiet)
    s2 = latency.measure(t2.time_call, warmup=0, min_reps=10, min_time_s=5.0, max_time_s=30.0, clock=t2.clock)
    assert t2.now >= 5.0
    assert s2.n > s.n


def test_measure_precision_unreachable_stops_at_max_time():
    noisy = [0.0625, 0.25] * 500  # never within 0.1%
    t = FakeTimer(noisy)
    s = latency.measure(t.time_call, warmup=0, min_reps=10, min_time_s=0.1, max_time_s=8.0,
                        precision=0.001, clock=t.clock)
    assert sum(s.samples) >= 8.0
    assert sum(s.samples[:-1]) < 8.0


def test_measure_fixed_warmup_makes_exactly_that_many_calls():
    # three distinctive warm-up values, then steady calls
    t = FakeTimer([1.0, 2.0, 3.0] + [0.125] * 200)
    s = latency.measure(t.time_call, warmup=3, min_reps=10, min_time_s=1.0, max_time_s=100.0, clock=t.clock)
    assert s.warmup == 3
    assert t.calls == 3 + s.n
    assert t.returned[:3] == [1.0, 2.0, 3.0]
    assert all(x == 0.125 for x in s.samples)  # warm-up calls are not samples
    assert s.n == 10  # min_time measured from after warm-up: 10 * 0.125 >= 1.0


def test_measure_auto_warmup_stops_once_stable():
    t = FakeTimer([0.5, 0.25, 0.125, 0.0625, 0.0625, 0.0625] + [0.0625] * 100)
    s = latency.measure(t.time_call, warmup="auto", min_reps=10, min_time_s=0.5, max_time_s=100.0, clock=t.clock)
    # the last three agree within 10% only at the 6th call
    assert s.warmup == 6
    assert t.calls == 6 + s.n
    assert all(x == 0.0625 for x in s.samples)


def test_measure_auto_warmup_minimum_three_calls():
    t = FakeTimer([0.0625])
    s = latency.measure(t.time_call, warmup="auto", min_reps=10, min_time_s=0.1, max_time_s=100.0, clock=t.clock)
    assert s.warmup == 3


def test_measure_auto_warmup_capped_at_50_calls():
    t = FakeTimer([0.001, 0.002] * 200)  # never stable
    s = latency.measure(t.time_call, warmup="auto", min_reps=10, min_time_s=0.0, max_time_s=1000.0, clock=t.clock)
    assert s.warmup == 50
    assert t.calls == 50 + s.n


def test_alternate_times_the_two_calls_in_turns_of_one_block_and_gives_their_ratio():
    now = [0.0]
    order: list[str] = []

    def call(name, seconds):
        def f():
            now[0] += seconds
            order.append(name)
            return seconds
        return f

    out = latency.alternate(call("base", 0.010), call("model", 0.0115), total_s=0.5, block_s=0.05, clock=lambda: now[0])
    assert out["ratio"] == pytest.approx(1.15) and out["base_median"] == pytest.approx(0.010)
    # a warm-up block of each, then blocks in turns: base x5, model x5 (0.05 s each), base x5...
    runs = [(k, len(list(g))) for k, g in itertools.groupby(order)]
    assert [k for k, _ in runs] == ["base", "model"] * (len(runs) // 2) and len(runs) % 2 == 0
    assert all(n == 5 for k, n in runs if k == "base") and all(n == 5 for k, n in runs if k == "model")
    assert out["blocks"] == len(runs) // 2 - 1 == 5  # 5 turns of 0.05 + 0.0575 s: the first past 0.5 s
    assert out["n"] == [5 * out["blocks"]] * 2
    # a call longer than a block: one call a block, and at least min_blocks of each
    slow = latency.alternate(call("base", 0.2), call("model", 0.1), total_s=0.0, block_s=0.05, min_blocks=4, clock=lambda: now[0])
    assert slow["n"] == [4, 4] and slow["ratio"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- 4. memory


def test_tensor_bytes_plain():
    assert memory.tensor_bytes(torch.zeros(10, 3)) == 120
    assert memory.tensor_bytes(torch.zeros(10, dtype=torch.int8)) == 10
    assert memory.tensor_bytes(nn.Parameter(torch.zeros(4, 4, dtype=torch.float16))) == 32


def test_int8_weight_only_quantization_bytes_trap():
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 256))
    before = memory.model_bytes(model)
    ser_before = memory.serialized_bytes(model)
    n_params = sum(p.numel() for p in model.parameters())
    assert before["param_bytes"] == 4 * n_params
    assert before["unique_bytes"] == before["param_bytes"]

    quantize_(model, Int8WeightOnlyConfig())

    w = model[0].weight
    assert type(w) not in (torch.Tensor, nn.Parameter)  # a torchao tensor subclass
    # the trap: the subclass still claims float32 with 4 bytes per element
    assert w.element_size() == 4
    naive = sum(p.numel() * p.element_size() for p in model.parameters())
    assert naive == before["param_bytes"]

    after = memory.model_bytes(model)
    assert after["param_bytes"] * 3 < before["param_bytes"]
    assert after["unique_bytes"] == after["param_bytes"]
    # int8 weights: at least one byte per weight element
    assert memory.tensor_bytes(w) >= w.numel()
    assert memory.serialized_bytes(model) * 3 < ser_before


def test_shared_parameters_counted_once_in_unique_bytes():
    lin = nn.Linear(8, 8)  # 64 + 8 floats = 288 bytes
    model = nn.Sequential(lin, nn.ReLU(), lin)
    b = memory.model_bytes(model)
    assert b["param_bytes"] == 2 * 288
    assert b["unique_bytes"] == 288


def test_tied_embedding_counted_once():
    gpt = small_gpt()
    untied = memory.model_bytes(gpt)["unique_bytes"]
    gpt.head.weight = gpt.tok.weight  # weight tying, as in GPT-2
    b = memory.model_bytes(gpt)
    assert b["unique_bytes"] == untied - 256 * 64 * 4
    assert b["param_bytes"] == untied  # counted by every name


def test_buffers_counted():
    m = nn.BatchNorm1d(16)
    b = memory.model_bytes(m)
    assert b["param_bytes"] == 2 * 16 * 4
    assert b["buffer_bytes"] == 16 * 4 * 2 + 8  # running mean/var + int64 num_batches_tracked
    assert b["unique_bytes"] == b["param_bytes"] + b["buffer_bytes"]


# --------------------------------------------------------------------------- 5. flops


def _raw_counter_flops(model: nn.Module, seq_len: int) -> tuple[int, dict]:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, seq_len, dtype=torch.long))
    return fc.get_total_flops(), fc.get_flop_counts().get("Global", {})


def test_flop_counter_misses_cpu_sdpa_and_formula_adds_it():
    model = small_gpt(depth=2)
    seq = 32
    raw, counts = _raw_counter_flops(model, seq)
    assert not any("scaled_dot_product" in str(k) for k in counts)
    attn = attention_flops(model, 1, seq)
    assert attn == 2 * 2 * (2 * 2 * seq * seq * 32)  # 2 layers, 2 heads, head_dim 32
    linear = sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear)) * seq
    assert raw == linear  # the counter sees only the Linear matmuls

    r = flops.flops_per_token(model, seq, attention_formula=attention_flops)
    # the raw counter alone falls short of the full count (trap c)
    assert raw < r["flops_per_token"] * seq
    assert r["flops_per_token"] * seq == raw + attn
    assert "attention" in r["notes"]

    no_formula = flops.flops_per_token(model, seq)
    assert no_formula["flops_per_token"] * seq == raw


def test_flops_per_token_grows_with_depth():
    seq = 32
    f2 = flops.flops_per_token(small_gpt(depth=2), seq, attention_formula=attention_flops)["flops_per_token"]
    f4 = flops.flops_per_token(small_gpt(depth=4), seq, attention_formula=attention_flops)["flops_per_token"]
    assert f2 < f4


# --------------------------------------------------------------------------- 6. accuracy


SEQ = 32


@pytest.fixture(scope="module")
def heldout() -> bytes:
    return corpus.split_bytes("heldout")


@pytest.fixture(scope="module")
def windows(heldout) -> torch.Tensor:
    return accuracy.eval_windows(heldout, SEQ, max_tokens=1024)


def test_eval_windows_shape_and_no_overlap(heldout, windows):
    assert windows.shape == (1024 // SEQ, SEQ + 1)
    assert windows.dtype == torch.long
    data = list(heldout)
    for i, w in enumerate(windows.tolist()):
        assert w == data[i * SEQ : i * SEQ + SEQ + 1]
    # inputs are disjoint, and each byte is scored as a target exactly once
    targets = [(i * SEQ + 1, i * SEQ + SEQ) for i in range(len(windows))]
    for (_a_lo, a_hi), (b_lo, _b_hi) in zip(targets, targets[1:], strict=False):
        assert b_lo == a_hi + 1
    inputs = [set(range(i * SEQ, i * SEQ + SEQ)) for i in range(len(windows))]
    assert sum(len(s) for s in inputs) == len(set().union(*inputs))


def test_eval_windows_deterministic_and_limits():
    text = bytes(range(100))
    w = accuracy.eval_windows(text, 10)
    assert w.shape == (9, 11)  # (100 - 1) // 10
    assert torch.equal(w, accuracy.eval_windows(text, 10))
    assert accuracy.eval_windows(text, 10, max_tokens=5).shape == (1, 11)
    with pytest.raises(ValueError):
        accuracy.eval_windows(b"abc", 10)


def test_evaluate_independent_of_batch_size(windows):
    model = small_gpt(seed=123)
    r1 = accuracy.evaluate(model, windows, batch_size=1)
    r8 = accuracy.evaluate(model, windows, batch_size=8)
    r5 = accuracy.evaluate(model, windows, batch_size=5)  # ragged last batch
    assert r1.tokens == r8.tokens == r5.tokens == 1024
    assert r8.perplexity == pytest.approx(r1.perplexity, rel=1e-6)
    assert r5.perplexity == pytest.approx(r1.perplexity, rel=1e-6)
    assert r1.top1 == r8.top1
    assert math.isfinite(r1.perplexity) and r1.perplexity > 1
    assert r1.perplexity == pytest.approx(math.exp(r1.nll))
    # an untrained byte model is close to uniform over 256 bytes
    assert 100 < r1.perplexity < 700


def test_evaluate_matches_direct_cross_entropy(windows):
    model = small_gpt(seed=5)
    r = accuracy.evaluate(model, windows, batch_size=8)
    with torch.no_grad():
        logits = model(windows[:, :-1])
        ce = nn.functional.cross_entropy(logits.reshape(-1, 256).double(), windows[:, 1:].reshape(-1))
    assert r.nll == pytest.approx(ce.item(), rel=1e-6)


def test_fidelity_identical_and_perturbed(windows):
    model = small_gpt(seed=1)
    logits = accuracy.logits_for(model, windows[:8], batch_size=4)
    assert logits.shape == (8, SEQ, 256)
    same = accuracy.fidelity(logits, logits.clone())
    assert same.kl == 0.0
    assert same.top1_agreement == 1.0

    g = torch.Generator().manual_seed(0)
    perturbed = logits + 0.5 * torch.randn(logits.shape, generator=g)
    diff = accuracy.fidelity(logits, perturbed)
    assert diff.kl > 0
    assert 0.0 <= diff.top1_agreement <= 1.0
    far = accuracy.fidelity(logits, logits + 3.0 * torch.randn(logits.shape, generator=g))
    assert far.kl > diff.kl


def test_bigram_perplexity_bounds(heldout):
    train = corpus.split_bytes("train")
    for k in (0.01, 0.5, 1.0):
        ppl = accuracy.bigram_perplexity(train, heldout, k)
        assert math.isfinite(ppl)
        assert 1 < ppl < 256
    # fitting on the test text itself is better than on other text
    assert accuracy.bigram_perplexity(heldout, heldout, 0.01) < accuracy.bigram_perplexity(train, heldout, 0.01)


# --------------------------------------------------------------------------- 7. corpus


def test_corpus_documents_and_splits():
    docs = corpus.documents()
    assert len(docs) == 79
    names = {s: corpus.split_names(s) for s in corpus.SPLITS}
    sets = {s: set(v) for s, v in names.items()}
    assert sets["train"].isdisjoint(sets["validation"])
    assert sets["train"].isdisjoint(sets["heldout"])
    assert sets["validation"].isdisjoint(sets["heldout"])
    assert sets["train"] | sets["validation"] | sets["heldout"] == set(docs)
    assert sum(len(v) for v in names.values()) == len(docs)
    assert names["heldout"]
    assert len(corpus.split_bytes("heldout")) > 0
    for n in names["heldout"]:
        assert corpus.split_of(n) == "heldout"
    # held-out text contains its own documents and none of the training ones
    held = corpus.split_bytes("heldout")
    assert docs[names["heldout"][0]].encode() in held
    with pytest.raises(corpus.CorpusError):
        corpus.split_bytes("test")


def test_corpus_sha256_is_verified(monkeypatch):
    corpus.documents.cache_clear()
    try:
        monkeypatch.setattr(corpus, "CORPUS_SHA256", "0" * 64)
        with pytest.raises(corpus.CorpusError, match="sha256"):
            corpus.documents()
    finally:
        monkeypatch.undo()
        corpus.documents.cache_clear()
    assert len(corpus.documents()) == 79


# --------------------------------------------------------------------------- 8. ratio_ci / fmt_speed


def _timings(center: float, n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return (center * (1 + 0.01 * rng.standard_normal(n))).tolist()


def test_ratio_ci_twice_as_slow():
    base = _timings(0.090, 30, 1)
    other = _timings(0.045, 30, 2)
    point, lo, hi = ratio_ci(base, other)
    assert point == pytest.approx(np.median(base) / np.median(other))
    assert point == pytest.approx(2.0, rel=0.02)
    assert lo <= 2.0 <= hi
    assert lo <= point <= hi
    assert ratio_ci(base, other) == (point, lo, hi)  # seeded bootstrap


def test_ratio_ci_too_few_samples_has_no_interval():
    point, lo, hi = ratio_ci([2.0, 2.0], [1.0, 1.0])
    assert point == 2.0
    assert math.isnan(lo) and math.isnan(hi)


def test_fmt_speed_slower_interval_same_direction():
    base = _timings(0.045, 30, 3)
    other = _timings(0.090, 30, 4)
    s = ratio_ci(base, other)
    assert s[0] < 1
    text = fmt_speed(s)
    m = re.fullmatch(r"([\d.]+)x slower \[([\d.]+), ([\d.]+)\]", text)
    assert m, text
    factor, a, b = (float(g) for g in m.groups())
    assert factor == pytest.approx(1 / s[0], abs=0.005)
    assert 1 <= a <= b
    assert a <= factor + 0.005 and factor - 0.005 <= b


def test_fmt_speed_faster_and_missing():
    assert fmt_speed(None) == "n/a"
    assert fmt_speed((1.5, 1.25, 1.75)) == "1.50x faster [1.25, 1.75]"
    assert fmt_speed((0.5, 0.4, 0.625)) == "2.00x slower [1.60, 2.50]"
    assert fmt_speed((2.0, float("nan"), float("nan"))) == "2.00x faster"


# --- the cell processes' allocator ----------------------------------------------------------

ALLOCATOR_SUITE = """
workload: {{kind: forward, batch: 8, seq_len: 128}}
measure: {{metrics: [latency]}}
techniques: [none]
allocator: {allocator}
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="the allocator setting is glibc's (MALLOC_* variables)")
def test_steady_allocator_takes_page_faults_out_of_the_timed_loop(tmp_path):
    """glibc's defaults return each forward pass's activation buffers to the OS, and the next pass
    faults them in again (thousands of faults per pass at batch 8); ``allocator: steady``, the
    default, keeps them in the heap, and the run's fingerprint records the setting."""
    from optbench.testing import run_suite_yaml

    faults, env = {}, {}
    for allocator in ("steady", "system"):
        out = run_suite_yaml(ALLOCATOR_SUITE.format(allocator=allocator), tmp_path / allocator)
        (row,) = out.rows
        assert row["status"] == "ok", row["reason"]
        faults[allocator] = row["metrics"]["latency"]["page_faults_per_rep"]
        env[allocator] = json.loads((tmp_path / allocator / "run.json").read_text())["environment"]
    # steady: the few faults left are the heap's first growth inside the short warm-up (0-60 seen,
    # 206-411 on a later VM host); a heap that hands the buffers back faults ~4,000-5,000 times a
    # pass. glibc's defaults do that or not depending on what the process freed earlier (its mmap
    # threshold rises when a large chunk is freed): 0.6, 206 and 5,002 per pass seen on one day,
    # so only the steady setting's bound is asserted
    assert faults["steady"] < 1000, faults
    assert env["steady"]["omp"]["MALLOC_TRIM_THRESHOLD_"] == str(1 << 30)
    assert "MALLOC_TRIM_THRESHOLD_" not in env["system"]["omp"]
    assert env["steady"]["id"] != env["system"]["id"]  # compare calls the two runs not comparable


def test_settle_waits_for_the_state_and_gives_up_at_the_deadline():
    now = [0.0]
    probes = iter([210e-6, 205e-6, 176e-6, 300e-6])
    probe, waited, back = latency.settle(170e-6, deadline=10.0, clock=lambda: now[0],
                                         sleep=lambda s: now.__setitem__(0, now[0] + s), take_probe=lambda: next(probes))
    assert (probe, waited, back) == (176e-6, 0.5, True)  # 176 us is within 4% of 170: two pauses, then in the state
    assert latency.in_state(150e-6, 170e-6)  # a faster state is no reason to wait

    now[0] = 0.0
    probe, waited, back = latency.settle(170e-6, deadline=1.0, probe=250e-6, clock=lambda: now[0],
                                         sleep=lambda s: now.__setitem__(0, now[0] + s), take_probe=lambda: 250e-6)
    assert (probe, waited, back) == (250e-6, 1.0, False)  # never came back: gives up at the deadline

    # also: the probe is in the state but the cell's own latency is not back yet (a neighbour the
    # probe cannot see); asked only once the probe is in, until it says yes
    now[0] = 0.0
    asked = iter([False, False, True])  # a fourth question would raise StopIteration: it is asked once per probe
    probe, waited, back = latency.settle(170e-6, deadline=10.0, probe=171e-6, clock=lambda: now[0],
                                         sleep=lambda s: now.__setitem__(0, now[0] + s), take_probe=lambda: 172e-6,
                                         also=lambda: next(asked))
    assert (probe, waited, back) == (172e-6, 0.5, True)


def _latency_ctx(state_level, settle_s):
    from types import SimpleNamespace

    def time_call(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    measure = {"warmup": 0, "min_reps": 3, "min_time_s": 0.0, "max_time_s": 1.0, "precision": None,
               "unstable_ratio": 1.5, "settle_s": settle_s}
    return SimpleNamespace(workload={"batch": 1, "seq_len": 4}, measure=measure, seed=0, device="cpu",
                           model=nn.Embedding(256, 4), backend=SimpleNamespace(time_call=time_call), shared={},
                           cell={"state_level": state_level})


def test_latency_times_again_when_the_probe_after_timing_left_the_cells_state(monkeypatch):
    from optbench.plugins.metrics import Latency

    # before timing 172 us (in the state of 170), after it 200 us (left it), then 171 and 172
    probes = iter([172e-6, 200e-6, 171e-6, 172e-6])
    monkeypatch.setattr(latency, "speed_probe", lambda: next(probes))
    lat = Latency().measure(_latency_ctx(170e-6, 5.0))["latency"]
    assert lat["speed_probe_s"] == [171e-6, 172e-6]
    assert [a["speed_probe_s"] for a in lat["settle"]["set_aside"]] == [[172e-6, 200e-6]]
    assert lat["settle"]["level"] == 170e-6

    # settle_s 0 (the default): timed once, whatever the probes say
    probes = iter([172e-6, 200e-6])
    lat = Latency().measure(_latency_ctx(170e-6, 0))["latency"]
    assert lat["speed_probe_s"] == [172e-6, 200e-6] and "settle" not in lat

    # the state does not come back before the deadline: the first timing stands
    probes = iter([172e-6, 200e-6] + [210e-6] * 1000)
    lat = Latency().measure(_latency_ctx(170e-6, 0.3))["latency"]
    assert lat["speed_probe_s"] == [172e-6, 200e-6] and lat["settle"]["set_aside"] == []
    assert lat["settle"]["waited_s"] >= 0.25
