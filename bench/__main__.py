"""Command line: ``python -m bench [run] --grid sizes``, ``python -m bench list``, ``python -m bench report``.

``run`` is the default subcommand. Bad input (unknown grid, method, backbone, task or budget, a
results file of another schema) ends with one clear line on stderr and exit status 2, before anything
is trained or written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.backbones import BACKBONES, BackboneError
from bench.grids import BUDGETS, GRIDS, GridError, get_grid, narrow
from bench.results import SchemaError
from bench.tasks import TASKS, TaskError

SUBCOMMANDS = ("run", "list", "report", "compare")
ROOT = Path(__file__).resolve().parent.parent


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas, got '{text}'") from None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which a container or taskset narrows; else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run a grid (default)")
    run.add_argument("--grid", default="sizes", help=f"one of: {', '.join(GRIDS)} (default sizes)")
    run.add_argument("--methods", type=_csv_list, help="comma-separated subset of the grid's methods")
    run.add_argument("--backbones", type=_csv_list, help="comma-separated backbones or local directories")
    run.add_argument("--seeds", type=_seeds, help="comma-separated seeds, e.g. 0,1,2")
    run.add_argument("--task", help=f"auto, {', '.join(TASKS)} (default: the grid's)")
    run.add_argument("--budget", help=f"one of: {', '.join(BUDGETS)} (default: the grid's)")
    run.add_argument("--threads", type=int, default=available_cores(),
                     help="torch threads (default: the cores this process may use; a busy shared machine "
                          "may need 1)")
    run.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    run.add_argument("--results", type=Path, default=ROOT / "results" / "runs.csv", help="CSV to append to")
    run.add_argument("--data-dir", help="GLUE SST-2 directory with train.tsv and dev.tsv")
    run.add_argument("--rerun", action="store_true", help="run again even if already recorded")
    run.add_argument("--no-bucketing", action="store_true", help="random training batches (for comparison)")
    run.add_argument("--quiet", action="store_true", help="no per-batch training progress")
    sub.add_parser("list", help="grids, budgets, methods, backbones, tasks")
    report = sub.add_parser("report", help="regenerate reports/ from results/*.csv")
    report.add_argument("--results-dir", type=Path, default=ROOT / "results")
    report.add_argument("--out", type=Path, default=ROOT / "reports")
    report.add_argument("--check", action="store_true", help="fail if reports/ differs from a fresh render")
    compare = sub.add_parser("compare", help="before/after throughput and accuracy of two result CSVs")
    compare.add_argument("before", help="a CSV path, or GIT_REF:path (e.g. HEAD~1:results/runs.csv)")
    compare.add_argument("after", help="a CSV path, or GIT_REF:path")
    return parser


def _list() -> None:
    from methods import METHODS

    print("grids:")
    for g in GRIDS.values():
        methods = ", ".join(v.name for v in g.variants)
        print(f"  {g.name:17} {g.description}\n  {'':17} methods {methods}; backbones {', '.join(g.backbones)};"
              f" seeds {list(g.seeds)}; task {g.task}; budget {g.budget}")
    print("budgets:")
    for b in BUDGETS.values():
        print(f"  {b.name:17} {b.describe()}")
    print("methods:")
    for m in METHODS.values():
        print(f"  {m.name:17} {m.description}; defaults {m.defaults}")
    print("backbones:")
    for b in BACKBONES.values():
        where = b.hub_id if b.kind == "hub" else b.kind
        print(f"  {b.name:17} {b.description} [{where}]")
    print("tasks:")
    print(f"  {'auto':17} sst2 when it can be loaded, else mr")
    for name, text in TASKS.items():
        print(f"  {name:17} {text}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv.insert(0, "run")
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            _list()
        elif args.command == "report":
            from bench.report import check_reports, write_reports

            if args.check:
                return check_reports(args.results_dir, args.out)
            for path in write_reports(args.results_dir, args.out):
                print(f"wrote {path}")
        elif args.command == "compare":
            from bench.compare import compare

            print(compare(args.before, args.after))
        else:
            from bench.runner import run_grid

            grid = narrow(get_grid(args.grid), args.methods, args.backbones, args.seeds, args.task, args.budget)
            if args.threads < 1:
                raise GridError(f"--threads must be at least 1, got {args.threads}")
            run_grid(grid, args.results, args.device, args.threads, args.rerun, args.data_dir,
                     not args.no_bucketing, not args.quiet)
    except (GridError, BackboneError, TaskError, SchemaError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
