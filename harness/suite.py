"""YAML suites: load with line numbers, validate before anything runs, expand to cells.

Every problem is reported as one line ``FILE:LINE: message``. The structure is checked
against a JSON Schema built by :func:`json_schema` (the same schema is exported for
editors, with every installed technique's parameters); names of plugins are then checked
against the registries with "did you mean".
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import SuiteError
from .manager import PluginManager, did_you_mean
from .training import DEFAULT_OPTIMIZER, OPTIMIZERS, TRAIN_BATCH, TRAIN_DEFAULTS, TRAIN_ONLY_KEYS, TRAIN_SEQ_LEN, is_optimizer

SCHEMA_VERSION = 1
WORKLOAD_KINDS = ("forward", "train")
DEFAULT_METRICS = ["latency", "memory", "cost", "accuracy", "fidelity"]
# a train cell measures its own loss, perplexity, parameters and FLOPs; these add inference
# latency and top-1 accuracy of the trained model, and memory (fidelity compares with an
# untrained copy, which means nothing for training)
TRAIN_DEFAULT_METRICS = ["latency", "memory", "accuracy"]
MEASURE_DEFAULTS: dict[str, Any] = {
    "warmup": "auto",
    "min_reps": 10,
    "min_time_s": 1.0,
    "max_time_s": 30.0,
    "precision": None,
    "metrics": DEFAULT_METRICS,
    "eval_tokens": 16384,  # the first 128 windows of 128 tokens; null for the whole split
    "eval_seq_len": 128,
    "unstable_ratio": 1.5,
}


def _int_or_list(minimum: int = 1) -> dict:
    item = {"type": "integer", "minimum": minimum}
    return {"oneOf": [item, {"type": "array", "items": item, "minItems": 1}]}


def _param_schema(default: Any, choices: list[Any] | None) -> dict:
    if choices:
        one = {"enum": list(choices)}
    elif isinstance(default, bool):
        one = {"type": "boolean"}
    elif isinstance(default, int):
        one = {"type": "integer"}
    elif isinstance(default, float):
        one = {"type": "number"}
    elif isinstance(default, str):
        one = {"type": "string"}
    elif isinstance(default, list):
        return {"type": "array"}
    else:
        return {}
    return {"oneOf": [one, {"type": "array", "items": one, "minItems": 1}]}


def json_schema(pm: PluginManager | None = None) -> dict:
    """The suite JSON Schema; with a plugin manager, technique params are typed too."""
    technique_item: dict[str, Any] = {
        "oneOf": [
            {"type": "string"},
            {"type": "object", "minProperties": 1, "maxProperties": 1,
             "additionalProperties": {"type": ["object", "null"]}},
        ]
    }
    if pm is not None:
        variants = []
        for t in pm.techniques():
            props = {k: _param_schema(v, t.choices.get(k)) for k, v in t.params.items()}
            variants.append({"type": "object", "description": t.description, "additionalProperties": False,
                             "properties": {t.name: {"type": ["object", "null"], "additionalProperties": False, "properties": props}},
                             "required": [t.name]})
        names = pm.techniques().names()
        technique_item = {"oneOf": [{"enum": names}, *variants]} if names else technique_item
    model = {
        "type": "object",
        "properties": {"source": {"type": "string"}},
        "additionalProperties": True,
        "description": "model source and its parameters, e.g. {source: reference, size: tiny, depth: [2, 4]}",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://optbench.dev/schema/suite-v1.json",
        "title": "optbench suite",
        "type": "object",
        "required": ["name", "techniques"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
            "description": {"type": "string"},
            "question": {"type": "string", "description": "the question the suite answers (shown first in reports)"},
            "model": {"oneOf": [model, {"type": "array", "items": model, "minItems": 1}]},
            "data": {
                "type": "object", "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "split": {"enum": ["train", "validation", "heldout"]}},
            },
            "backend": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
            "threads": {"type": ["integer", "null"], "minimum": 1, "description": "torch intra-op threads per cell (recorded)"},
            "env": {"type": "object", "additionalProperties": {"type": ["string", "number"]},
                    "description": "environment for cell processes, e.g. OMP_WAIT_POLICY: passive"},
            "allocator": {"enum": ["steady", "system"],
                          "description": "glibc malloc in cell processes: steady (default: no page faults in the timed loop) or system (glibc's defaults)"},
            "seed": {"type": "integer", "minimum": 0},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "seconds per cell before it is killed"},
            "workload": {
                "type": "object", "additionalProperties": False,
                "properties": {
                    "kind": {"enum": list(WORKLOAD_KINDS)}, "batch": _int_or_list(), "seq_len": _int_or_list(),
                    # kind: train only
                    "steps": {"type": "integer", "minimum": 1, "description": "train: optimizer steps, the budget of every cell (default 200)"},
                    "seconds": {"type": ["number", "null"], "exclusiveMinimum": 0,
                                "description": "train: also stop once this much training time has passed"},
                    "target_loss": {"type": ["number", "null"], "exclusiveMinimum": 0,
                                    "description": "train: held-out loss (nats/token) for steps_to_target and seconds_to_target"},
                    "eval_every": {"type": ["integer", "null"], "minimum": 1, "description": "train: held-out evaluation interval (default steps // 10)"},
                    "divergence_factor": {"type": "number", "exclusiveMinimum": 1,
                                          "description": "train: stop as diverged once the loss exceeds this multiple of its starting value (default 3)"},
                    "optimizer": {"oneOf": [{"type": "string"}, {"type": "object", "minProperties": 1, "maxProperties": 1,
                                                                 "additionalProperties": {"type": ["object", "null"]}}],
                                  "description": "train: optimizer of cells whose technique is not one, e.g. {adamw: {lr: 0.003}} (default adamw)"},
                },
            },
            "measure": {
                "type": "object", "additionalProperties": False,
                "properties": {
                    "warmup": {"oneOf": [{"const": "auto"}, {"type": "integer", "minimum": 0}]},
                    "min_reps": {"type": "integer", "minimum": 1},
                    "min_time_s": {"type": "number", "minimum": 0},
                    "max_time_s": {"type": "number", "exclusiveMinimum": 0},
                    "precision": {"oneOf": [{"type": "null"}, {"type": "string", "pattern": r"^\d+(\.\d+)?%$"}]},
                    "metrics": {"type": "array", "items": {"type": "string"}},
                    "eval_tokens": {"type": ["integer", "null"], "minimum": 1, "description": "tokens of the split to evaluate, from its start (default 16384; null: all)"},
                    "eval_seq_len": {"type": "integer", "minimum": 2},
                    "unstable_ratio": {"type": "number", "exclusiveMinimum": 1},
                    "settle_s": {"type": "number", "minimum": 0,
                                 "description": "rounds after the first: wait up to this many seconds for the machine state of the cell's earlier rounds (speed probe), and time again if it left it (default 0: off)"},
                    "extend_s": {"type": "number", "minimum": 0,
                                 "description": "after the rounds: a cell with under 6 rounds in the machine's quiet state (its median, the baseline model's in its alternation and its speed probes within 30% of its fastest round's) gets more rounds, each waiting for that state, for up to this many seconds in all (default 0: off)"},
                    "paired_s": {"type": "number", "minimum": 0,
                                 "description": "rounds after the first, technique cells: also time the model alternately with the suite baseline's model, in 50 ms blocks, for this many seconds; compare judges latency on that ratio (default 0: off)"},
                },
            },
            "baseline": {"type": "string"},
            "techniques": {"type": "array", "items": technique_item, "minItems": 1},
            "accuracy_budget": {"type": "string", "pattern": r"^\+?\d+(\.\d+)?%$",
                                "description": "largest perplexity increase a recommended technique may cost, e.g. '1%'"},
            "rounds": {"type": "integer", "minimum": 1,
                       "description": "run the whole cell list this many times, interleaved, and pool the timings (DESIGN §5)"},
            "thresholds": {"type": "object", "description": "regression thresholds for optbench compare, metric -> '5%'",
                           "additionalProperties": {"oneOf": [{"type": "string", "pattern": r"^\+?\d+(\.\d+)?%$"}]}},
        },
    }


# --- YAML with line numbers -----------------------------------------------------------


def _yaml_error(e: yaml.MarkedYAMLError, filename: str) -> SuiteError:
    """One line for a YAML error: where it was found, and where an unclosed bracket opened."""
    mark = e.problem_mark or e.context_mark
    line = mark.line + 1 if mark else 1
    opened = ""
    if e.context_mark and e.problem_mark and e.context_mark.line != e.problem_mark.line:
        opened = f" ({e.context.replace('while parsing a ', '') if e.context else 'it'} opened on line {e.context_mark.line + 1})"
    return SuiteError([f"{filename}:{line}: malformed YAML: {e.problem or e.context}{opened}"])


def _load_yaml(text: str, filename: str) -> tuple[Any, dict[tuple, int]]:
    lines: dict[tuple, int] = {}
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        raise _yaml_error(e, filename) from None
    except yaml.YAMLError as e:
        raise SuiteError([f"{filename}:1: malformed YAML: {e}"]) from None
    if node is None:
        raise SuiteError([f"{filename}:1: the suite is empty"])

    constructor = yaml.SafeLoader("")
    errors: list[str] = []

    plain = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}

    def build(n: yaml.Node, path: tuple) -> Any:
        lines.setdefault(path, n.start_mark.line + 1)
        if type(n) in plain and n.tag != plain[type(n)]:
            raise SuiteError([f"{filename}:{n.start_mark.line + 1}: malformed YAML: tag {n.tag!r} is not allowed in suites"])
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for k, v in n.value:
                key = constructor.construct_object(k, deep=True)
                if key in out:
                    errors.append(f"{filename}:{k.start_mark.line + 1}: duplicate key {key!r}")
                lines[path + (key,)] = k.start_mark.line + 1
                out[key] = build(v, path + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(v, path + (i,)) for i, v in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    try:
        data = build(node, ())
    except yaml.MarkedYAMLError as e:
        raise _yaml_error(e, filename) from None
    if errors:
        raise SuiteError(errors)
    return data, lines


# --- the validated suite -------------------------------------------------------------------


@dataclass
class TechniqueSpec:
    name: str
    params: dict[str, Any]
    label: str
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params, "label": self.label}


@dataclass
class Suite:
    path: str
    raw: dict[str, Any]
    text: str
    name: str
    model: list[dict[str, Any]]
    data: dict[str, Any]
    backends: list[str]
    workload: dict[str, Any]
    measure: dict[str, Any]
    techniques: list[TechniqueSpec]
    baseline: TechniqueSpec
    threads: int | None
    env: dict[str, str]
    seed: int
    timeout: float
    thresholds: dict[str, Any] = field(default_factory=dict)
    question: str = ""
    rounds: int = 1
    accuracy_budget: str = "1%"
    allocator: str = "steady"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def cells(self, pm: PluginManager) -> list[dict[str, Any]]:
        """The matrix: models x backends x batch x seq_len x techniques, each with a stable key."""
        models = pm.models()
        batches = self.workload["batch"]
        seqs = self.workload["seq_len"]
        out = []
        for model, backend, batch, seq_len, tech in itertools.product(self.model, self.backends, batches, seqs, self.techniques):
            workload = {"kind": self.workload["kind"], "batch": batch, "seq_len": seq_len}
            if workload["kind"] == "train":
                workload.update({k: self.workload[k] for k in TRAIN_DEFAULTS})
                if not is_optimizer(pm.techniques().get(tech.name)):
                    workload["optimizer"] = self.workload["optimizer"]  # the technique is not one: train with this
            cell = {
                "suite": self.name,
                "model": model,
                "data": self.data,
                "backend": backend,
                "workload": workload,
                "technique": tech.to_dict(),
                "baseline": self.baseline.to_dict(),
                "measure": self.measure,
                "threads": self.threads,
                "env": self.env,
                "seed": self.seed,
            }
            src = models.get(model["source"])
            fingerprint = src.fingerprint({k: v for k, v in model.items() if k != "source"})
            cell["key"] = cell_key(cell, fingerprint)
            cell["model_fingerprint"] = fingerprint
            cell["timeout"] = self.timeout
            out.append(cell)
        return out


#: measure settings that decide how many rounds a cell gets, not what a round measures: like ``rounds``
#: and ``timeout`` they stay out of the cell's key, so a nightly suite that adds them still compares
#: with the nights before
ROUND_COUNT_SETTINGS = ("extend_s",)


def cell_key(cell: dict[str, Any], model_fingerprint: str, ignore: tuple[str, ...] = ROUND_COUNT_SETTINGS) -> str:
    """The cell's identity: a hash of its settings but ``key``, ``timeout`` and the measure settings in
    ``ignore``, and of its model's fingerprint."""
    cell = {**cell, "measure": {k: v for k, v in cell.get("measure", {}).items() if k not in ignore}}
    payload = json.dumps({k: v for k, v in cell.items() if k not in ("key", "timeout", "model_fingerprint")}, sort_keys=True, default=str)
    return hashlib.sha256((payload + "|" + model_fingerprint).encode()).hexdigest()[:16]


