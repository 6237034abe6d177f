"""The reference model family and the pydoc-text corpus (DESIGN §6)."""

from __future__ import annotations

from optbench import Dataset, ModelSource, hookimpl

STRUCTURE_KEYS = ("depth", "width", "heads", "ffn_ratio")


class ReferenceModels(ModelSource):
    name = "reference"
    description = "byte-level GPT decoders built by `optbench models build` (tiny ships with optbench)"
    # None means "as the size defines it"; any override gives a freshly initialised model
    params = {"size": "tiny", "depth": None, "width": None, "heads": None, "ffn_ratio": None}
    choices = {"size": ["tiny", "small", "base"]}

    def validate(self, params):
        problems = []
        for k in ("depth", "width", "heads"):
            v = params.get(k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                problems.append(f"{k} must be a positive integer, got {v!r}")
        r = params.get("ffn_ratio")
        if r is not None and (not isinstance(r, (int, float)) or r <= 0):
            problems.append(f"ffn_ratio must be a positive number, got {r!r}")
        return problems

    def _overrides(self, params):
        return {k: params[k] for k in STRUCTURE_KEYS if params.get(k) is not None}

    def fingerprint(self, params):
        from optbench.models import paths

        if self._overrides(params):
            return "init:seed"  # untrained, deterministic from the config (which is in the key)
        card = paths.card(params["size"])
        return card["hash"] if card else "unbuilt"

    def load(self, params, ctx):
        from optbench.models import reference

        return reference.load(params["size"], self._overrides(params))


class PydocText(Dataset):
    name = "pydoc-text"
    description = "English text from CPython's pydoc topics (79 documents, split by document)"

    def load(self, split):
        from optbench.models import corpus

        return corpus.split_bytes(split)


@hookimpl
def optbench_register_models(register):
    register(ReferenceModels())


@hookimpl
def optbench_register_datasets(register):
    register(PydocText())
