"""Run a grid: validate it, expand it into runs, skip what is recorded, append one row per run.

Before anything trains: the results file must be a regular file (not a FIFO, device or socket), writable
and of this schema, every run's
hyper-parameters and the budget must be valid (all problems listed at once), the task data must load
and validate, and runs that the grid names twice (``--seeds 0,0``) are run once, with a note.

Each run is claimed with a per-run lock, so two processes running the same grid split the work
instead of duplicating it. A run that raises is recorded as ``failed`` with its error and the path
of its full traceback in the grid's log, and the grid goes on. Ctrl-C or SIGTERM stops the grid at
once: the interrupted run is not recorded, so the next invocation runs it again. Runs already recorded
as ok or collapsed are skipped unless ``rerun`` is set, so an interrupted grid resumes.

Progress goes to the console and to a log file (``<results folder>/logs/``): one line per run, a
few lines per epoch, and a summary saying what was measured now and what was reused.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.backbones import BackboneError, backbone_spec, unavailable
from bench.file_kinds import special_kind
from bench.grids import BUDGETS, Grid, GridError
from bench.results import (
    RunClaim,
    SchemaError,
    append_row,
    check_schema,
    cpu_features,
    cpu_name,
    finished_rows,
    git_state,
    machine_of,
)
from bench.tasks import TaskError, check_sizes, resolve_task

CHECKPOINTS = "checkpoints"  # epoch checkpoints' folder, beside the results file
DEFAULT_CHECKPOINT_EVERY_S = 600.0  # short runs never save one; a long one loses at most this much


class GridAborted(RuntimeError):
    """The grid cannot go on (its results file stopped taking rows); exit 1, not bad input."""


class RunLog:
    """Console lines that are also appended, time-stamped, to a log file for the whole invocation.

    A log that stops taking lines (a full disk) never stops the grid: the console still gets every
    line, and the first failure is said once."""

    def __init__(self, folder: Path, name: str, echo: Callable[[str], None] = print):
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.path = folder / f"{stamp}-{name}-{os.getpid()}.log"
        self.echo = echo
        self.broken = ""  # why the log stopped taking lines
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.handle = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise SchemaError(f"cannot write the run log {self.path}: {exc.strerror or exc}") from None

    def say(self, text: str) -> None:
        self.echo(text)
        self.write(text)

    def write(self, text: str) -> bool:
        """Append ``text``; False (said once on the console) when the log cannot take it."""
        if self.broken:
            return False
        try:
            self.handle.write(f"{dt.datetime.now().strftime('%H:%M:%S')} {text}\n")
            self.handle.flush()
            os.fsync(self.handle.fileno())
            return True
        except OSError as exc:
            self.broken = exc.strerror or str(exc)
            self.echo(f"warning: the run log {self.path} stopped taking lines ({self.broken}); the console "
                      "still shows them")
            return False

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError:
            pass  # what it could not write was said when it failed


def keep_unrecorded(row: dict, label: str, log: RunLog) -> str:
    """Put a row the results file did not take somewhere that still has space: the run log, else a file
    in the temporary folder or the home folder; say where. Where none takes it, the row goes to the
    console (stderr) and the answer says so plainly."""
    line = json.dumps(row, default=str)
    if log.write(f"{label}: row NOT recorded: {line}"):
        return f"the unrecorded row is in {log.path}"
    for folder in (Path(tempfile.gettempdir()), Path.home()):
        path = folder / f"bench-unrecorded-{os.getpid()}.jsonl"
        try:
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            return f"the unrecorded row is in {path}"
        except OSError:
            continue
    print(f"{label}: row NOT recorded: {line}", file=sys.stderr)
    return "no file could take the unrecorded row (disk full?): it is printed above, on the console"


@dataclass
class GridOutcome:
    """What an invocation did; ``exit_code`` is 0 only when no run of it failed."""

    grid: str
    results: Path
    planned: int = 0
    measured: dict[str, int] = field(default_factory=lambda: {"ok": 0, "collapsed": 0, "failed": 0})
    elsewhere: int = 0
    reused_machines: dict[str, int] = field(default_factory=dict)  # runs reused from earlier rows, by machine
    rows: list[dict] = field(default_factory=list)
    log: Path | None = None
    seconds: float = 0.0

    @property
    def reused(self) -> int:
        return sum(self.reused_machines.values())

    @property
    def exit_code(self) -> int:
        return 1 if self.measured["failed"] else 0

    def summary(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in self.measured.items() if n)
        text = (f"grid {self.grid}: {len(self.rows)} of {self.planned} run(s) measured now"
                f"{f' ({counts})' if counts else ''} in {self.seconds:.0f} s, recorded in {self.results}")
        if self.reused:
            where = ", ".join(f"{n} on {machine}" for machine, n in sorted(self.reused_machines.items()))
            text += f"; {self.reused} reused from earlier rows (measured: {where})"
        if self.reused and not self.rows:
            text += (f"; nothing was measured on this machine: to measure these runs here, beside the recorded "
                     f"numbers, run: python -m bench reproduce --grid {self.grid}")
        if self.elsewhere:
            text += f"; {self.elsewhere} waited for while another process ran them"
        if self.measured["failed"]:
            text += f"; {self.measured['failed']} FAILED (see the log {self.log})"
        return text


def validate(grid: Grid) -> None:
    """Every problem with the grid's methods, hyper-parameters and budget at once, as one GridError."""
    from methods import METHODS

    problems = []
    budget = BUDGETS.get(grid.budget)
    if budget is None:
        problems.append(BUDGETS.unknown(grid.budget))
    else:
        problems += budget.problems()
    for variant in grid.variants:
        if variant.method not in METHODS:
            problems.append(f"{variant.name}: {METHODS.unknown(variant.method)}")
            continue
        problems += METHODS[variant.method].problems(dict(variant.overrides), variant.name)
    if not grid.variants or not grid.backbones or not grid.seeds:
        problems.append("the grid has no methods, backbones or seeds to run")
    if problems:
        raise GridError(f"grid {grid.name} is invalid, nothing was run: " + "; ".join(problems))


