"""Command line: ``python -m bench [run] --grid sizes``, ``reproduce``, ``list``, ``report``, ``compare``,
``migrate``.

``run`` is the default subcommand. Exit codes:

* 0: every run of the grid is ok or collapsed, or was already recorded (or the command succeeded);
* 1: at least one run failed (each is a ``failed`` row; the last line sums up), the results file
  stopped taking rows part way (a full disk: the unrecorded row is kept in the log), ``report --check``
  found reports/ out of date, or ``reproduce`` found a cell that DIFFERS;
* 2: bad input (an unknown name, an invalid hyper-parameter, unreadable or invalid data, a results
  file of another schema, an unwritable path), one line on stderr, before any work;
* 130 / 143: interrupted by Ctrl-C / SIGTERM (one line, from the first moment of start-up on); the
  interrupted run is not recorded;
* 141: standard output was closed by its reader (``list | head``), as a C tool killed by SIGPIPE.

Tracebacks are shown for internal errors, or for every error with ``--debug``; they are always kept in
the grid's log, whose path a failed row's ``error`` names.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from bench.backbones import BACKBONES, BackboneError
from bench.config.grid_files import GRIDS, MAX_RUNS, apply_sets, check_size, expand_sweeps, get_grid, set_everywhere
from bench.config.grids import BUDGETS, Grid, GridError, narrow
from bench.launchers import LAUNCHERS
from bench.launchers.driver import GridAborted, RunSettings
from bench.record.provenance import available_cores
from bench.record.schema import SchemaError
from bench.registry import UnknownName
from bench.report.install import ReportError
from bench.startup import stopped_while_starting, take_over
from bench.tasks import TASKS, TaskError

SUBCOMMANDS = ("run", "reproduce", "run-one", "list", "report", "compare", "migrate")
ROOT = Path(__file__).resolve().parent.parent
BIG_GRID = 1_000  # a grid of more runs says its size before the checks of every run (seconds at 10,000)
USER_ERRORS = (GridError, BackboneError, TaskError, SchemaError, ReportError, UnknownName)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the run in progress is not recorded) but exiting 143."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas, got '{text}'") from None


def _grid_arguments(parser: argparse.ArgumentParser, results: Path) -> None:
    parser.add_argument("--grid", default="sizes",
                        help=f"one of: {', '.join(GRIDS)} (default sizes), or a path to a .toml grid file")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                        help="override a method's setting, e.g. --set prefix.lr=3e-3 (repeatable)")
    parser.add_argument("--methods", type=_csv_list, help="comma-separated subset of the grid's methods")
    parser.add_argument("--backbones", type=_csv_list, help="comma-separated backbones or local directories")
    parser.add_argument("--seeds", type=_seeds, help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--task", help=f"auto, {', '.join(TASKS)}, or a path to a .toml task file (default: the "
                                       "grid's; docs/backbones-and-tasks.md#task-files)")
    parser.add_argument("--budget", help=f"one of: {', '.join(BUDGETS)} (default: the grid's)")
    parser.add_argument("--threads", type=int, default=available_cores(),
                        help="torch threads (default: the cores this process may use; a busy shared machine "
                             "may need 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--precision", choices=("fp32", "bf16"),
                        help="every method's precision: fp32, or bf16 autocast with fp32 weights (default: the grid's)")
    parser.add_argument("--results", type=Path, default=results, help=f"CSV to append to (default {results})")
    parser.add_argument("--data-dir", help="GLUE SST-2 directory with train.tsv and dev.tsv")
    parser.add_argument("--rerun", action="store_true", help="run again even if already recorded")
    parser.add_argument("--max-runs", type=int, default=MAX_RUNS, metavar="N",
                        help=f"refuse a grid of more than N runs, counted before anything is expanded (default "
                             f"{MAX_RUNS:,}: a bigger sweep is more likely a typo than a plan)")
    parser.add_argument("--no-bucketing", action="store_true", help="random training batches (for comparison)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch training progress")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("--launcher", choices=list(LAUNCHERS), default="serial",
                        help="; ".join(f"{launcher.name}: {launcher.help}" for launcher in LAUNCHERS.values()))
    for launcher in LAUNCHERS.values():
        launcher.add_options(parser)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    _grid_arguments(sub.add_parser("run", help="run a grid (default)"), ROOT / "results" / "runs.csv")
    reproduce = sub.add_parser("reproduce", help="run a grid into its own file and compare with the committed rows")
    _grid_arguments(reproduce, ROOT / "reproduced" / "runs.csv")
    reproduce.add_argument("--against", type=Path, default=ROOT / "results",
                           help="folder of committed results CSVs to compare with")
    one = sub.add_parser("run-one", help="run one fully specified run (JSON or a JSON file) and print its row")
    one.add_argument("spec", help='e.g. \'{"grid": "smoke", "task": "synthetic", "backbone": "random-bert-tiny", '
                                  '"method": "finetune", "seed": 0, "budget": "smoke"}\' or a .json file')
    one.add_argument("--results", type=Path, help="also append the row to this CSV (a run it already records as ok "
                                                  "or collapsed is not run again: its row is printed)")
    one.add_argument("--rerun", action="store_true", help="with --results: run again even if already recorded")
    one.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub.add_parser("list", help="grids, budgets, methods, backbones, tasks")
    report = sub.add_parser("report", help="regenerate reports/ from results/*.csv")
    report.add_argument("--results-dir", type=Path, default=ROOT / "results")
    report.add_argument("--out", type=Path, default=ROOT / "reports")
    report.add_argument("--check", action="store_true", help="fail if reports/ differs from a fresh render")
    compare = sub.add_parser("compare", help="before/after throughput and accuracy of two result CSVs")
    compare.add_argument("before", help="a CSV path, or GIT_REF:path (e.g. HEAD~1:results/runs.csv)")
    compare.add_argument("after", help="a CSV path, or GIT_REF:path")
    migrate = sub.add_parser("migrate", help="upgrade a results CSV of an earlier schema version")
    migrate.add_argument("path", type=Path)
    return parser


def _list() -> None:
    """Everything a grid file or the command line can name; imports no torch, so it answers at once."""
    from methods import METHODS
    from methods.settings import TrainingSettings

    def settings_lines(cls, defaults: dict) -> None:
        for name, spec in cls.fields().items():
            print(f"  {'':17} {name:18} {defaults[name]!r:>34}  {spec.metadata['help']}")

    print("grids:")
    for g in GRIDS.values():
        methods = ", ".join(v.name for v in g.variants)
        print(f"  {g.name:17} {g.description}\n  {'':17} methods {methods}; backbones {', '.join(g.backbones)};"
              f" seeds {list(g.seeds)}; task {g.task}; budget {g.budget}; file grids/{g.name}.toml")
    print("budgets:")
    for b in BUDGETS.values():
        print(f"  {b.name:17} {b.describe()}")
    print("training settings (every method; set per method, e.g. --set prompt.lr=3e-2; default shown for finetune):")
    settings_lines(TrainingSettings, TrainingSettings.defaults())
    print("methods (own settings, and training defaults that differ from the shared ones):")
    for m in METHODS.values():
        print(f"  {m.name:17} {m.description}" + (f"; trains with {m.training}" if m.training else ""))
        settings_lines(m.settings, m.defaults())
    print("backbones:")
    for b in BACKBONES.values():
        where = b.hub_id if b.kind == "hub" else b.kind
        print(f"  {b.name:17} {b.description} [{where}]")
    print("  (or a local model folder)")
    print("tasks:")
    print(f"  {'auto':17} sst2 when it can be loaded, else mr")
    for name, text in TASKS.items():
        print(f"  {name:17} {text}")
    print("  (or a .toml task file of your own data: docs/backbones-and-tasks.md#task-files)")


def check_device(device: str) -> None:
    """Refuse a device this torch build cannot use, with what is accepted."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise GridError(f"--device '{device}' is not a device; accepted: cpu, cuda, cuda:N") from None
    if parsed.type == "cpu":
        return
    if parsed.type != "cuda":
        raise GridError(f"--device '{device}' is not supported; accepted: cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise GridError(f"--device {device}: this torch build ({torch.__version__}) sees no CUDA GPU; "
                        "accepted here: cpu")
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise GridError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here; accepted: "
                        + ", ".join(f"cuda:{i}" for i in range(torch.cuda.device_count())))


