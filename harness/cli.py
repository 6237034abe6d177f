"""The ``optbench`` command. Heavy imports (torch) happen only in commands that run models."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_REGRESSION, EXIT_ERROR = 0, 1, 2


def _err(msg: str) -> int:
    print(f"optbench: error: {msg}", file=sys.stderr)
    return EXIT_ERROR


def _pm(args: argparse.Namespace):
    from . import manager as plugins

    return plugins.load(strict=getattr(args, "strict", False), disabled=_disabled(args))


def _disabled(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for d in getattr(args, "disable", None) or []:
        out += [x.strip() for x in d.split(",") if x.strip()]
    for p in getattr(args, "p", None) or []:
        if p.startswith("no:"):
            out.append(p[3:])
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import RunOptions, run_suite
    from .suite import load_suite

    pm = _pm(args)
    suite = load_suite(args.suite, pm)
    out = Path(args.output or Path("results") / suite.name)
    t0 = time.perf_counter()
    history = "" if args.no_history else args.history  # None: $OPTBENCH_HISTORY or the user data dir
    outcome = run_suite(suite, pm, RunOptions(out_dir=out, strict=args.strict, disabled=tuple(_disabled(args)), timeout=args.timeout,
                                              history=history))
    wall = time.perf_counter() - t0
    failed = sum(1 for r in outcome.rows if r["status"] == "failed")
    if outcome.rounds == 1:
        ran = f"{outcome.ran} cells run, {outcome.skipped_as_done} already done"
    else:  # a resumed run counts what it found done as it counts what it ran: cell runs, one per cell and round
        ran = f"{outcome.ran} cell runs ({outcome.rounds} interleaved rounds), {outcome.runs_done} already done"
    print(f"{suite.name}: {ran}, {failed} failed, in {wall:.1f} s")
    later = [e for r in outcome.rows for e in r.get("metrics", {}).get("latency", {}).get("rounds", []) if "waited_s" in e]
    if later:  # measure.settle_s: what waiting for the machine state cost
        waited = [e["waited_s"] for e in later if e["waited_s"] > 0]
        print(f"  settle_s: {len(waited)} of {len(later)} later cell rounds waited for their machine state, "
              f"{sum(waited):.0f} s in all; {sum(e['set_aside'] for e in later)} timings set aside")
    ext = outcome.extended
    if ext:  # measure.extend_s: the extra rounds it took, and the cells still short of quiet rounds
        from .measure.latency import QUIET_ROUNDS

        print(f"  extend_s: {ext['rounds']} extra cell rounds in {ext['seconds']:.0f} s"
              + (f"; {len(ext['short'])} cells still under {QUIET_ROUNDS} rounds in the quiet state (compare may find them not comparable)"
                 if ext["short"] else f"; every cell has {QUIET_ROUNDS} rounds in the quiet state"))
    for p in outcome.reports + [str(out / "results.jsonl")]:
        print(f"  {p}")
    if outcome.interrupted:
        return 130
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from .suite import load_suite

    pm = _pm(args)
    suite = load_suite(args.suite, pm)
    cells = suite.cells(pm)
    print(f"{args.suite}: ok ({len(cells)} cells: {len(suite.model)} model x {len(suite.backends)} backend x "
          f"{len(suite.workload['batch'])} batch x {len(suite.workload['seq_len'])} seq_len x {len(suite.techniques)} technique)")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .suite import json_schema

    print(json.dumps(json_schema(_pm(args)), indent=2))
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    if args.check:
        return _check_plugins(args)
    pm = _pm(args)
    pm.collect_all()
    infos = [i.to_dict() for i in pm.info.values()]
    if args.json:
        print(json.dumps(infos, indent=2))
    else:
        from tabulate import tabulate

        rows = [[i["name"], f"{i['dist']} {i['version']}", i["module"], ", ".join(h.replace("optbench_", "") for h in i["hooks"]),
                 "; ".join(f"{k}: {', '.join(v)}" for k, v in i["provides"].items())] for i in infos]
        print(tabulate(rows, headers=["plugin", "distribution", "module", "hooks", "provides"], tablefmt="simple"))
    return EXIT_OK


def _check_plugins(args: argparse.Namespace) -> int:
    """Load every plugin, collect every registry, check each object; run nothing."""
    from . import manager as plugins

    pm = plugins.load(strict=args.strict, disabled=_disabled(args), warn=lambda line: None)
    problems = pm.check()
    if args.json:
        print(json.dumps({"ok": not problems, "plugins": [i.to_dict() for i in pm.info.values()], "problems": problems}, indent=2))
    else:
        for line in problems:
            print(line)
        n = len(pm.info)
        print(f"{n} plugins OK" if not problems else f"{len(problems)} problem{'s' * (len(problems) != 1)} in {n} plugins loaded")
    return EXIT_ERROR if problems else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .reporting import render_all

    pm = _pm(args)
    for p in render_all(args.dir, pm):
        print(p)
    return EXIT_OK


def _history_path(args: argparse.Namespace):
    from .history import resolve

    return resolve(getattr(args, "history", None))


def _open_history(args: argparse.Namespace, required: bool):
    """The history database named by --history / $OPTBENCH_HISTORY / the default, or None if absent and not required."""
    from .history import History, HistoryError

    path = _history_path(args)
    if path is None or not path.exists():
        if required:
            raise HistoryError(f"no history database at {path} (runs record themselves there when they finish; --history PATH to choose)")
        return None
    return History.open(path, create=False)


def _load_dir(path: Path) -> tuple[dict, list[dict]]:
    from .reporting import load_run

    meta, rows = load_run(path)
    meta["_source"] = str(path)
    return meta, rows


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare a run with a baseline; exit 0 clean, 1 on regression, 2 on error."""
    from . import exports
    from .compare import compare_runs
    from .history import LOOK_BACK, HistoryError, compare_in_history, recent_steps, trends_for_report

    cur_ref, base_ref = args.current or "last", args.baseline or "last"

    def is_dir(ref: str) -> bool:  # the keywords win over a directory that happens to be called "last"
        return ref not in ("last", "last-green") and Path(ref).is_dir()

    dir_refs = [r for r in (cur_ref, base_ref) if is_dir(r)]
    h = _open_history(args, required=len(dir_refs) < 2)
    try:
        if is_dir(cur_ref):
            cur_meta, cur_rows = _load_dir(Path(cur_ref))
        elif cur_ref == "last":
            runs = h.runs(suite=args.suite, limit=1)
            if not runs:
                raise HistoryError(f"no runs{' of suite ' + repr(args.suite) if args.suite else ''} in the history {h.path}")
            cur_meta, cur_rows = h.load(runs[0]["run_id"])
        else:
            cur_meta, cur_rows = h.load(cur_ref)
        if is_dir(base_ref):
            base_meta, base_rows = _load_dir(Path(base_ref))
        elif base_ref in ("last", "last-green"):
            prev = h.predecessor(cur_meta.get("suite", "?"), cur_meta, green=base_ref == "last-green",
                                 env_id=cur_meta.get("environment", {}).get("id"))
            if prev is None:
                what = "green run" if base_ref == "last-green" else "run"
                print(f"{cur_meta.get('suite')}: no earlier {what} in the history {h.path}: nothing to compare with")
                return EXIT_OK
            base_meta, base_rows = h.load(prev)
        else:
            base_meta, base_rows = h.load(base_ref)
        if base_meta.get("run_id") == cur_meta.get("run_id"):
            raise HistoryError(f"the baseline and the current run are the same run ({cur_meta.get('run_id')})")
        if base_meta.get("suite") != cur_meta.get("suite"):
            print(f"optbench: note: comparing suite {base_meta.get('suite')!r} with {cur_meta.get('suite')!r}: "
                  "only cells with the same key are compared", file=sys.stderr)
        trends = []
        if h is None:
            cmp = compare_runs(base_meta, base_rows, cur_meta, cur_rows)
        else:  # a cell the baseline cannot judge (machine state) is judged against an earlier run only where
            # compare chose the baseline: a baseline named on the command line is the one used
            look_back = LOOK_BACK if base_ref in ("last", "last-green") else 0
            cmp = compare_in_history(h, base_meta, base_rows, cur_meta, cur_rows, green=base_ref == "last-green",
                                     look_back=look_back)
        if h is not None and not args.no_trends:
            trends = trends_for_report(cur_meta, h.path, cur_rows)
            cmp.trends = recent_steps(trends, cur_meta.get("thresholds"), within=args.trend_window)
    finally:
        if h is not None:
            h.close()

    text = exports.text_summary(cmp)
    print(text)
    md = exports.markdown(cmp)
    if args.markdown:
        Path(args.markdown).write_text(md)
    summary = __import__("os").environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
    if args.junit:
        Path(args.junit).write_text(exports.junit(cmp))
    if args.json:
        Path(args.json).write_text(json.dumps(cmp.to_dict(), indent=1, default=str) + "\n")
    if args.pytest_benchmark:
        Path(args.pytest_benchmark).write_text(json.dumps(exports.pytest_benchmark(cur_meta, cur_rows), indent=2) + "\n")
    trend_fail = args.fail_on_trend and any(t["direction"] == "worse" for t in cmp.trends)
    return EXIT_REGRESSION if cmp.regressed or trend_fail else EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    h = _open_history(args, required=True)
    with h:
        if args.cell or args.metric:
            if not (args.cell and args.metric):
                return _err("--cell and --metric go together: optbench history --cell LABEL --metric NAME")
            return _history_series(h, args)
        runs = h.runs(suite=args.suite, limit=args.limit)
        if args.json:
            print(json.dumps(runs, indent=1))
            return EXIT_OK
        if not runs:
            print(f"no runs{' of suite ' + repr(args.suite) if args.suite else ''} in {h.path}")
            return EXIT_OK
        table = [[r["run_id"], (r["started"] or "")[:19], r["suite"], (r["suite_sha256"] or "")[:8], (r["git_commit"] or "")[:10],
                  r["env_id"], f"{r['cells'] - r['failed']}/{r['cells']}",
                  "-" if r["regressions"] is None else "green" if r["regressions"] == 0 else f"{r['regressions']} regression(s)"]
                 for r in runs]
        print(tabulate(table, headers=["run", "started", "suite", "suite hash", "commit", "environment", "cells ok", "verdict"],
                       tablefmt="simple"))
        print(f"{len(runs)} run{'s' * (len(runs) != 1)} in {h.path}")
    return EXIT_OK


