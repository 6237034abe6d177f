"""Plan cells, run each in its own process, stream rows to disk, resume.

Cells are forked from a multiprocessing *forkserver* that has already imported torch
(and the heavy modules the suite's techniques declare), so each cell starts in
milliseconds instead of paying ``import torch`` again, yet still runs in a process of
its own: a crash, hang or out-of-memory kill marks that cell ``failed`` with its reason
and the run goes on.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import envinfo
from .cell import SCHEMA, child_main
from .manager import PluginManager
from .measure.allocator import allocator_env
from .measure.latency import QUIET_MARGIN, QUIET_ROUNDS, SLOW_MACHINE_FACTOR, after_probe, probe_of, short_of_quiet
from .results import RUN, ResultsFile, rows_by_cell, write_json_atomic
from .suite import Suite

BASE_PRELOAD = ["optbench.quiet", "torch", "scipy.stats", "optbench.cell", "optbench.measure.latency", "optbench.measure.accuracy",
                "optbench.models.reference"]


@dataclass
class RunOptions:
    out_dir: Path
    strict: bool = False
    disabled: tuple[str, ...] = ()
    timeout: float | None = None
    inline_plugins: dict[str, str] = field(default_factory=dict)  # name -> module (tests)
    report: bool = True
    #: sqlite history database to record the run in; None: the default path; "": none
    history: str | None = None


@dataclass
class RunOutcome:
    run_dir: Path
    rows: list[dict[str, Any]]
    ran: int
    skipped_as_done: int
    interrupted: bool
    reports: list[str]
    rounds: int = 1
    runs_done: int = 0  # cell runs (cell x round) an earlier, interrupted run had finished
    #: measure.extend_s: the extra cell rounds, their seconds, and the cells still short (None: it added none and none is short)
    extended: dict[str, Any] | None = None


def _noop() -> None:
    pass


def _signal_reason(code: int) -> str:
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if -code == signal.SIGKILL:
        return f"cell process killed by {name} (out of memory, or killed from outside)"
    return f"cell process died from {name}"


class CellProcess:
    """Runs one cell in a forked child; returns its row, or a failed row with the reason."""

    def __init__(self, ctx: Any, cell: dict[str, Any], settings: dict[str, Any], log_path: Path):
        self.parent, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=child_main, args=(cell, settings, child, str(log_path)), daemon=True)
        self.started = time.perf_counter()
        self.proc.start()
        child.close()

    def wait(self, timeout: float) -> dict[str, Any]:
        deadline = self.started + timeout
        row: dict[str, Any] | None = None
        while row is None:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self.kill()
                return {"status": "failed", "reason": f"timed out after {timeout:g} s", "metrics": {}}
            if self.parent.poll(min(remaining, 0.2)):
                try:
                    row = self.parent.recv()
                except (EOFError, OSError):
                    break
            elif not self.proc.is_alive():
                if self.parent.poll(0):
                    continue
                break
        self.proc.join(timeout=10)
        self._kill_group()  # nothing a cell started outlives it
        if row is None:
            code = self.proc.exitcode
            if self.proc.is_alive():
                self.kill()
            reason = _signal_reason(code) if code is not None and code < 0 else f"cell process exited with code {code} before reporting"
            return {"status": "failed", "reason": reason, "metrics": {}}
        return row

    def _kill_group(self) -> None:
        if self.proc.pid is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def kill(self) -> None:
        """Kill the cell and every process it started (its process group: torchrun and its ranks)."""
        self._kill_group()
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=10)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def _one_line(cell: dict[str, Any], row: dict[str, Any]) -> str:
    wl = cell["workload"]
    shape = "".join(f"{k[0] if k != 'ffn_ratio' else 'ffn'}{v}" for k, v in cell["model"].items()
                    if k in ("depth", "width", "heads", "ffn_ratio") and v is not None)
    label = cell["technique"]["label"] + (f" {shape}" if shape else "")
    head = f"{label:<22} {cell['backend']:<6} b={wl['batch']:<3} s={wl['seq_len']:<4}"
    if row["status"] != "ok":
        return f"{head} {row['status']}: {row['reason']}"
    m = row["metrics"]
    parts = []
    training = row.get("training") or {}
    if training:
        reached = training.get("reached_at_step")
        parts.append(f"DIVERGED ({training['diverged']})" if training.get("diverged")
                     else f"target at step {reached}" if reached else f"{training.get('steps_done', '?')} steps")
    if "latency" in m:
        lat = m["latency"]
        parts.append(f"median {lat['median'] * 1e3:.2f} ms [{lat['ci95'][0] * 1e3:.2f}, {lat['ci95'][1] * 1e3:.2f}] n={lat['n']}")
    if "perplexity" in m:
        parts.append(f"ppl {m['perplexity']['value']:.3f}")
    if "model_bytes" in m:
        parts.append(f"{m['model_bytes']['value'] / 2**20:.2f} MiB")
    if row.get("unstable"):
        parts.append(f"UNSTABLE ({row['unstable']})")
    if row.get("slow_machine"):
        parts.append(f"SLOW MACHINE ({row['slow_machine']})")
    return f"{head} " + "  ".join(parts)


def run_suite(suite: Suite, pm: PluginManager, opts: RunOptions,
              on_progress: Callable[[str], None] | None = None) -> RunOutcome:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out = opts.out_dir
    results = ResultsFile(out)
    (out / "logs").mkdir(exist_ok=True)
    cells = suite.cells(pm)
    rounds = suite.rounds if any(pm.metrics().get(m).timed for m in suite.measure["metrics"]) else 1
    done = results.finished()
    # round-major order: every cell once, then every cell again... (DESIGN §5: drift is shared)
    # a cell skipped in round 1 has nothing to time again
    todo = [(r, c) for r in range(1, rounds + 1) for c in cells
            if (c["key"], r) not in done and not (r > 1 and done.get((c["key"], 1)) == "skipped")]
    cells_done = [c for c in cells if done.get((c["key"], 1)) == "skipped" or all((c["key"], r) in done for r in range(1, rounds + 1))]
    runs_done = sum((c["key"], r) in done for c in cells for r in range(1, rounds + 1))  # cell runs (cell x round) of this plan

    # the allocator's variables first: a suite's own env wins over them
    env = {**allocator_env(suite.allocator), **suite.env}
    if suite.threads and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(suite.threads)
    fp = envinfo.fingerprint(suite.threads, env, pm.versions(), cwd=str(Path(suite.path).parent))
    run_meta_path = out / RUN
    prev = {}
    if run_meta_path.exists():
        import json

        try:
            prev = json.loads(run_meta_path.read_text())
        except ValueError:
            prev = {}
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    run_id = prev.get("run_id") or f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    meta = {
        "schema": SCHEMA, "run_id": run_id, "suite": suite.name, "suite_path": suite.path,
        "suite_sha256": suite.sha256, "suite_text": suite.text, "question": suite.question,
        "baseline": suite.baseline.label, "started": prev.get("started", now),
        "segments": prev.get("segments", []) + [{"started": now, "cells_todo": len(todo)}],  # (cell, round) pairs
        "environment": fp, "cells_planned": len(cells), "plugin_errors": pm.errors,
        "rounds": suite.rounds, "thresholds": suite.thresholds, "accuracy_budget": suite.accuracy_budget,
        "history": opts.history,
    }
    write_json_atomic(run_meta_path, meta)

    settings = {"strict": opts.strict, "disabled": list(opts.disabled), "inline": opts.inline_plugins,
                "cache_dir": str(out / "cache")}
    preload = list(BASE_PRELOAD)
    for t in {c["technique"]["name"] for _, c in todo}:
        preload += list(pm.techniques().get(t).preload)
    preload += [pm.info[n].module for n in pm.info]

    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the forkserver (and so every cell) inherits the suite's env
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(preload)
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    log = on_progress or (lambda s: console.print(s, markup=False))
    interrupted = False
    ran = 0
    fastest_probe: float | None = None
    # measure.settle_s: each cell's later rounds wait for the fastest machine state its earlier
    # rounds were timed in (their speed probes after timing; a resumed run's finished ones count)
    settle = bool(suite.measure.get("settle_s"))
    extend_s = float(suite.measure.get("extend_s") or 0)
    extended: dict[str, Any] | None = None  # measure.extend_s: rounds added, cells still short
    states: dict[str, list[float]] = {}
    for r in results.rows() if settle else ():
        if p := after_probe(r):
            states.setdefault(r["cell"], []).append(p)
    if todo:
        # start the cell server now, so its one-time imports are not charged to the first cell
        t_server = time.perf_counter()
        warm = ctx.Process(target=_noop, daemon=True)
        warm.start()
        warm.join()
        meta["segments"][-1]["server_start_s"] = round(time.perf_counter() - t_server, 3)
    if len(done):
        log(f"resuming {out}: {len(cells_done)} of {len(cells)} cells already finished"
            + (f" ({runs_done} of {len(cells) * rounds} cell rounds)" if rounds > 1 else ""))
    first_round = {k: st for (k, r), st in done.items() if r == 1}
    server_round = todo[0][0] if todo else 1

    def time_round(rnd: int, cell: dict[str, Any], tag: str, extra_s: float = 0.0) -> dict[str, Any]:
        nonlocal fastest_probe, ran
        pm.cell_started(cell)
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        log_path = out / "logs" / (f"{cell['key']}.log" if rnd == 1 else f"{cell['key']}.round{rnd}.log")
        proc = CellProcess(ctx, cell, settings, log_path)
        try:
            child_row = proc.wait((opts.timeout or cell["timeout"]) + extra_s)
        except KeyboardInterrupt:
            proc.kill()
            raise
        wall = proc.seconds
        row = _row(cell, child_row, run_id, pm, started, wall, log_path, out)
        probe = probe_of(row)
        if probe:
            fastest_probe = min(fastest_probe or probe, probe)
            if probe > SLOW_MACHINE_FACTOR * fastest_probe:
                row["slow_machine"] = f"speed probe {probe / fastest_probe:.1f}x the run's fastest so far"
        results.append(row)
        if settle and (p := after_probe(row)):
            states.setdefault(cell["key"], []).append(p)
        if rnd == 1:
            first_round[cell["key"]] = row["status"]
        ran += 1
        pm.cell_finished(cell, row)
        log(("✓ " if row["status"] == "ok" else "✗ " if row["status"] == "failed" else "- ") + tag + _one_line(cell, row))
        return row

    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True, disable=not console.is_terminal) as progress:
            task = progress.add_task(suite.name, total=len(todo))
            for rnd, cell in todo:
                if rnd != server_round:
                    _stop_forkserver()  # each round forks from a server of its own: rounds replicate whole processes
                    server_round = rnd
                tag = f"[{rnd}/{rounds}] " if rounds > 1 else ""
                if rnd > 1 and first_round.get(cell["key"]) != "ok":
                    progress.advance(task)  # a cell that failed or skipped in round 1 has nothing to time again
                    continue
                cell = {**cell, "round": rnd}
                if states.get(cell["key"]):
                    cell["state_level"] = min(states[cell["key"]])
                progress.update(task, description=f"{suite.name}: {tag}{cell['technique']['label']} b={cell['workload']['batch']}")
                time_round(rnd, cell, tag)
                progress.advance(task)
            if extend_s and rounds > 1:
                # measure.extend_s: a cell with under QUIET_ROUNDS rounds in the machine's quiet state
                # (a neighbour, the VM's slow state) is timed again, each extra round waiting for that
                # state, until it has them or extend_s has passed: compare judges a cell on the rounds
                # timed in states both runs share, and a run disturbed throughout shares none
                t_extend = time.perf_counter()
                deadline = t_extend + extend_s
                by_key = {c["key"]: c for c in cells}
                extra = max([rounds] + [int(r.get("round", 1)) for r in results.rows()])
                added = 0
                while (short := short_of_quiet(results.rows())) and deadline > time.perf_counter():
                    extra += 1
                    _stop_forkserver()
                    timed = 0
                    for key, sh in short.items():
                        if key not in by_key or (left := deadline - time.perf_counter()) <= 0:
                            continue
                        tag = f"[{extra}/{rounds}, extend_s: {sh.quiet} of {QUIET_ROUNDS} rounds quiet] "
                        cell = {**by_key[key], "round": extra, "state_level": sh.probe, "quiet_median": sh.median,
                                "state_margin": QUIET_MARGIN, "measure": {**by_key[key]["measure"], "settle_s": left}}
                        progress.update(task, description=f"{suite.name}: {tag}{cell['technique']['label']} b={cell['workload']['batch']}")
                        time_round(extra, cell, tag, extra_s=left)
                        timed += 1
                    if not timed:
                        break
                    added += timed
                if added or short:
                    extended = {"rounds": added, "seconds": round(time.perf_counter() - t_extend, 1),
                                "short": {k: sh.quiet for k, sh in short.items()}}
                    log(f"extend_s: {extended['rounds']} extra cell rounds in {extended['seconds']:.0f} s; "
                        + (f"{len(short)} cells still under {QUIET_ROUNDS} rounds in the quiet state: "
                           + ", ".join(f"{k} ({n})" for k, n in extended["short"].items()) if short
                           else f"every cell has {QUIET_ROUNDS} rounds in the quiet state"))
    except KeyboardInterrupt:
        interrupted = True
        log(f"interrupted: {ran} cells finished in this run are saved; run the same command again to resume")
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _stop_forkserver()

    meta["segments"][-1].update(finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), cells_run=ran, interrupted=interrupted)
    if extended:
        meta["segments"][-1]["extend"] = extended
    write_json_atomic(run_meta_path, meta)
    rows = list(rows_by_cell(results.rows()).values())
    if not interrupted:
        import shutil

        shutil.rmtree(out / "cache", ignore_errors=True)  # only a resumed run would reuse it
    reports: list[str] = []
    if opts.report:
        from .reporting import render_all

        reports = render_all(out, pm)
    pm.run_finished(str(out), rows)
    return RunOutcome(out, rows, ran, len(cells_done), interrupted, reports, rounds, runs_done, extended)


def _stop_forkserver() -> None:
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)  # private; restarts with the next run's env
    if stop:
        try:
            stop()
        except Exception:  # noqa: BLE001
            pass


def _row(cell: dict[str, Any], child: dict[str, Any], run_id: str, pm: PluginManager, started: str,
         wall: float, log_path: Path, out: Path) -> dict[str, Any]:
    phases = child.get("phases", {})
    measured = phases.get("apply", 0.0) + phases.get("baseline", 0.0) + sum(v for k, v in phases.items() if k.startswith("metric:"))
    row = {
        "schema": SCHEMA,
        "run_id": run_id,
        "cell": cell["key"],
        "round": cell.get("round", 1),
        "suite": cell["suite"],
        "technique": cell["technique"],
        "baseline": cell["baseline"]["label"],
        "backend": cell["backend"],
        "model": cell["model"],
        "model_fingerprint": cell["model_fingerprint"],
        "workload": cell["workload"],
        "data": cell["data"],
        "status": child["status"],
        "reason": child.get("reason", ""),
        "metrics": child.get("metrics", {}),
        "plugins": pm.versions(),
        "started": started,
        "seconds": round(wall, 4),
        "phases": phases,
        "log": str(log_path.relative_to(out)),
    }
    if child["status"] == "ok":
        # what the harness itself cost: process start, plugin and model loading, transport
        row["harness_overhead_s"] = round(max(wall - measured, 0.0), 4)
    for k in ("unstable", "backend_info", "model_info", "plugin_of", "threads", "traceback", "technique_info", "training"):
        if k in child:
            row[k] = child[k]
    return row
