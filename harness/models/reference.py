"""Build, store and load the reference checkpoints.

``optbench models build`` trains a size deterministically (fixed seeds, fixed thread
count, data order from a seeded generator), records the loss curve, the held-out
perplexity next to an add-k bigram baseline on the same split, and a content hash of the
weights. The tiny checkpoint ships inside the package; other sizes are cached under the
user's cache directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..measure import accuracy
from . import corpus
from .gpt import GPT, GPTConfig
from .paths import SHIPPED, cache_dir, checkpoint_path, shipped_path

SIZES: dict[str, GPTConfig] = {
    "tiny": GPTConfig(depth=4, width=256, heads=4),
    "small": GPTConfig(depth=6, width=384, heads=6),
    "base": GPTConfig(depth=8, width=512, heads=8),
}
# The recipe is part of what a checkpoint is: changing it changes every cell key.
RECIPES: dict[str, dict[str, Any]] = {
    "tiny": {"steps": 1200, "batch": 32, "seq_len": 128, "lr": 3e-3, "warmup": 100, "seed": 1234, "threads": 2},
    "small": {"steps": 2000, "batch": 32, "seq_len": 128, "lr": 2e-3, "warmup": 100, "seed": 1234, "threads": 2},
    "base": {"steps": 3000, "batch": 32, "seq_len": 128, "lr": 1e-3, "warmup": 200, "seed": 1234, "threads": 2},
}
EVAL_SEQ_LEN = 128


class ModelNotBuilt(FileNotFoundError):
    pass


def state_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """Content hash of weights: names, dtypes, shapes and bytes (not the zip container)."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load(size: str = "tiny", overrides: dict[str, Any] | None = None) -> tuple[GPT, dict[str, Any]]:
    """Load a trained size; with structural overrides, a freshly initialised model instead.

    Returns the float32 model and its metadata (config, checkpoint hash, recipe).
    """
    if size not in SIZES:
        raise KeyError(size)
    if overrides:
        cfg = replace(SIZES[size], **overrides)
        model = GPT(cfg)
        g = torch.Generator().manual_seed(RECIPES[size]["seed"])
        model.init_weights(g)
        return model, {"config": cfg.to_dict(), "checkpoint": None, "hash": "init:" + state_hash(model.state_dict())[:16], "trained": False}
    path = checkpoint_path(size)
    if not path.exists():
        raise ModelNotBuilt(f"reference model {size!r} is not built yet: run `optbench models build --size {size}`")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    cfg = GPTConfig.from_dict(blob["config"])
    model = GPT(cfg)
    model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    meta = dict(blob["meta"])
    meta.update(config=cfg.to_dict(), checkpoint=str(path), hash=blob["hash"], trained=True)
    return model, meta


def train(
    config: GPTConfig,
    steps: int,
    batch: int = 32,
    seq_len: int = 128,
    lr: float = 3e-3,
    warmup: int = 100,
    seed: int = 1234,
    threads: int | None = 2,
    eval_every: int = 100,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[GPT, dict[str, Any]]:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = GPT(config)
    model.init_weights(g)
    data = corpus.as_tokens(corpus.split_bytes("train"))
    val = accuracy.eval_windows(corpus.split_bytes("validation"), EVAL_SEQ_LEN, max_tokens=16384)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    curve: list[dict[str, float]] = []
    t0 = time.perf_counter()
    it = corpus.batches(data, batch, seq_len, g)
    for step in range(1, steps + 1):
        model.train()
        x, y = next(it)
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            v = accuracy.evaluate(model, val)
            curve.append({"step": step, "train_loss": round(loss.item(), 5), "val_loss": round(v.nll, 5), "seconds": round(time.perf_counter() - t0, 2)})
            log(f"step {step:5d}  train loss {loss.item():.4f}  val loss {v.nll:.4f}  ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    return model, {"curve": curve, "train_seconds": round(time.perf_counter() - t0, 1)}


def build(size: str, steps: int | None = None, out: Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``size`` with its recipe, write the checkpoint (fp16 weights) and a JSON card."""
    recipe = dict(RECIPES[size])
    if steps is not None:
        recipe["steps"] = steps
    model, info = train(SIZES[size], log=log, **recipe)
    # Stored in fp16 to keep the shipped file small; every consumer loads exactly these
    # rounded weights, so the hash below identifies what is measured.
    sd = {k: v.detach().half() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    held = corpus.split_bytes("heldout")
    acc = accuracy.evaluate(model, accuracy.eval_windows(held, EVAL_SEQ_LEN))
    # the same subset suites evaluate by default, so the card and reports can be compared
    acc16k = accuracy.evaluate(model, accuracy.eval_windows(held, EVAL_SEQ_LEN, max_tokens=16384))
    train_text, val_text = corpus.split_bytes("train"), corpus.split_bytes("validation")
    # add-k chosen on validation so the baseline is as strong as a bigram gets
    best_k = min((0.01, 0.03, 0.1, 0.3, 1.0), key=lambda k: accuracy.bigram_perplexity(train_text, val_text, k))
    bigram = accuracy.bigram_perplexity(train_text, held[: acc.tokens + 1], best_k)
    meta = {
        "size": size,
        "recipe": recipe,
        "params": sum(p.numel() for p in model.parameters()),
        "heldout_perplexity": round(acc.perplexity, 4),
        "heldout_top1": round(acc.top1, 4),
        "heldout16k_perplexity": round(acc16k.perplexity, 4),
        "bigram_heldout_perplexity": round(bigram, 4),
        "bigram_k": best_k,
        "torch": str(torch.__version__),
        **info,
    }
    digest = state_hash(sd)
    out = out or (shipped_path(size) if size in SHIPPED else cache_dir() / f"{size}.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": SIZES[size].to_dict(), "state_dict": sd, "meta": meta, "hash": digest}, out)
    out.with_suffix(".json").write_text(json.dumps({**meta, "hash": digest}, indent=1) + "\n")
    return {**meta, "hash": digest, "path": str(out)}
