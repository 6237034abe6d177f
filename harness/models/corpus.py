"""The reference corpus: English text from CPython's pydoc_data topics, committed once.

The JSON file beside this module was extracted from ``pydoc_data.topics`` a single time
and is checked against :data:`CORPUS_SHA256` on load, so results never depend on the
local Python version. It is split into train / validation / held-out *by document*, so
held-out text shares no document with what the models were trained on.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache, lru_cache
from importlib import resources

CORPUS_FILE = "pydoc_corpus.json"
CORPUS_SHA256 = "2d0a8eb58107ef7a649ef3e5d93729ad0aa96748ba4f2e807f91289ffc3dcbdd"
SPLITS = ("train", "validation", "heldout")


class CorpusError(RuntimeError):
    pass


@lru_cache(maxsize=1)
def documents() -> dict[str, str]:
    blob = resources.files("optbench.models").joinpath("data", CORPUS_FILE).read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != CORPUS_SHA256:
        raise CorpusError(f"{CORPUS_FILE}: sha256 {digest[:12]} does not match the committed {CORPUS_SHA256[:12]}")
    return json.loads(blob)["documents"]


def split_of(name: str) -> str:
    """Deterministic document-level split (about 80 / 10 / 10) from a hash of the name."""
    bucket = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10
    return "heldout" if bucket == 0 else "validation" if bucket == 1 else "train"


@cache
def split_bytes(split: str) -> bytes:
    if split not in SPLITS:
        raise CorpusError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    docs = documents()
    return b"\n\n".join(docs[n].encode("utf-8") for n in sorted(docs) if split_of(n) == split)


def as_tokens(text: bytes):
    """Byte-level tokens (the reference vocabulary is the 256 byte values) as an int64 tensor."""
    import torch

    return torch.frombuffer(bytearray(text), dtype=torch.uint8).long()


def batches(tokens, batch: int, seq_len: int, g):
    """Endless training batches ``(inputs, next-token targets)`` of random windows drawn with ``g``."""
    import torch

    while True:
        ix = torch.randint(len(tokens) - seq_len - 1, (batch,), generator=g)
        w = torch.stack([tokens[i : i + seq_len + 1] for i in ix.tolist()])
        yield w[:, :-1], w[:, 1:]


def split_names(split: str) -> list[str]:
    return [n for n in sorted(documents()) if split_of(n) == split]