def _grid_of(args) -> Grid:
    """The grid the command line names: the grid, narrowed by --methods/--backbones/--seeds/--task/--budget,
    then --set (so it may set a method --methods added) and --precision; its size counted before its
    sweeps are expanded (refused over --max-runs)."""
    if args.max_runs < 1:
        raise GridError(f"--max-runs must be a number of runs >= 1, got {args.max_runs}")
    whole = get_grid(args.grid)
    grid = narrow(whole, args.methods, args.backbones, args.seeds, args.task, args.budget)
    grid = apply_sets(grid, args.set, whole=whole)
    if args.precision:
        grid = set_everywhere(grid, "precision", args.precision)
    size = check_size(grid, args.max_runs)
    if size > BIG_GRID:
        print(f"grid {grid.name}: {size:,} runs (the limit is {args.max_runs:,}); checking every run's settings "
              "before the first one starts", flush=True)
    return expand_sweeps(grid, args.max_runs)


def _launcher_options(args):
    """The chosen launcher and its typed options; an option of another launcher is refused, naming whose it is."""
    launcher = LAUNCHERS[args.launcher]
    for other in LAUNCHERS.values():
        foreign = other.given(args) if other is not launcher else []
        if foreign:
            raise GridError(f"{' and '.join(foreign)} {'go' if len(foreign) > 1 else 'goes'} with --launcher "
                            f"{other.name}, not --launcher {launcher.name}")
    return launcher, launcher.options_of(args)