def _expand_params(params: dict[str, Any], defaults: dict[str, Any]) -> list[dict[str, Any]]:
    """Lists in params expand to several variants, except for list-typed params."""
    axes = [[(k, x) for x in v] if isinstance(v, list) and not isinstance(defaults.get(k), list) else [(k, v)] for k, v in params.items()]
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def _as_list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def _format_schema_error(err: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in err.absolute_path) or "suite"
    v = err.validator
    if v == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        return "; ".join(f"unknown key {k!r} in {where}{did_you_mean(k, allowed)}" for k in extra) or err.message
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return f"missing required key {missing!r}" + ("" if where == "suite" else f" in {where}")
    if v == "type":
        return f"{where}: expected {err.validator_value if isinstance(err.validator_value, str) else ' or '.join(err.validator_value)}, got {err.instance!r}"
    if v == "enum":
        return f"{where}: {err.instance!r} is not one of {', '.join(map(str, err.validator_value))}{did_you_mean(str(err.instance), map(str, err.validator_value))}"
    if v in ("minimum", "exclusiveMinimum"):
        op = ">=" if v == "minimum" else ">"
        return f"{where}: must be {op} {err.validator_value}, got {err.instance!r}"
    if v == "pattern":
        hint = " (write a percentage such as 1%)" if where.endswith(("precision", "accuracy_budget")) or where.startswith("thresholds.") else ""
        return f"{where}: {err.instance!r} is not valid{hint}"
    if v == "oneOf" and (where.endswith("precision") or where.startswith("thresholds.")):
        return f"{where}: expected a percentage such as '1%', got {err.instance!r}"
    if v == "oneOf":
        best = [e for e in (err.context or []) if e.validator not in ("type", "oneOf", "const")]
        if best:
            return _format_schema_error(best[0])
        return f"{where}: invalid value {err.instance!r}"
    return f"{where}: {err.message}"


