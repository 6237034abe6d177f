"""Training workloads: optimizers really train, same seed and data for all, divergence, suites.

Every training test uses a model of one layer and width 64 for 20-40 steps: the loop and
the optimizers are the same code at any size.
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import SMALL_MODEL, cli, make_dist, rows_of
from optbench.errors import SuiteError
from optbench.measure.accuracy import eval_windows
from optbench.models import corpus, reference
from optbench.suite import parse_suite
from optbench.training import OPTIMIZERS, build_optimizer, state_bytes, train_loop

OPTIMIZER_NAMES = ["adagrad", "adam", "adamw", "momentum", "nesterov", "rmsprop", "sgd"]
SMALL = {"depth": 1, "width": 64, "heads": 2}


def errors_of(text: str, pm) -> list[str]:
    with pytest.raises(SuiteError) as e:
        parse_suite(text, "s.yaml", pm)
    return e.value.lines


def train_suite(techniques: str, workload: str = "steps: 20") -> str:
    return f"""\
name: t
model: {SMALL_MODEL}
workload: {{kind: train, {workload}}}
techniques:
{techniques}"""


# --- in process: the loop itself --------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)  # bit-identical curves need the same reduction order every time
    return corpus.as_tokens(corpus.split_bytes("train")), eval_windows(corpus.split_bytes("heldout"), 32, 512)


def train(data, name: str, steps: int = 30, **params):
    tokens, windows = data
    model, _ = reference.load("tiny", SMALL)

    def make(parameters, p, n):
        return build_optimizer(name, parameters, p, n)

    result = train_loop(model, make, {**OPTIMIZERS[name].params, **params}, tokens, windows,
                        steps=steps, batch=8, seq_len=32, seed=0, eval_every=10)
    return model, result


def test_same_seed_and_optimizer_give_identical_curves(data):
    _, a = train(data, "adam", lr=1e-2)
    _, b = train(data, "adam", lr=1e-2)
    strip = [[{k: v for k, v in p.items() if k != "seconds"} for p in r.record["curve"]] for r in (a, b)]
    assert strip[0] == strip[1]
    assert a.metrics["heldout_loss"]["value"] == b.metrics["heldout_loss"]["value"]


def test_optimizers_see_the_same_data_and_change_the_loss_differently(data):
    curves = {name: train(data, name, **params)[1].record["curve"] for name, params in
              {"sgd": {"lr": 1e-3}, "adam": {"lr": 1e-2}, "momentum": {"lr": 0.1}}.items()}
    # step 1's loss is computed before any update: same initial weights, same first batch
    assert len({c[0]["train_loss"] for c in curves.values()}) == 1
    final = {name: c[-1]["heldout_loss"] for name, c in curves.items()}
    start = math.log(256)  # an untrained byte model is near uniform
    assert all(final[n] < start for n in final)
    # SGD at lr 1e-3 barely moves a transformer in 30 steps; Adam at 1e-2 does
    assert final["adam"] < final["sgd"] - 0.5
    assert len(set(final.values())) == 3


def test_lr_far_too_high_is_recorded_as_diverged_and_stops_early(data):
    _, r = train(data, "sgd", steps=30, lr=1e4)
    assert r.record["diverged"].endswith(f"at step {r.record['steps_done']}")
    assert r.record["stopped"] == "diverged" and r.record["steps_done"] < 30
    assert "perplexity" not in r.metrics and "heldout_loss" not in r.metrics  # no number for a broken model
    assert r.metrics["step_time"]["n"] >= 1


def test_steps_to_target_when_reached_and_not_reached(data):
    tokens, windows = data
    _, ok = train(data, "adam", lr=1e-2)
    reached_loss = ok.record["curve"][-1]["heldout_loss"]
    first_eval = next(p for p in ok.record["curve"] if p["heldout_loss"] is not None)
    model, _ = reference.load("tiny", SMALL)
    target = first_eval["heldout_loss"] - 0.01  # not met at the first evaluation, met by the last
    assert reached_loss < target
    r = train_loop(model, lambda ps, p, n: build_optimizer("adam", ps, p, n), {**OPTIMIZERS["adam"].params, "lr": 1e-2},
                   tokens, windows, steps=30, batch=8, seq_len=32, seed=0, eval_every=10, target_loss=target)
    steps_at = r.metrics["steps_to_target"]["value"]
    assert steps_at in (20, 30) and r.record["reached_at_step"] == steps_at
    point = next(p for p in r.record["curve"] if p["step"] == steps_at)
    assert r.metrics["seconds_to_target"]["value"] == pytest.approx(point["seconds"], abs=1e-3)
    assert "note" not in r.metrics["steps_to_target"]

    model, _ = reference.load("tiny", SMALL)
    r = train_loop(model, lambda ps, p, n: build_optimizer("sgd", ps, p, n), OPTIMIZERS["sgd"].params,
                   tokens, windows, steps=20, batch=8, seq_len=32, seed=0, eval_every=10, target_loss=1.0)
    for k in ("steps_to_target", "seconds_to_target"):
        assert r.metrics[k]["value"] is None and r.metrics[k]["note"] == "not reached"
    assert r.record["reached_at_step"] is None


def test_seconds_budget_stops_training_early(data):
    tokens, windows = data
    model, _ = reference.load("tiny", SMALL)
    r = train_loop(model, lambda ps, p, n: build_optimizer("adam", ps, p, n), OPTIMIZERS["adam"].params,
                   tokens, windows, steps=100_000, batch=8, seq_len=32, seed=0, seconds=0.3)
    assert r.record["stopped"] == "seconds" and r.record["steps_done"] < 100_000
    assert r.record["budget"] == {"steps": 100_000, "seconds": 0.3}
    assert r.record["curve"][-1]["heldout_loss"] is not None  # evaluated where it stopped


def test_optimizer_state_bytes_follow_the_method():
    model, _ = reference.load("tiny", SMALL)
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())

    def state_after_one_step(name):
        opt, _ = build_optimizer(name, model.parameters(), OPTIMIZERS[name].params, 10)
        model.zero_grad()
        model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
        opt.step()
        return state_bytes(opt)

    assert state_after_one_step("sgd") == 0
    assert state_after_one_step("momentum") == n_bytes  # one momentum buffer
    assert n_bytes * 2 <= state_after_one_step("adam") <= n_bytes * 2 + 4 * 64  # two moments (+ step counters)


@pytest.mark.parametrize("schedule, warmup, expect", [
    ("constant", 0, [1.0, 1.0, 1.0]),
    ("linear-warmup", 4, [0.2, 1.0, 1.0]),   # lr/5 at step 1, full from step 5 on
    ("cosine", 0, [1.0, 0.5, 0.0]),          # start, half way, end
    ("cosine", 4, [0.2, 0.5, 0.0]),          # warm-up, then the cosine's half way
])
def test_schedules_are_torch_lr_schedulers(schedule, warmup, expect):
    p = torch.nn.Parameter(torch.zeros(1))
    opt, sched = build_optimizer("sgd", [p], {"lr": 1.0, "weight_decay": 0.0, "schedule": schedule, "warmup_steps": warmup}, 20)
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    lrs = []
    for _ in range(21):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    at = {"start": lrs[0], "mid": lrs[4 + 8] if warmup else lrs[10], "end": lrs[20]}
    for got, want in zip(at.values(), expect, strict=True):
        assert got == pytest.approx(want, abs=1e-6)


# --- suites: validated before anything runs ---------------------------------------------------


def test_optimizers_are_train_techniques_with_their_hyperparameters(pm):
    techniques = pm.techniques()
    assert all(techniques.get(n).kind == "train" for n in OPTIMIZER_NAMES)
    assert set(techniques.get("adam").params) == {"lr", "beta1", "beta2", "eps", "weight_decay", "schedule", "warmup_steps"}
    assert set(techniques.get("rmsprop").params) >= {"alpha", "momentum", "eps"}
    assert techniques.get("sgd").choices["schedule"] == ["constant", "cosine", "linear-warmup"]


@pytest.mark.parametrize("lr", ["0", "-0.1"])
def test_lr_zero_or_negative_is_a_one_line_error_naming_the_line(pm, lr):
    lines = errors_of(train_suite(f"  - sgd\n  - adam: {{lr: {lr}}}\n"), pm)
    assert lines == [f"s.yaml:6: technique 'adam': lr must be > 0, got {lr}"]


def test_other_bad_hyperparameters_are_named(pm):
    lines = errors_of(train_suite("  - adam: {beta2: 1.0}\n  - nesterov: {momentum: 0.0}\n"
                                  "  - sgd: {schedule: linear-warmup}\n  - rmsprop: {schedule: cosinus}\n"), pm)
    assert lines[0] == "s.yaml:5: technique 'adam': beta2 must be in [0, 1), got 1.0"
    assert lines[1] == "s.yaml:6: technique 'nesterov': momentum must be in (0, 1), got 0.0"
    assert lines[2] == "s.yaml:7: technique 'sgd': schedule linear-warmup needs warmup_steps >= 1"
    assert lines[3].startswith("s.yaml:8: technique 'rmsprop': schedule='cosinus' is not one of") and "did you mean 'cosine'?" in lines[3]


def test_optimizer_typo_gets_did_you_mean(pm):
    lines = errors_of(train_suite("  - adamm: {lr: 0.01}\n"), pm)
    assert len(lines) == 1 and lines[0].startswith("s.yaml:5: unknown technique 'adamm' (did you mean 'adam'?")


def test_yaml_exponent_without_a_dot_gets_a_hint(pm):
    lines = errors_of(train_suite("  - adam: {lr: 3e-3}\n"), pm)
    assert lines == ["s.yaml:5: technique 'adam': lr must be float, got '3e-3' (YAML reads 3e-3 as text: write 0.003)"]


def test_workload_errors(pm):
    assert errors_of(train_suite("  - sgd\n", "steps: 0"), pm) == ["s.yaml:3: workload.steps: must be >= 1, got 0"]
    forward = f"name: t\nmodel: {SMALL_MODEL}\nworkload: {{kind: forward,\n  steps: 10}}\ntechniques: [none, adam]\n"
    assert errors_of(forward, pm) == ["s.yaml:4: workload.steps applies to kind: train only",
                                      "s.yaml:5: technique 'adam' is an optimizer: it needs workload kind: train"]
    typo = train_suite("  - none\n", "steps: 10,\n  optimizer: {adamv: {lr: 0.01}}")
    lines = errors_of(typo, pm)
    assert len(lines) == 1 and lines[0].startswith("s.yaml:4: unknown optimizer 'adamv' (did you mean 'adam'")
    assert errors_of(train_suite("  - none\n", "steps: 10,\n  optimizer: {adamw: {lr: 0}}"), pm) == [
        "s.yaml:4: optimizer 'adamw': lr must be > 0, got 0"]
    text = train_suite("  - none\n") + "measure: {metrics: [latency, fidelity]}\n"
    assert errors_of(text, pm) == ["s.yaml:6: metric 'fidelity' compares with the untrained baseline; it does not apply to kind: train"]


def test_train_cells_carry_their_budget_and_optimizer(pm):
    text = train_suite("  - none\n  - sgd: {lr: [0.1, 0.3]}\n", "steps: 40, batch: [4, 8], seq_len: 32, target_loss: 2.5")
    suite = parse_suite(text, "s.yaml", pm)
    cells = suite.cells(pm)
    assert len(cells) == 2 * 3  # batch x techniques (the lr list expands)
    wl = {c["technique"]["label"]: c["workload"] for c in cells if c["workload"]["batch"] == 4}
    assert wl["none"] == {"kind": "train", "batch": 4, "seq_len": 32, "steps": 40, "seconds": None, "target_loss": 2.5,
                          "eval_every": 4, "divergence_factor": 3.0, "optimizer": {"name": "adamw", "params": OPTIMIZERS["adamw"].params}}
    assert "optimizer" not in wl["sgd[lr=0.3]"]  # the technique is the optimizer
    assert suite.measure["metrics"] == ["latency", "memory", "accuracy"]


# --- end to end: real cells, each in its own process -------------------------------------------


@pytest.fixture(scope="module")
def trained_rows(tmp_path_factory):
    from optbench.testing import run_suite_yaml

    text = f"""
    model: {SMALL_MODEL}
    threads: 1
    workload: {{kind: train, steps: 30, batch: 8, seq_len: 32, eval_every: 10, target_loss: 3.4}}
    measure: {{metrics: [latency, memory, cost]}}
    techniques:
      - adam: {{lr: 1000.0}}
      - none
      - adamw
      - adam: {{lr: 0.01}}
      - sgd
    """
    outcome = run_suite_yaml(text, tmp_path_factory.mktemp("train"))
    return {r["technique"]["label"]: r for r in outcome.rows}


def test_training_rows_carry_the_curve_and_the_metrics(trained_rows):
    row = trained_rows["adam[lr=0.01]"]
    assert row["status"] == "ok"
    t = row["training"]
    assert {"curve", "target_loss", "reached_at_step", "diverged", "optimizer", "budget"} <= set(t)
    assert t["optimizer"] == {"name": "adam", "params": {**OPTIMIZERS["adam"].params, "lr": 0.01}}
    assert t["budget"] == {"steps": 30} and t["target_loss"] == 3.4 and t["diverged"] == ""
    assert [p["step"] for p in t["curve"]] == list(range(1, 31))
    assert all(set(p) == {"step", "seconds", "train_loss", "heldout_loss"} for p in t["curve"])
    assert [p["step"] for p in t["curve"] if p["heldout_loss"] is not None] == [10, 20, 30]
    m = row["metrics"]
    assert {"median", "ci95", "samples", "n"} <= set(m["step_time"]) and m["step_time"]["n"] == 30 - 3
    assert m["tokens_per_s"]["value"] == pytest.approx(8 * 32 / m["step_time"]["median"])
    assert m["perplexity"]["value"] == pytest.approx(math.exp(m["heldout_loss"]["value"]))
    assert m["heldout_loss"]["value"] == pytest.approx(t["curve"][-1]["heldout_loss"], abs=1e-5)
    assert m["steps_to_target"]["value"] == t["reached_at_step"] in (10, 20, 30)
    for k in ("final_train_loss", "peak_rss", "optimizer_state_bytes", "parameters", "flops_per_token", "latency"):
        assert k in m, k


def test_target_not_reached_says_so(trained_rows):
    m = trained_rows["sgd"]["metrics"]  # lr 1e-3: barely moves in 30 steps
    assert m["steps_to_target"] == {"value": None, "unit": "steps", "target_loss": 3.4, "on": "heldout_loss",
                                    "resolution_steps": 10, "note": "not reached"}
    assert m["seconds_to_target"]["note"] == "not reached"


def test_diverged_cell_is_ok_recorded_and_the_run_goes_on(trained_rows):
    row = trained_rows["adam[lr=1000.0]"]
    assert row["status"] == "ok"
    assert row["training"]["diverged"].startswith("loss ") and row["training"]["steps_done"] < 30
    assert "perplexity" not in row["metrics"]
    assert all(r["status"] == "ok" for r in trained_rows.values()) and len(trained_rows) == 5


def test_no_optimizer_technique_trains_with_the_default_adamw(trained_rows):
    # `none` trains with the workload's optimizer (AdamW, torch defaults), in another process
    # than the `adamw` cell: the same seed and data give the same curve
    none, adamw = trained_rows["none"]["training"], trained_rows["adamw"]["training"]
    assert none["optimizer"] == adamw["optimizer"] == {"name": "adamw", "params": OPTIMIZERS["adamw"].params}
    assert [p["train_loss"] for p in none["curve"]] == [p["train_loss"] for p in adamw["curve"]]
    assert [p["heldout_loss"] for p in none["curve"]] == [p["heldout_loss"] for p in adamw["curve"]]


def test_structure_sweep_trains_each_shape_and_reports_cost(run_suite_text):
    rows = run_suite_text("""
        model: {source: reference, size: tiny, depth: [1, 2], width: 64, heads: 2}
        threads: 1
        workload: {kind: train, steps: 20, batch: 8, seq_len: 32, optimizer: {adamw: {lr: 0.01}}}
        measure: {metrics: [latency]}
        techniques: [none]
    """)
    by_depth = {r["model"]["depth"]: r for r in rows}
    assert set(by_depth) == {1, 2} and all(r["status"] == "ok" for r in rows)
    one, two = (by_depth[d]["metrics"] for d in (1, 2))
    assert two["parameters"]["value"] > one["parameters"]["value"]
    assert two["flops_per_token"]["value"] > one["flops_per_token"]["value"]
    assert all("latency" in m and "perplexity" in m for m in (one, two))
    assert by_depth[1]["training"]["optimizer"]["params"]["lr"] == 0.01


THIRD_PARTY = r"""
from optbench import hookimpl, Technique