def preflight(results: Path) -> None:
    """Refuse a results file that is not a regular file, cannot be written or is of another schema, before
    any work (a FIFO would hang the first read; /dev/null would take every row and keep none)."""
    kind = special_kind(results)
    if kind:
        raise SchemaError(f"--results {results} is {kind}, not a file; nothing was run: give a CSV file path")
    try:
        results.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SchemaError(f"cannot create the results folder {results.parent}: {exc.strerror or exc}") from None
    if results.is_dir():
        raise SchemaError(f"--results {results} is a folder; give a CSV file path")
    check_schema(results, writable=True)
    if results.exists():
        _check_appendable(results)
    probe = results.with_name(f".{results.name}.probe-{os.getpid()}")
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise SchemaError(f"cannot write in the results folder {results.parent}: {exc.strerror or exc}") from None


def _check_appendable(results: Path) -> None:
    """Open the existing results file for appending, writing nothing: a read-only or immutable file is found
    now, not when the first row is due after training."""
    try:
        os.close(os.open(results, os.O_WRONLY | os.O_APPEND))
    except OSError as exc:
        raise SchemaError(f"cannot write to the results file {results}: {exc.strerror or exc}; nothing was run: "
                          "make it writable, or give another file with --results") from None


def expand(grid: Grid, task, device: str, threads: int, bucketing: bool = True, progress: bool = True,
           say: Callable[[str], None] = print) -> list:
    """Every distinct run of the grid, backbones in size order, then methods, then seeds; a run named
    twice (a repeated seed, backbone or method) is kept once, with a note."""
    from bench.train import RunSpec

    budget = BUDGETS[grid.budget]
    backbones = sorted(dict.fromkeys(grid.backbones), key=lambda b: backbone_spec(b).approx_params)
    specs, seen = [], set()
    for backbone in backbones:
        for variant in grid.variants:
            for seed in grid.seeds:
                spec = RunSpec(grid.name, task, backbone, variant, seed, budget, device, threads, bucketing, progress)
                rid = spec.run_id
                if rid in seen:
                    continue
                seen.add(rid)
                specs.append(spec)
    named = len(grid.backbones) * len(grid.variants) * len(grid.seeds)
    if named != len(specs):
        say(f"note: the grid names {named} runs but only {len(specs)} are distinct (a seed, backbone or method "
            "given twice); each distinct run is run once")
    return specs


def _reused_line(label: str, rid: str, row: dict) -> str:
    return (f"{label}: reused, measured {row['created_at'][:10]} on {machine_of(row)} "
            f"(eval acc {float(row['acc']):.4f}); not run again (use --rerun to measure it here)")