def _line_for(lines: dict[tuple, int], path: tuple) -> int:
    path = tuple(path)
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def load_suite(path: str | Path, pm: PluginManager) -> Suite:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SuiteError([f"{path}:0: cannot read suite: {e.strerror}"]) from None
    return parse_suite(text, str(path), pm)


def parse_suite(text: str, filename: str, pm: PluginManager) -> Suite:
    data, lines = _load_yaml(text, filename)
    if not isinstance(data, dict):
        raise SuiteError([f"{filename}:1: a suite is a mapping (name:, techniques: ...), got {type(data).__name__}"])
    errors: list[tuple[int, str]] = []

    def err(p: tuple, msg: str) -> None:
        errors.append((_line_for(lines, p), msg))

    validator = jsonschema.Draft202012Validator(json_schema(None))
    for e in sorted(validator.iter_errors(data), key=lambda e: (_line_for(lines, tuple(e.absolute_path)), e.message)):
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            allowed = list(e.schema.get("properties", {}))
            for k in sorted(set(e.instance) - set(allowed)):
                err(tuple(e.absolute_path) + (k,), f"unknown key {k!r}{did_you_mean(k, allowed)}")
        else:
            err(tuple(e.absolute_path), _format_schema_error(e))
    if errors:
        raise SuiteError([f"{filename}:{ln}: {m}" for ln, m in sorted(set(errors))])

    # --- names against registries, params against each plugin's schema ---
    models_reg, backends_reg, tech_reg = pm.models(), pm.backends(), pm.techniques()
    datasets_reg, metrics_reg = pm.datasets(), pm.metrics()

    def check_params(obj: Any, params: dict[str, Any], p: tuple, what: str) -> None:
        for k, v in params.items():
            if k not in obj.params:
                err(p + (k,), f"unknown parameter {k!r} for {what} {obj.name!r}{did_you_mean(k, obj.params)}"
                    + (f"; parameters: {', '.join(obj.params)}" if obj.params else "; it takes no parameters"))
                continue
            default = obj.params[k]
            for x in _as_list(v) if not isinstance(default, list) else [v]:
                choices = obj.choices.get(k)
                if choices and x not in choices:
                    err(p + (k,), f"{what} {obj.name!r}: {k}={x!r} is not one of {', '.join(map(str, choices))}{did_you_mean(str(x), map(str, choices))}")
                elif default is not None and not _type_ok(x, default):
                    hint = ""
                    if isinstance(default, float) and isinstance(x, str) and _is_float(x):
                        hint = f" (YAML reads {x} as text: write {float(x)!r})"
                    err(p + (k,), f"{what} {obj.name!r}: {k} must be {type(default).__name__}, got {x!r}{hint}")

    raw_models = _as_list(data.get("model", {"source": "reference", "size": "tiny"}))
    models: list[dict[str, Any]] = []
    for i, m in enumerate(raw_models):
        p = ("model", i) if isinstance(data.get("model"), list) else ("model",)
        m = dict(m)
        source = m.pop("source", "reference")
        if source not in models_reg:
            err(p + ("source",), f"unknown model source {source!r}{did_you_mean(source, models_reg.names())}; available: {', '.join(models_reg.names())}")
            continue
        src = models_reg.get(source)
        check_params(src, m, p, "model source")
        for combo in _expand_params(m, src.params):
            full = {**src.params, **combo}
            for problem in src.validate(full):
                err(p, f"model source {source!r}: {problem}")
            models.append({"source": source, **full})

    ds = {"name": "pydoc-text", "split": "heldout", **data.get("data", {})}
    if ds["name"] not in datasets_reg:
        err(("data", "name"), f"unknown dataset {ds['name']!r}{did_you_mean(ds['name'], datasets_reg.names())}; available: {', '.join(datasets_reg.names())}")

    backends = _as_list(data.get("backend", "cpu"))
    for i, b in enumerate(backends):
        if b not in backends_reg:
            p = ("backend", i) if isinstance(data.get("backend"), list) else ("backend",)
            err(p, f"unknown backend {b!r}{did_you_mean(b, backends_reg.names())}; available: {', '.join(backends_reg.names())}")

    raw_wl = data.get("workload", {})
    train = raw_wl.get("kind") == "train"
    measure = {**MEASURE_DEFAULTS, **({"metrics": TRAIN_DEFAULT_METRICS} if train else {}), **data.get("measure", {})}
    for i, mname in enumerate(measure["metrics"]):
        if mname not in metrics_reg:
            err(("measure", "metrics", i), f"unknown metric {mname!r}{did_you_mean(mname, metrics_reg.names())}; available: {', '.join(metrics_reg.names())}")
        elif train and mname == "fidelity":
            err(("measure", "metrics", i), "metric 'fidelity' compares with the untrained baseline; it does not apply to kind: train")
    if measure["max_time_s"] < measure["min_time_s"]:
        err(("measure", "max_time_s"), f"max_time_s ({measure['max_time_s']}) is below min_time_s ({measure['min_time_s']})")

    techniques: list[TechniqueSpec] = []
    for i, entry in enumerate(data["techniques"]):
        p = ("techniques", i)
        name, params = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        params = params or {}
        if name not in tech_reg:
            err(p, f"unknown technique {name!r}{did_you_mean(name, tech_reg.names())}; available: {', '.join(tech_reg.names())}")
            continue
        if not isinstance(params, dict):
            err(p, f"technique {name!r}: parameters must be a mapping, got {params!r}")
            continue
        tech = tech_reg.get(name)
        if not train and is_optimizer(tech):
            err(p, f"technique {name!r} is an optimizer: it needs workload kind: train")
        check_params(tech, params, p + (name,), "technique")
        for combo in _expand_params(params, tech.params):
            full = {**tech.params, **combo}
            for problem in tech.validate(full):
                err(p + (name,), f"technique {name!r}: {problem}")
            techniques.append(TechniqueSpec(name, full, tech.label(full), _line_for(lines, p)))

    labels = [t.label for t in techniques]
    for t in techniques:
        if labels.count(t.label) > 1:
            err(("techniques",), f"technique {t.label!r} appears twice (line {t.line})")
            break
    baseline_label = data.get("baseline", "none")
    baseline = next((t for t in techniques if t.label == baseline_label), None)
    if baseline is None:
        if baseline_label in tech_reg:
            tech = tech_reg.get(baseline_label)
            baseline = TechniqueSpec(baseline_label, dict(tech.params), tech.label(dict(tech.params)))
            techniques.insert(0, baseline)  # every row needs its baseline cell to compare with
        else:
            err(("baseline",), f"baseline {baseline_label!r} is neither a technique of this suite nor a registered technique{did_you_mean(baseline_label, labels + tech_reg.names())}")

    optimizer = None  # train cells whose technique is not an optimizer train with this one
    if train:
        spec = raw_wl.get("optimizer", DEFAULT_OPTIMIZER)
        oname, oparams = (spec, {}) if isinstance(spec, str) else next(iter(spec.items()))
        oparams = oparams or {}
        p = ("workload", "optimizer") + ((oname,) if isinstance(spec, dict) else ())
        optimizer_names = [n for n in tech_reg.names() if is_optimizer(tech_reg.get(n))]
        if oname in optimizer_names:
            tech = tech_reg.get(oname)
            check_params(tech, oparams, p, "optimizer")
            for k, v in oparams.items():
                if isinstance(v, list) and k in tech.params and not isinstance(tech.params[k], list):
                    err(p + (k,), f"optimizer {oname!r}: {k} takes one value here (to compare several, list optimizers under techniques:)")
            optimizer = {"name": oname, "params": {**tech.params, **oparams}}
            for problem in tech.validate(optimizer["params"]):
                err(p, f"optimizer {oname!r}: {problem}")
        elif "optimizer" not in raw_wl:
            # the default is built from the core's table: structure sweeps train without the plugin
            optimizer = {"name": oname, "params": OPTIMIZERS[oname].params}
        else:
            err(p, f"unknown optimizer {oname!r}{did_you_mean(oname, optimizer_names)}; available: {', '.join(optimizer_names) or 'none installed'}")
    else:
        for k in TRAIN_ONLY_KEYS:
            if k in raw_wl:
                err(("workload", k), f"workload.{k} applies to kind: train only")

    if errors:
        raise SuiteError([f"{filename}:{ln}: {m}" for ln, m in sorted(set(errors))])

    if train:
        wl = {"kind": "train", "batch": [TRAIN_BATCH], "seq_len": [TRAIN_SEQ_LEN], **TRAIN_DEFAULTS, **raw_wl, "optimizer": optimizer}
        wl["eval_every"] = wl["eval_every"] or max(1, wl["steps"] // 10)
    else:
        wl = {"kind": "forward", "batch": [1], "seq_len": [128], **raw_wl}
    wl["batch"], wl["seq_len"] = _as_list(wl["batch"]), _as_list(wl["seq_len"])
    assert baseline is not None
    return Suite(
        path=filename, raw=copy.deepcopy(data), text=text, name=data["name"], model=models, data=ds,
        backends=backends, workload=wl, measure=measure, techniques=techniques, baseline=baseline,
        threads=data.get("threads"), env={k: str(v) for k, v in data.get("env", {}).items()},
        seed=data.get("seed", 0), timeout=float(data.get("timeout", 600)), thresholds=data.get("thresholds", {}),
        question=data.get("question", ""), rounds=int(data.get("rounds", 1)),
        accuracy_budget=data.get("accuracy_budget", "1%"), allocator=data.get("allocator", "steady"),
    )


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _type_ok(x: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(x, bool)
    if isinstance(default, float):
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    if isinstance(default, int):
        return isinstance(x, int) and not isinstance(x, bool)
    return isinstance(x, type(default))
