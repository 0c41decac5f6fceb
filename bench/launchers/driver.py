"""The driver every launcher shares: from a grid to recorded rows, whatever executes the runs.

Before anything trains (``Driver.__init__``, through ``prepare``): the results file must be a regular
file (not a FIFO, device or socket), writable and of this schema, every run's hyper-parameters and the
budget must be valid (all problems listed at once), every backbone must be available, and the task data
must load and validate. Then ``plan`` expands the grid into its distinct runs (a run named twice, as
``--seeds 0,0``, is run once, with a note).

For each run a launcher asks ``finished`` (a row recorded as ok or collapsed is reused unless ``rerun``
is set, so an interrupted grid resumes), takes its ``claim`` (a per-run lock, so two processes running
the same grid split the work instead of duplicating it), has it executed, and hands the row to
``record``: a failed run's traceback goes to the grid's log and its ``error`` names that log; a results
file that stops taking rows (a full disk) stops the grid with ``GridAborted``, the row kept where there
is still space. ``close`` says the summary: what was measured now, what was reused, what was left to
another process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.backbones import BackboneError, backbone_spec, unavailable
from bench.config.grids import BUDGETS, Grid
from bench.config.validate import validate
from bench.file_kinds import special_kind
from bench.launchers.log import RunLog, keep_unrecorded
from bench.record.provenance import git_state, machine_of
from bench.record.schema import SchemaError
from bench.record.store import RunClaim, append_row, check_schema, finished_rows
from bench.tasks import TaskError, check_sizes, resolve_task


class GridAborted(RuntimeError):
    """The grid cannot go on (its results file stopped taking rows); exit 1, not bad input."""


@dataclass(frozen=True)
class RunSettings:
    """How every run of an invocation is run, whatever the launcher."""

    device: str = "cpu"
    threads: int = 2
    rerun: bool = False
    data_dir: str | None = None
    bucketing: bool = True
    progress: bool = True
    debug: bool = False


@dataclass
class GridOutcome:
    """What an invocation did; ``exit_code`` is 0 only when no run of it failed."""

    grid: str
    results: Path
    planned: int = 0
    measured: dict[str, int] = field(default_factory=lambda: {"ok": 0, "collapsed": 0, "failed": 0})
    elsewhere: int = 0  # runs another process held, waited for here
    left_to_others: int = 0  # runs another process held, not waited for
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
        if self.left_to_others:
            text += (f"; {self.left_to_others} being run by another process, left to it (not waited for; run "
                     "the same command again once it is done to see them all recorded)")
        return text


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


def task_ref(grid: Grid, task) -> str:
    """What each of the grid's runs names as its task: the grid's (a registered name, or a task file by its
    path), or for ``auto`` the task it resolved to."""
    return task.name if grid.task == "auto" else grid.task


def expand(grid: Grid, task, device: str, threads: int, bucketing: bool = True, progress: bool = True,
           say: Callable[[str], None] = print, data_dir: str | None = None) -> list:
    """Every distinct run of the grid, backbones in size order, then methods, then seeds; a run named
    twice (a repeated seed, backbone or method) is kept once, with a note."""
    from bench.plan import RunSpec

    budget = BUDGETS[grid.budget]
    ref = task_ref(grid, task)
    backbones = sorted(dict.fromkeys(grid.backbones), key=lambda b: backbone_spec(b).approx_params)
    specs, seen = [], set()
    for backbone in backbones:
        for variant in grid.variants:
            for seed in grid.seeds:
                spec = RunSpec(grid.name, ref, backbone, variant, seed, budget, device, threads, bucketing,
                               progress, data_dir)
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


class Driver:
    """One invocation of a grid, for a launcher: checked at construction (nothing runs when it raises),
    then ``open_log``, ``plan``, per run ``finished`` / ``claim`` / ``record``, and ``close``."""

    def __init__(self, grid: Grid, results: Path, settings: RunSettings, launcher: str,
                 say: Callable[[str], None] = print):
        self.grid, self.results, self.settings, self.launcher, self.echo = grid, results, settings, launcher, say
        self.task, self.note = prepare(grid, results, settings.data_dir)
        self.task_ref = task_ref(grid, self.task)
        self.log: RunLog | None = None
        self.outcome = GridOutcome(grid.name, results)
        self.started = time.perf_counter()
        self._warned: set[str] = set()

    def open_log(self) -> RunLog:
        self.log = RunLog(self.results.parent / "logs", self.grid.name, self.echo)
        self.outcome.log = self.log.path
        self.started = time.perf_counter()
        return self.log

    def say(self, text: str) -> None:
        (self.log.say if self.log else self.echo)(text)

    def context(self, progress: bool) -> dict[str, Any]:
        """What every row of this invocation records about how it was launched (git read once)."""
        sha, dirty = git_state()
        return {"git_sha": sha, "git_dirty": dirty, "launcher": self.launcher, "progress": progress}

    def plan(self, progress: bool) -> list:
        """The grid's distinct runs, in run order (``expand``), counted as planned."""
        s = self.settings
        specs = expand(self.grid, self.task, s.device, s.threads, s.bucketing, progress, self.say, s.data_dir)
        self.outcome.planned = len(specs)
        return specs

    def start_clock(self) -> None:
        """The summary's time counts from here (the checks and set-up before are not the grid's runs)."""
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def _warn_once(self, text: str) -> None:  # the file is re-read before each run: say each damage once
        if text not in self._warned:
            self._warned.add(text)
            self.say(text)

    def finished(self, rid: str, label: str, announce: bool = True) -> bool:
        """Whether run ``rid`` is recorded as finished (ok or collapsed; a failed run is retried) and is to be
        reused (never with ``rerun``); if so it is counted by machine and, with ``announce``, said."""
        if self.settings.rerun:
            return False
        row = finished_rows(self.results, warn=self._warn_once).get(rid)
        if row is None:
            return False
        if announce:
            self.say(f"{label}: reused, measured {row['created_at'][:10]} on {machine_of(row)} "
                     f"(eval acc {float(row['acc']):.4f}); not run again (use --rerun to measure it here)")
        machine = machine_of(row)
        self.outcome.reused_machines[machine] = self.outcome.reused_machines.get(machine, 0) + 1
        return True

    def claim(self, rid: str, wait: bool = False) -> RunClaim | None:
        """The run's claim, to hold until its row is in; None while another process holds it (with ``wait``:
        once that process lets it go)."""
        claim = RunClaim(self.results, rid)
        return claim if claim.acquire(wait=wait) else None

    def record(self, row: dict, label: str) -> None:
        """Log a failure's traceback, then append the row (``record_row``)."""
        record_failure(row, label, self.log, self.settings.debug)
        record_row(self.results, row, label, self.log, self.outcome)

    def close(self) -> None:
        self.outcome.seconds = self.elapsed()
        if self.log is not None:
            self.log.close()
