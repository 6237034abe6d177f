"""Distributed cells: torchrun launched from a cell, and the rank entry points it runs.

A parallel technique (``optbench.plugins.parallel``) runs in the ordinary cell process and
calls :func:`launch`. It writes the job (``job.json``), the model (``model.pt``, the whole
pickled module, so any model source works) and the job's data into a temporary directory,
then runs, as a child of the cell::

    python -m torch.distributed.run --standalone --nproc-per-node W --max-restarts 0 \\
        -m optbench.distributed DIR

The cell leads its own process group, so the runner's timeout or Ctrl-C kills torchrun and
every rank with the cell; :func:`launch` also has its own timeout, below the cell's, so a
stuck job fails its cell with a reason instead of a bare "timed out".

Each rank runs :func:`rank_main`: gloo on CPU, NCCL on GPU (``cuda:LOCAL_RANK``), with a
short collective timeout so a rank left waiting on a dead peer gives up. Job kinds:

``ddp``
    DistributedDataParallel training, AdamW, fixed seed; every rank draws the same global
    batch from a seeded generator and takes its slice, so the global loss of a step is the
    single-process loss on the same batch (:func:`train_steps` is also that single process).
``pipeline``
    ``torch.distributed.pipelining``: ``pipeline()`` with ``SplitPoint.BEGINNING`` at
    ``blocks.k`` and ``ScheduleGPipe``; stage ``r`` on rank ``r``; the last rank keeps the
    output.
``tensor``
    DTensor tensor parallelism on every block's FFN (``ColwiseParallel`` on ``mlp.fc``,
    ``RowwiseParallel`` on ``mlp.out``) over ``init_device_mesh(device, (W,))``.

Rank 0 writes ``result.json`` (the last rank ``output.pt`` for forward jobs, rank 0
``trained.pt`` for ddp); every rank writes ``rank<r>.json`` (its OMP_NUM_THREADS, torch
threads, peak memory, local parameter bytes) and, if it raises, ``rank<r>.error.json``;
the earliest error is the cell's one-line reason.

Fault injection for tests: ``OPTBENCH_FAIL_RANK=r`` in the environment makes rank ``r``
raise at its first step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAIL_RANK_ENV = "OPTBENCH_FAIL_RANK"
#: seconds a rank waits in a collective before giving up (gloo / NCCL timeout)
DEFAULT_RANK_TIMEOUT_S = 60.0


class DistributedError(RuntimeError):
    """A distributed job failed; the message is one line naming the rank and its error."""


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def world_size_problem(world_size: int, device: str, threads_per_rank: int = 1) -> str:
    """Why this machine cannot host ``world_size`` ranks on ``device``, or '' when it can.

    The rule: a CPU core per rank thread on CPU (ranks sharing cores would measure
    contention, not parallelism), one GPU per rank on CUDA (NCCL refuses two ranks on one
    device).
    """
    if device == "cuda":
        import torch

        n = torch.cuda.device_count()
        return "" if world_size <= n else f"world size {world_size} needs {world_size} GPUs (one per rank); this machine has {n}"
    n, need = usable_cpus(), world_size * threads_per_rank
    if need <= n:
        return ""
    per = "one per rank" if threads_per_rank == 1 else f"{threads_per_rank} threads per rank"
    return f"world size {world_size} needs {need} CPU cores ({per}); this machine has {n}"


# --- the training loop, shared by the ranks and the single-process reference -------------------


def train_steps(model: Any, tokens: Any, job: dict[str, Any], rank: int = 0, world: int = 1, net: Any = None,
                device: str = "cpu") -> tuple[list[float], list[float]]:
    """``(global loss per step, seconds per step)`` of AdamW training on ``job``'s global batch.

    Every rank draws the same global batch (same seeded generator) and trains on its slice
    ``[rank * b, (rank + 1) * b)``; ``net`` is the DDP wrapper (None: one process). The loss
    of a step is averaged over ranks, so it is the single-process loss on the same batch.
    """
    import torch
    import torch.nn.functional as F

    from .models.corpus import batches

    net = net if net is not None else model
    g = torch.Generator().manual_seed(job["seed"])
    data = batches(tokens, job["batch"], job["seq_len"], g)
    local = job["batch"] // world
    opt = torch.optim.AdamW(model.parameters(), lr=job["lr"], weight_decay=0.01)
    model.train()
    losses, times = [], []
    for _ in range(job["steps"]):
        x, y = next(data)
        x, y = x[rank * local:(rank + 1) * local].to(device), y[rank * local:(rank + 1) * local].to(device)
        t0 = time.perf_counter()
        logits = net(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total = loss.detach().clone()
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(total)
            total /= world
        value = total.item()  # waits for the device
        times.append(time.perf_counter() - t0)
        losses.append(value)
    return losses, times


def timed_forward(call: Any, warmup: int, reps: int, sync: Any = None) -> tuple[Any, list[float]]:
    """Run ``call`` ``warmup + reps`` times; ``(last output, seconds of the timed calls)``.

    ``sync`` (a barrier, or a device synchronise) runs before and after each call, so a
    call's time is the slowest rank's.
    """
    import torch

    out, times = None, []
    with torch.no_grad():
        for i in range(warmup + reps):
            if sync:
                sync()
            t0 = time.perf_counter()
            out = call()
            if sync:
                sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return out, times


def _barrier(device: str) -> Any:
    """A call's end as every rank sees it: the device's queued work done, then all ranks met."""
    import torch
    import torch.distributed as dist

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dist.barrier()

    return sync


def local_param_bytes(model: Any) -> int:
    """Bytes of the parameters this process holds (a DTensor counts its local shard)."""
    total = 0
    for p in model.parameters():
        t = p.to_local() if hasattr(p, "to_local") else p
        total += t.numel() * t.element_size()
    return total


# --- rank side ---------------------------------------------------------------------------------


def _peak_rss() -> int:
    from .measure.memory import peak_rss_bytes

    return peak_rss_bytes()


def _check_fail(rank: int) -> None:
    v = os.environ.get(FAIL_RANK_ENV)
    if v is not None and int(v) == rank:
        raise RuntimeError(f"injected failure on rank {rank} ({FAIL_RANK_ENV}={v})")


def _run_ddp(job: dict[str, Any], work: Path, model: Any, rank: int, world: int, device: str) -> tuple[dict[str, Any], Any]:
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    tokens = torch.load(work / "train.pt", weights_only=True)
    net = DDP(model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None)
    _check_fail(rank)
    losses, times = train_steps(model, tokens, job, rank, world, net=net, device=device)
    if rank == 0:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, work / "trained.pt")
    return {"losses": losses, "step_times": times}, model


def _run_pipeline(job: dict[str, Any], work: Path, model: Any, rank: int, world: int, device: str) -> tuple[dict[str, Any], Any]:
    import torch
    from torch.distributed.pipelining import ScheduleGPipe, SplitPoint, pipeline

    x = torch.load(work / "input.pt", weights_only=True).to(device)
    depth = len(model.blocks)
    cuts = [round(i * depth / world) for i in range(1, world)]
    model.eval()
    mb = x.chunk(job["microbatches"])[0]
    pipe = pipeline(model, mb_args=(mb,), split_spec={f"blocks.{c}": SplitPoint.BEGINNING for c in cuts})
    stage = pipe.build_stage(rank, torch.device(device))
    schedule = ScheduleGPipe(stage, job["microbatches"])
    _check_fail(rank)

    def call():
        return schedule.step(x) if rank == 0 else schedule.step()

    out, times = timed_forward(call, job["warmup"], job["reps"], sync=_barrier(device))
    if rank == world - 1:
        torch.save(out.detach().float().cpu(), work / "output.pt")
    local = pipe.get_stage_module(rank)
    return {"times": times, "cuts": cuts}, local


def _run_tensor(job: dict[str, Any], work: Path, model: Any, rank: int, world: int, device: str) -> tuple[dict[str, Any], Any]:
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    x = torch.load(work / "input.pt", weights_only=True).to(device)
    mesh = init_device_mesh(torch.device(device).type, (world,))
    model.eval()
    for block in model.blocks:
        parallelize_module(block.mlp, mesh, {"fc": ColwiseParallel(), "out": RowwiseParallel()})
    _check_fail(rank)
    out, times = timed_forward(lambda: model(x), job["warmup"], job["reps"], sync=_barrier(device))
    if rank == 0:
        torch.save(out.detach().float().cpu(), work / "output.pt")
    return {"times": times}, model


JOBS = {"ddp": _run_ddp, "pipeline": _run_pipeline, "tensor": _run_tensor}


def rank_main(work_dir: str) -> None:
    """Entry point of one rank (``python -m optbench.distributed DIR`` under torchrun)."""
    work = Path(work_dir)
    rank = int(os.environ.get("RANK", "0"))
    try:
        _rank(work, rank)
    except BaseException as e:
        # the cell reads this: the earliest error file is the job's root cause
        err = {"rank": rank, "type": type(e).__name__, "message": str(e).strip().splitlines()[0] if str(e).strip() else "",
               "traceback": traceback.format_exc(limit=12), "time": time.time()}
        (work / f"rank{rank}.error.json").write_text(json.dumps(err))
        raise


def _rank(work: Path, rank: int) -> None:
    import datetime as dt

    import torch
    import torch.distributed as dist

    job = json.loads((work / "job.json").read_text())
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if job["device"] == "cuda":
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    torch.manual_seed(job["seed"])
    dist.init_process_group(backend, timeout=dt.timedelta(seconds=job["rank_timeout_s"]))
    try:
        model = torch.load(work / "model.pt", weights_only=False).to(device)
        result, local = JOBS[job["kind"]](job, work, model, rank, world, device)
        info = {
            "rank": rank, "local_rank": local_rank, "pid": os.getpid(), "device": device, "backend": backend,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads(),
            "peak_rss": _peak_rss(), "param_bytes": local_param_bytes(local),
        }
        if device.startswith("cuda"):
            info["cuda_peak_allocated"] = int(torch.cuda.max_memory_allocated())
        (work / f"rank{rank}.json").write_text(json.dumps(info))
        if rank == 0:
            tmp = work / "result.json.tmp"
            tmp.write_text(json.dumps({**result, "world_size": world, "backend": backend}))
            os.replace(tmp, work / "result.json")
        dist.barrier()  # nobody tears the group down while a peer still needs it
    finally:
        dist.destroy_process_group()


# --- cell side ---------------------------------------------------------------------------------


@dataclass
class LaunchResult:
    result: dict[str, Any]  # rank 0's result.json
    ranks: list[dict[str, Any]]  # rank<r>.json, by rank
    seconds: float  # wall time of torchrun, rank start-up included
    command: list[str]
    output: Any = None  # the forward output (pipeline / tensor jobs)
    state_dict: dict[str, Any] | None = None  # the trained weights (ddp)
    env: dict[str, str] = field(default_factory=dict)  # what the ranks' environment set


def _descendants(pid: int) -> list[Any]:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _stop(proc: subprocess.Popen) -> None:
    """Kill torchrun and every process under it.

    torchrun is stopped first (SIGSTOP), so it cannot start a rank between the listing of
    its descendants and their killing; a rank whose parent died first would be orphaned
    out of reach of the process tree.
    """
    try:
        proc.send_signal(signal.SIGSTOP)
    except ProcessLookupError:
        pass
    for p in _descendants(proc.pid):
        try:
            p.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def _failure(work: Path, world: int, rc: int, log_text: str) -> str:
    """One line: the earliest rank error, else what torchrun said about the failed rank."""
    errors = []
    for f in work.glob("rank*.error.json"):
        try:
            errors.append(json.loads(f.read_text()))
        except ValueError:
            pass
    if errors:
        e = min(errors, key=lambda e: e["time"])
        return f"rank {e['rank']} of {world} failed: {e['type']}: {e['message']}"
    # no error file: the rank died without a Python exception (a signal, os._exit); torchrun's
    # summary names it ("rank : 1 (local_rank: 1)", "exitcode : -11", "traceback : Signal 11 ...")
    lines = log_text.splitlines()
    root = next((i for i, ln in enumerate(lines) if ln.startswith("Root Cause")), 0)
    facts = {}
    for line in lines[root:]:
        s = line.strip()
        for key in ("rank", "exitcode", "traceback"):
            value = s.split(":", 1)[1].strip() if ":" in s else ""
            if s.startswith(key) and key not in facts and value and not value.startswith("To enable traceback"):
                facts[key] = " ".join(value.split())
    if facts:
        return "torchrun: " + ", ".join(f"{k} {v}" for k, v in facts.items())
    tail = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    return f"torchrun exited with code {rc}" + (f": {tail[-1]}" if tail else "")


def launch(job: dict[str, Any], model: Any, world_size: int, *, work_root: str | None = None,
           inputs: Any = None, train_tokens: Any = None, threads_per_rank: int = 1, timeout_s: float = 300.0,
           log: Any = print) -> LaunchResult:
    """Run ``job`` on ``world_size`` ranks under torchrun; raise :class:`DistributedError` on failure.

    ``threads_per_rank`` becomes the ranks' OMP_NUM_THREADS (torchrun's own default is 1
    for more than one rank); each rank records what it saw.
    """
    import shutil
    import tempfile

    import torch

    if work_root:
        os.makedirs(work_root, exist_ok=True)
    # absolute: torchrun runs in it, and the ranks are handed its path
    work = Path(tempfile.mkdtemp(prefix="optbench-dist-", dir=work_root)).resolve()
    try:
        job = {"rank_timeout_s": DEFAULT_RANK_TIMEOUT_S, **job}
        (work / "job.json").write_text(json.dumps(job))
        torch.save(model, work / "model.pt")
        if inputs is not None:
            torch.save(inputs, work / "input.pt")
        if train_tokens is not None:
            torch.save(train_tokens, work / "train.pt")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(world_size),
               "--max-restarts", "0", "--monitor-interval", "0.2", "-m", "optbench.distributed", str(work)]
        set_env = {"OMP_NUM_THREADS": str(threads_per_rank), "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1", "PYTHONUNBUFFERED": "1"}
        env = {**os.environ, **set_env}
        log(f"launching: {' '.join(cmd)} (OMP_NUM_THREADS={threads_per_rank}, timeout {timeout_s:g} s)")
        t0 = time.perf_counter()
        with open(work / "torchrun.log", "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=work)
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _stop(proc)
                rc = None
            except BaseException:
                _stop(proc)
                raise
        seconds = time.perf_counter() - t0
        log_text = (work / "torchrun.log").read_text(errors="replace")
        log(log_text.rstrip())
        if rc is None:
            raise DistributedError(f"{job['kind']} job of world size {world_size} timed out after {timeout_s:g} s "
                                   "(torchrun and its ranks were stopped)")
        if rc != 0 or not (work / "result.json").exists():
            raise DistributedError(_failure(work, world_size, rc, log_text))
        ranks = [json.loads((work / f"rank{r}.json").read_text()) for r in range(world_size)]
        out_t = torch.load(work / "output.pt", weights_only=True) if (work / "output.pt").exists() else None
        trained = torch.load(work / "trained.pt", weights_only=True) if (work / "trained.pt").exists() else None
        return LaunchResult(json.loads((work / "result.json").read_text()), ranks, seconds, cmd, out_t, trained, set_env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: torchrun ... -m optbench.distributed WORK_DIR")
    rank_main(sys.argv[1])