def _history_series(h, args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from . import trends as trends_mod
    from .compare import ALTERNATED, ALTERNATED_ABOUT, alternated_series

    cells = h.cells_named(args.suite, args.cell)
    if not cells:
        return _err(f"no cell {args.cell!r} in the history {h.path}" + (f" for suite {args.suite!r}" if args.suite else "")
                    + " (optbench history lists the runs; a cell is named by its technique label, its full name or its key)")
    out = []
    for key, name in cells:
        pts = h.series(args.suite, key, args.metric)
        if not pts:
            continue
        if args.metric == ALTERNATED:
            pts = alternated_series(pts)
        clean = [p for p in pts if not p["flagged"] and p["value"] is not None]
        steps = {s["run_id"]: s for s in trends_mod.steps([p["value"] for p in clean], [p["run_id"] for p in clean])}
        out.append({"cell": name, "key": key, "metric": args.metric, "points": pts, "steps": list(steps.values())})
        if args.json:
            continue
        print(f"{name} ({key}): {args.metric} [{pts[-1]['unit']}]")
        if args.metric == ALTERNATED:
            print(f"({ALTERNATED_ABOUT})")
        rows = []
        for p in pts:
            ci = f"[{p['ci95'][0]:.6g}, {p['ci95'][1]:.6g}]" if p["ci95"] else ""
            step = steps.get(p["run_id"])
            mark = f"step x{step['ratio']:.3f}" if step and step["ratio"] else ""
            rows.append([p["run_id"], (p["started"] or "")[:19], f"{p['value']:.6g}", ci, p["flagged"] or "", mark])
        print(tabulate(rows, headers=["run", "started", "value", "95% CI", "flagged", "change point"], tablefmt="simple"))
        print()
    if args.json:
        print(json.dumps(out, indent=1))
    elif not out:
        return _err(f"no values of metric {args.metric!r} for cell {args.cell!r} in {h.path}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from . import exports

    meta, rows = _load_dir(Path(args.dir))
    data = exports.pytest_benchmark(meta, rows)
    text = json.dumps(data, indent=2) + "\n"
    if args.output and args.output != "-":
        Path(args.output).write_text(text)
        print(f"{args.output}: {len(data['benchmarks'])} benchmarks (pytest-benchmark format)")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_models_build(args: argparse.Namespace) -> int:
    from .models import reference

    sizes = list(reference.SIZES) if args.size == "all" else [args.size]
    for size in sizes:
        card = reference.build(size, steps=args.steps, out=Path(args.output) if args.output else None,
                               log=lambda s, size=size: print(f"[{size}] {s}", flush=True))
        print(f"{size}: {card['params']:,} parameters, held-out perplexity {card['heldout_perplexity']:.3f} "
              f"vs bigram baseline {card['bigram_heldout_perplexity']:.3f}; hash {card['hash'][:12]}; {card['path']}")
    return EXIT_OK


def cmd_models_list(args: argparse.Namespace) -> int:
    from .models import paths, reference

    for size, cfg in reference.SIZES.items():
        path = paths.checkpoint_path(size)
        status = "not built"
        c = paths.card(size)
        if c:
            status = f"built: held-out ppl {c['heldout_perplexity']:.3f} (bigram {c['bigram_heldout_perplexity']:.3f}), hash {c['hash'][:12]}"
        print(f"{size:6} depth={cfg.depth} width={cfg.width} heads={cfg.heads}  {status}  {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="optbench", description="Benchmark model optimization techniques: speed, memory and accuracy.")
    p.add_argument("--version", action="version", version="optbench 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def plugin_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--strict", action="store_true", help="a broken plugin is fatal instead of one warning line")
        sp.add_argument("--disable", action="append", metavar="NAME", help="do not load plugin NAME (repeatable, or comma-separated)")
        sp.add_argument("-p", action="append", metavar="no:NAME", help="pytest-style: -p no:NAME disables plugin NAME")

    r = sub.add_parser("run", help="run a suite; results and reports go to -o DIR (re-running resumes)")
    r.add_argument("suite")
    r.add_argument("-o", "--output", metavar="DIR", help="results directory (default results/<suite name>/)")
    r.add_argument("--timeout", type=float, metavar="S", help="seconds per cell before it is killed (default: the suite's, else 600)")
    r.add_argument("--history", metavar="PATH", help="history database to record the run in (default: $OPTBENCH_HISTORY, "
                   "else history.db in the user data directory)")
    r.add_argument("--no-history", action="store_true", help="do not record this run in the history")
    plugin_opts(r)
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("validate", help="check a suite without running anything")
    v.add_argument("suite")
    plugin_opts(v)
    v.set_defaults(fn=cmd_validate)

    s = sub.add_parser("schema", help="print the suite JSON Schema (with installed techniques' parameters)")
    plugin_opts(s)
    s.set_defaults(fn=cmd_schema)

    pl = sub.add_parser("plugins", help="list installed plugins, versions, modules and hooks")
    pl.add_argument("--json", action="store_true")
    pl.add_argument("--check", action="store_true",
                    help="validate every installed plugin without running anything: one line per problem, exit 2 if any")
    plugin_opts(pl)
    pl.set_defaults(fn=cmd_plugins)

    rp = sub.add_parser("report", help="re-render report.html and report.md from a results directory")
    rp.add_argument("dir")
    plugin_opts(rp)
    rp.set_defaults(fn=cmd_report)

    def history_opt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--history", metavar="PATH", help="history database (default: $OPTBENCH_HISTORY, else history.db in the user data directory)")

    c = sub.add_parser("compare", help="compare a run with a baseline run: regressions past the threshold and significant; exit 1 on one")
    c.add_argument("--baseline", metavar="RUN|DIR", help="a run id (or prefix) in the history, a results directory, "
                   "'last' (the run before the current one, default) or 'last-green' (the newest without a regression)")
    c.add_argument("--current", metavar="RUN|DIR", help="a results directory or a run id; default: the newest run in the history")
    c.add_argument("--suite", help="with --current omitted: the newest run of this suite")
    history_opt(c)
    c.add_argument("--markdown", metavar="PATH", help="write the Markdown summary here (also appended to $GITHUB_STEP_SUMMARY when set)")
    c.add_argument("--junit", metavar="PATH", help="write JUnit XML: one test case per compared cell and metric, regressions failing")
    c.add_argument("--json", metavar="PATH", help="write the whole comparison as JSON")
    c.add_argument("--pytest-benchmark", metavar="FILE", help="write the current run in pytest-benchmark's JSON format")
    c.add_argument("--fail-on-trend", action="store_true", help="exit 1 also when the history shows a step for the worse in the last runs")
    c.add_argument("--trend-window", type=int, default=7, metavar="N", help="report history steps in the last N runs (default 7)")
    c.add_argument("--no-trends", action="store_true", help="skip change-point detection over the history")
    c.set_defaults(fn=cmd_compare)

    hi = sub.add_parser("history", help="list recorded runs, or a cell's metric over the runs (--cell LABEL --metric NAME)")
    hi.add_argument("--suite", help="only runs of this suite")
    hi.add_argument("--cell", metavar="LABEL", help="a cell: technique label, full cell name or key prefix")
    hi.add_argument("--metric", metavar="NAME", help="the metric to show over the runs (latency, model_bytes, perplexity...; "
                    "latency_vs_baseline: a technique timed alternately with the baseline's model, measure.paired_s)")
    hi.add_argument("--limit", type=int, metavar="N", help="the newest N runs only")
    hi.add_argument("--json", action="store_true")
    history_opt(hi)
    hi.set_defaults(fn=cmd_history)

    ex = sub.add_parser("export", help="export a results directory in another tool's format")
    ex.add_argument("dir")
    ex.add_argument("--format", choices=["pytest-benchmark"], default="pytest-benchmark")
    ex.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    ex.set_defaults(fn=cmd_export)

    m = sub.add_parser("models", help="reference models: list, build")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION")
    mb = msub.add_parser("build", help="train a reference size deterministically and store its checkpoint")
    mb.add_argument("--size", default="tiny", choices=["tiny", "small", "base", "all"])
    mb.add_argument("--steps", type=int, help="override the recipe's step count (changes the checkpoint)")
    mb.add_argument("-o", "--output", metavar="FILE", help="write the checkpoint here instead of its default place")
    mb.set_defaults(fn=cmd_models_build)
    ml = msub.add_parser("list", help="sizes and whether each is built")
    ml.set_defaults(fn=cmd_models_list)
    m.set_defaults(fn=lambda a: (m.print_help(), EXIT_OK)[1])
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return EXIT_OK
    from .errors import ReportError, SuiteError
    from .history import HistoryError
    from .manager import PluginError

    try:
        return args.fn(args)
    except SuiteError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        return EXIT_ERROR
    except (PluginError, ReportError, HistoryError) as e:
        return _err(str(e))
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        from .models.reference import ModelNotBuilt

        if isinstance(e, ModelNotBuilt):
            return _err(str(e))
        if "OPTBENCH_DEBUG" in __import__("os").environ:
            raise
        return _err(f"{type(e).__name__}: {e} (set OPTBENCH_DEBUG=1 for the traceback)")


if __name__ == "__main__":
    sys.exit(main())