class Adamax(Technique):
    name = "adamax"
    kind = "train"
    params = {"lr": 0.002}
    def apply(self, model, params, ctx):
        return model
    def make_optimizer(self, parameters, params, steps):
        import torch
        return torch.optim.Adamax(parameters, lr=params["lr"]), None

class Broken(Adamax):
    name = "broken-opt"
    def make_optimizer(self, parameters, params, steps):
        raise RuntimeError("no optimizer today")

@hookimpl
def optbench_register_techniques(register):
    register(Adamax())
    register(Broken())
"""


def test_third_party_optimizer_trains_and_a_broken_one_fails_only_its_cell(tmp_path):
    root = make_dist(tmp_path / "site", "optbench-adamax", "0.1", "optbench_adamax", THIRD_PARTY, entry="adamax")
    suite = tmp_path / "s.yaml"
    suite.write_text(train_suite("  - broken-opt\n  - adamax: {lr: 0.01}\n", "steps: 20, batch: 8, seq_len: 32")
                     + "measure: {metrics: []}\nthreads: 1\n")
    run = cli("run", str(suite), "-o", str(tmp_path / "out"), env_extra={"PYTHONPATH": str(root)})
    assert run.returncode == 0, run.stderr
    rows = {r["technique"]["label"]: r for r in rows_of(tmp_path / "out")}
    assert rows["broken-opt"]["status"] == "failed"
    assert rows["broken-opt"]["reason"] == ("training with optimizer 'broken-opt' from plugin 'adamax' (dist optbench-adamax 0.1): "
                                            "RuntimeError: no optimizer today")
    assert rows["adamax[lr=0.01]"]["status"] == "ok"
    curve = rows["adamax[lr=0.01]"]["training"]["curve"]
    assert curve[-1]["heldout_loss"] < math.log(256) - 1