def prepare(grid: Grid, results: Path, data_dir: str | None) -> tuple:
    """Every check that comes before any work, whatever launches the runs; the task data and a note."""
    preflight(results)
    validate(grid)
    missing = [problem for name in dict.fromkeys(grid.backbones) if (problem := unavailable(name))]
    if missing:
        raise BackboneError("; ".join(missing) + "; nothing was run")
    task, note = resolve_task(grid.task, data_dir)
    too_small = check_sizes(task, BUDGETS[grid.budget].train_cap, BUDGETS[grid.budget].select_cap)
    if too_small:
        raise TaskError("; ".join(too_small))
    return task, note


def run_grid(grid: Grid, results: Path, device: str = "cpu", threads: int = 2, rerun: bool = False,
             data_dir: str | None = None, bucketing: bool = True, progress: bool = True,
             say: Callable[[str], None] = print, debug: bool = False,
             checkpoint_every_s: float | None = DEFAULT_CHECKPOINT_EVERY_S) -> GridOutcome:
    """Run every missing run of ``grid`` and append its row to ``results``; with ``checkpoint_every_s``
    (None: off), long runs save epoch checkpoints in ``<results folder>/checkpoints`` and an interrupted
    run resumes from its last one."""
    task, note = prepare(grid, results, data_dir)
    log = RunLog(results.parent / "logs", grid.name, say)
    outcome = GridOutcome(grid.name, results, log=log.path)
    saving = None if checkpoint_every_s is None else (results.parent / CHECKPOINTS, checkpoint_every_s)
    try:
        _run(grid, task, note, results, device, threads, rerun, bucketing, progress, log, outcome, debug, data_dir,
             saving)
    finally:
        log.close()
    return outcome


def _run(grid, task, note, results, device, threads, rerun, bucketing, progress, log: RunLog,
         outcome: GridOutcome, debug: bool, data_dir: str | None, saving: tuple[Path, float] | None) -> None:
    import torch

    from bench.checkpoint import remove as remove_checkpoint
    from bench.train import measure_matmul_peak
    from bench.unit import RunRequest, execute, prime_peak, prime_task

    say = log.say
    say(f"grid {grid.name}: {note}; budget {grid.budget} ({BUDGETS[grid.budget].describe()}); log {log.path}")
    torch.set_num_threads(threads)
    prime_task(task, data_dir)
    specs = expand(grid, task, device, threads, bucketing, progress, say)
    if saving is not None:
        specs = [replace(spec, checkpoint_dir=str(saving[0]), checkpoint_every_s=saving[1]) for spec in specs]
    precisions = {spec.settings()[0].precision for spec in specs} or {"fp32"}
    if torch.device(device).type == "cpu" and "bf16" in precisions:
        precisions.add("fp32")  # the yardstick for the bf16 peak below
    peaks = {precision: measure_matmul_peak(device, precision) for precision in sorted(precisions, reverse=True)}
    for precision, peak in peaks.items():
        prime_peak(device, threads, peak, precision)
    say(f"device {device}, {threads} threads, matmul peak "
        f"{', '.join(f'{p} {peak / 1e9:.1f}' for p, peak in peaks.items())} GFLOP/s")
    if torch.device(device).type == "cpu" and "bf16" in peaks and peaks["bf16"] <= peaks["fp32"]:
        say(_slow_bf16_note(peaks["bf16"], peaks["fp32"]))
    outcome.planned = len(specs)
    sha, dirty = git_state()
    context = {"git_sha": sha, "git_dirty": dirty, "launcher": "serial", "progress": progress}
    start = time.perf_counter()
    warned: set[str] = set()

    def warn_once(text: str) -> None:  # the file is re-read before each run: say each damage once
        if text not in warned:
            warned.add(text)
            say(text)

    def attempt(index: int, spec, wait: bool) -> bool:
        """Run ``spec`` unless it is recorded; False when another process holds it and ``wait`` is off."""
        rid = spec.run_id
        label = run_label(index, len(specs), spec)
        if not rerun and _reuse(results, rid, label, outcome, say, warn_once):
            remove_checkpoint(spec.checkpoint_dir, rid)  # left by a process stopped between recording and removing
            return True
        claim = RunClaim(results, rid)
        if not claim.acquire(wait=False):
            if not wait:
                say(f"{label}: being run by another process right now; coming back to it at the end")
                return False
            say(f"{label}: waiting for the other process running it to finish")
            claim.acquire(wait=True)
        try:
            # another process may have finished it between our first look and the claim
            if not rerun and _reuse(results, rid, label, outcome, say, warn_once):
                return True
            say(f"{label}: running ({time.perf_counter() - start:.0f} s into the grid)")
            try:
                row = execute(RunRequest.from_spec(spec, data_dir), context, say=say)
            except KeyboardInterrupt:
                say(f"{label}: interrupted; not recorded, {_resume_note(spec, rid)}")
                raise
            record_failure(row, label, log, debug)
            record_row(results, row, label, log, outcome)
            remove_checkpoint(spec.checkpoint_dir, rid)
        finally:
            claim.release()
        return True

    deferred = [(index, spec) for index, spec in enumerate(specs, 1) if not attempt(index, spec, wait=False)]
    outcome.elsewhere = len(deferred)
    for index, spec in deferred:  # held by another process: wait for it, then reuse its row or run it here
        attempt(index, spec, wait=True)
    outcome.seconds = time.perf_counter() - start
    say(outcome.summary())


