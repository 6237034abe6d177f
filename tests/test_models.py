"""Reference models: deterministic builds, the shipped checkpoint, held-out quality vs a bigram."""

from __future__ import annotations

import pytest
import torch
from helpers import cli
from optbench.measure import accuracy
from optbench.models import corpus, paths, reference
from optbench.models.gpt import GPT, GPTConfig

MICRO = GPTConfig(depth=1, width=32, heads=2, max_seq_len=128)  # validation windows are 128 long


def test_training_is_deterministic():
    a, _ = reference.train(MICRO, steps=3, batch=4, seq_len=16, warmup=1, eval_every=3, threads=1)
    b, _ = reference.train(MICRO, steps=3, batch=4, seq_len=16, warmup=1, eval_every=3, threads=1)
    c, _ = reference.train(MICRO, steps=3, batch=4, seq_len=16, warmup=1, eval_every=3, threads=1, seed=7)
    assert reference.state_hash(a.state_dict()) == reference.state_hash(b.state_dict())
    assert reference.state_hash(a.state_dict()) != reference.state_hash(c.state_dict())


def test_structure_overrides_change_the_model():
    m, meta = reference.load("tiny", {"depth": 2, "width": 128, "heads": 8, "ffn_ratio": 2.0})
    assert len(m.blocks) == 2 and m.config.width == 128 and m.blocks[0].attn.heads == 8
    assert m.blocks[0].mlp.fc.out_features == 256
    assert meta["trained"] is False
    with pytest.raises(ValueError, match="divisible"):
        GPT(GPTConfig(width=100, heads=3))


def test_shipped_tiny_checkpoint_beats_bigram_on_heldout():
    card = paths.card("tiny")
    assert card is not None, "the tiny checkpoint must ship with optbench"
    assert paths.checkpoint_path("tiny").stat().st_size < 8 * 2**20
    model, meta = reference.load("tiny")
    assert meta["hash"] == card["hash"] == reference.state_hash({k: v.half() for k, v in model.state_dict().items()})
    assert 3.0e6 < sum(p.numel() for p in model.parameters()) < 3.6e6
    torch.set_num_threads(2)
    held = corpus.split_bytes("heldout")
    ppl = accuracy.evaluate(model, accuracy.eval_windows(held, reference.EVAL_SEQ_LEN)).perplexity
    bigram = accuracy.bigram_perplexity(corpus.split_bytes("train"), held, card["bigram_k"])
    print(f"tiny held-out perplexity {ppl:.3f} vs bigram {bigram:.3f}")
    assert ppl == pytest.approx(card["heldout_perplexity"], rel=1e-4)
    assert ppl < 0.6 * bigram  # "clearly beats"


def test_models_build_cli_writes_a_card(tmp_path):
    out = cli("models", "build", "--size", "tiny", "--steps", "2", "-o", str(tmp_path / "t.pt"))
    assert out.returncode == 0, out.stderr
    assert "held-out perplexity" in out.stdout and "vs bigram baseline" in out.stdout
    card = (tmp_path / "t.json").read_text()
    assert '"hash"' in card and '"curve"' in card


def test_unbuilt_size_gives_one_line(tmp_path):
    out = cli("models", "list", env_extra={"OPTBENCH_CACHE": str(tmp_path)})
    assert out.returncode == 0 and "small" in out.stdout and "not built" in out.stdout
