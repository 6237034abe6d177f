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
    outcome = run_suite(suite, pm, RunOptions(out_dir=out, strict=args.strict, disabled=tuple(_disabled(args)), timeout=args.timeout))
    wall = time.perf_counter() - t0
    failed = sum(1 for r in outcome.rows if r["status"] == "failed")
    ran = f"{outcome.ran} cells run" if outcome.rounds == 1 else f"{outcome.ran} cell runs ({outcome.rounds} interleaved rounds)"
    print(f"{suite.name}: {ran}, {outcome.skipped_as_done} already done, {failed} failed, in {wall:.1f} s")
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
    from .manager import PluginError

    try:
        return args.fn(args)
    except SuiteError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        return EXIT_ERROR
    except (PluginError, ReportError) as e:
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