def _resume_note(spec, rid: str) -> str:
    """What the next invocation does with an interrupted run: resume it from its checkpoint, or start it again."""
    from bench.checkpoint import checkpoint_path

    if spec.checkpoint_dir is not None and checkpoint_path(spec.checkpoint_dir, rid).exists():
        return f"the next invocation resumes it from its checkpoint {checkpoint_path(spec.checkpoint_dir, rid)}"
    return "the next invocation runs it again"


def run_label(index: int, total: int, spec) -> str:
    settings = " ".join(f"{k}={v}" for k, v in sorted(spec.variant.overrides.items()))
    shown = f" ({settings})" if settings else ""
    return f"[{index}/{total}] {spec.backbone} {spec.variant.name}{shown} seed {spec.seed}"


def record_row(results: Path, row: dict, label: str, log: RunLog, outcome: GridOutcome) -> None:
    """Append ``row``, count it and say how the run went. A results file that stops taking rows (a full
    disk) stops the grid with GridAborted, the row kept where there is still space (``keep_unrecorded``)."""
    try:
        append_row(results, row, say=log.say)
    except SchemaError as exc:  # a full disk mid-grid: not bad input, and the row must not vanish
        kept = keep_unrecorded(row, label, log)
        raise GridAborted(f"{exc}; the grid stopped after {len(outcome.rows)} recorded run(s); {kept}") from None
    outcome.rows.append(row)
    outcome.measured[row["status"]] += 1
    if row["status"] == "failed":
        log.say(f"{label}: FAILED: {row['error']}")
        return
    quiet = {True: "", False: " (NOT clean: other processes used "
             f"{row['other_cpu_load']} cores; speed left out of reports)", "": ""}[row["speed_clean"]]
    log.say(f"{label}: {row['status']}, eval acc {row['acc']:.4f} (select {row['acc_select']:.4f}, "
            f"majority {row['majority_rate']:.3f}), {row['train_samples_per_s']:.1f} train samples/s{quiet}, "
            f"{row['run_s']:.0f} s")


def record_failure(row: dict, label: str, log: RunLog, debug: bool) -> None:
    """Log a failed row's traceback (shown on the console too for an unexpected error) and point its
    ``error`` at the log; drop the keys that are not columns."""
    trace, expected = row.pop("traceback", ""), row.pop("expected", True)
    if row["status"] != "failed":
        return
    log.write(f"{label}: traceback\n{trace}")
    if debug or not expected:
        print(trace, end="")
    row["error"] = f"{row['error']} (traceback in {log.path})"


def _slow_bf16_note(bf16_peak: float, fp32_peak: float) -> str:
    """What to say when this CPU multiplies bf16 no faster than fp32: no bf16 instructions (autocast
    emulates them), or bf16 dot products without the matrix units that make them pay (seen here: a Xeon
    VM with avx512_bf16 but no AMX at 0.57x, bf16 training steps 0.6x to 0.8x of fp32)."""
    return (f"note: bf16 matmul peak {bf16_peak / 1e9:.1f} GFLOP/s is not above fp32 {fp32_peak / 1e9:.1f} on this "
            f"CPU ({cpu_name()}; {cpu_features() or 'features unknown'}): bf16 runs will likely be slower than "
            "fp32 here; python -m benchmarks.precision compares training steps")


def _reuse(results: Path, rid: str, label: str, outcome: GridOutcome, say: Callable[[str], None],
           warn: Callable[[str], None]) -> bool:
    """Whether ``rid`` is recorded as finished (ok or collapsed: a failed run is retried); if so, say
    where it was measured and count it."""
    row = finished_rows(results, warn=warn).get(rid)
    if row is None:
        return False
    say(_reused_line(label, rid, row))
    machine = machine_of(row)
    outcome.reused_machines[machine] = outcome.reused_machines.get(machine, 0) + 1
    return True