def _run(args) -> int:
    grid = _grid_of(args)
    if args.threads < 1:
        raise GridError(f"--threads must be at least 1, got {args.threads}")
    check_device(args.device)
    if args.command == "reproduce":
        from bench.report.reproduce import committed_csvs

        committed_csvs(args.against)  # a missing --against is refused before any run
    launcher, options = _launcher_options(args)
    settings = RunSettings(args.device, args.threads, args.rerun, args.data_dir, not args.no_bucketing,
                           not args.quiet, args.debug)
    outcome = launcher.run(grid, args.results, settings, options)
    if args.command == "reproduce":
        from bench.record.store import finished_rows
        from bench.report.reproduce import committed_rows, comparison

        table, verdicts = comparison(committed_rows(args.against), finished_rows(args.results))
        print(f"\nCommitted rows ({args.against}) beside the rows measured on this machine ({args.results}):\n")
        print(table)
        if "DIFFERS" in verdicts:
            return 1
    if outcome.exit_code:
        print(f"error: {outcome.measured['failed']} run(s) failed; their rows say why", file=sys.stderr)
    return outcome.exit_code


def _run_one(args) -> int:
    """One run from its spec; its row as JSON on stdout (and appended to --results); 1 when it failed. A run
    --results already records as finished is not run again (unless --rerun): its recorded row is printed."""
    from bench.backbones import unavailable
    from bench.config.validate import validate
    from bench.launchers.driver import preflight
    from bench.plan import RunSpec
    from bench.record.store import RunClaim

    spec = RunSpec.from_json(args.spec)
    if args.results:
        preflight(args.results)
    check_device(spec.device)
    validate(Grid(spec.grid, "", (spec.variant,), (spec.backbone,), (spec.seed,), spec.task, spec.budget.name))
    problem = unavailable(spec.backbone)
    if problem:
        raise BackboneError(problem)
    spec.task_data()  # loads and checks the task data before any work
    rid = spec.run_id
    if not args.results:
        return _execute_one(spec, args)
    claim = RunClaim(args.results, rid)  # a second run-one of the same spec waits, then reuses this one's row
    if not claim.acquire(wait=False):
        print(f"run-one: run {rid} is being run by another process; waiting for it", file=sys.stderr)
        claim.acquire(wait=True)
    try:
        recorded = None if args.rerun else _recorded(args.results, rid)
        if recorded:
            return _reuse_one(args.results, rid, recorded)
        return _execute_one(spec, args)
    finally:
        claim.release()


def _recorded(results: Path, rid: str) -> dict | None:
    from bench.record.store import finished_rows

    return finished_rows(results).get(rid)


def _reuse_one(results: Path, rid: str, row: dict) -> int:
    """Print ``row``, which ``results`` already holds for run ``rid`` (as run-one prints a new one), saying so."""
    import json

    from bench.record.provenance import machine_of

    print(f"run-one: run {rid} is already recorded in {results} (measured {row['created_at'][:10]} on "
          f"{machine_of(row)}, eval acc {row['acc']}); not run again, nothing appended: its recorded row follows "
          "(--rerun measures it again)", file=sys.stderr)
    print(json.dumps(row, sort_keys=True))
    return 0


def _execute_one(spec, args) -> int:
    """Run ``spec`` here, print its row as JSON and append it to ``args.results`` when given."""
    import json

    from bench.execute.unit import execute
    from bench.record.provenance import git_state
    from bench.record.store import append_row

    sha, dirty = git_state()
    row = execute(spec, {"git_sha": sha, "git_dirty": dirty, "launcher": "run-one"}, say=print)
    trace = row.pop("traceback", "")
    if row.pop("expected", True) is False or args.debug:
        print(trace, file=sys.stderr, end="")
    if args.results:
        append_row(args.results, row)
    print(json.dumps(row, default=str, sort_keys=True))
    return 1 if row["status"] == "failed" else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv.insert(0, "run")
    args = _parser().parse_args(argv)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        take_over(_on_sigterm)  # until here (imports, parsing) a signal was one line (bench.startup)
        if args.command == "list":
            _list()
        elif args.command == "report":
            from bench.report.pages import check_reports, write_reports

            if args.check:
                return check_reports(args.results_dir, args.out)
            for path in write_reports(args.results_dir, args.out):
                print(f"wrote {path}")
        elif args.command == "compare":
            from bench.report.compare import compare

            print(compare(args.before, args.after))
        elif args.command == "run-one":
            return _run_one(args)
        elif args.command == "migrate":
            from bench.record.store import migrate

            print(migrate(args.path))
        else:
            return _run(args)
    except USER_ERRORS as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GridAborted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        resume = (": finished runs are recorded, the interrupted one is not; run the same command again to resume"
                  if args.command in ("run", "reproduce") else "")
        print(f"\ninterrupted by {'SIGTERM' if terminated else 'Ctrl-C'}{resume}", file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:  # the reader went away (``list | head``): stop quietly, as a C tool would on SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot raise again
        return 141
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not stopped_while_starting else signal.SIG_DFL)
    return 0


def _exit(code: int) -> None:
    """Exit with ``code``. After Ctrl-C, by ``os._exit``: a KeyboardInterrupt that passed through Python code
    a library runs from C (``PyRun_String``, as pybind11's eval does; likely in torch's import) leaves CPython
    flagged to end by killing itself with SIGINT even once caught (seen: -2 to a parent instead of 130, one
    start in fifteen interrupted at 1.5 s)."""
    if code != 130:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone or a closed stream: nothing more to say anyway
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
