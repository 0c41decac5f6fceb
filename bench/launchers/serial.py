"""The serial launcher (the default): every missing run of a grid, one after another, in this process.

Runs held by another process are left for the end and then waited for (their row reused, or run here
if that process stopped without recording it). Ctrl-C or SIGTERM stops the grid at once: the
interrupted run is not recorded, so the next invocation runs it again, or, with epoch checkpoints
(``--checkpoint-every``, on by default), resumes it after its last saved epoch. Progress: one line per
run, a few lines per epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.config.grids import Grid, GridError
from bench.launchers import Launcher, Option
from bench.launchers.driver import Driver, GridOutcome, RunSettings, run_label
from bench.record.provenance import cpu_features, cpu_name

CHECKPOINTS = "checkpoints"  # epoch checkpoints' folder, beside the results file
DEFAULT_CHECKPOINT_EVERY_S = 600.0  # short runs never save one; a long one loses at most this much


@dataclass(frozen=True)
class SerialOptions:
    checkpoint_every_s: float | None = DEFAULT_CHECKPOINT_EVERY_S  # None: no checkpoints

    @classmethod
    def parse(cls, values: dict[str, Any]) -> SerialOptions:
        minutes = values.get("checkpoint_every")
        if minutes is None:
            return cls()
        if not minutes >= 0:
            raise GridError(f"--checkpoint-every must be a number of minutes >= 0 (0: never), got {minutes}")
        return cls(minutes * 60 or None)


def run_grid(grid: Grid, results: Path, device: str = "cpu", threads: int = 2, rerun: bool = False,
             data_dir: str | None = None, bucketing: bool = True, progress: bool = True,
             say: Callable[[str], None] = print, debug: bool = False,
             checkpoint_every_s: float | None = DEFAULT_CHECKPOINT_EVERY_S) -> GridOutcome:
    """Run every missing run of ``grid`` and append its row to ``results``; with ``checkpoint_every_s``
    (None: off), long runs save epoch checkpoints in ``<results folder>/checkpoints`` and an interrupted
    run resumes from its last one."""
    settings = RunSettings(device, threads, rerun, data_dir, bucketing, progress, debug)
    return run_serial(grid, results, settings, SerialOptions(checkpoint_every_s), say)


def run_serial(grid: Grid, results: Path, settings: RunSettings, options: SerialOptions,
               say: Callable[[str], None] = print) -> GridOutcome:
    driver = Driver(grid, results, settings, "serial", say)
    driver.open_log()
    try:
        _run(driver, options)
    finally:
        driver.close()
    return driver.outcome


def _run(driver: Driver, options: SerialOptions) -> None:
    import torch

    from bench.config.grids import BUDGETS
    from bench.execute.checkpoint import remove as remove_checkpoint
    from bench.execute.unit import execute
    from bench.plan import prime_task

    grid, settings, say = driver.grid, driver.settings, driver.say
    say(f"grid {grid.name}: {driver.note}; budget {grid.budget} ({BUDGETS[grid.budget].describe()}); "
        f"log {driver.log.path}")
    torch.set_num_threads(settings.threads)
    prime_task(driver.task, settings.data_dir, driver.task_ref)
    specs = driver.plan(settings.progress)
    if options.checkpoint_every_s is not None:
        folder = str(driver.results.parent / CHECKPOINTS)
        specs = [replace(spec, checkpoint_dir=folder, checkpoint_every_s=options.checkpoint_every_s)
                 for spec in specs]
    _measure_peaks(specs, settings, say)
    context = driver.context(settings.progress)
    driver.start_clock()

    def attempt(index: int, spec, wait: bool) -> bool:
        """Run ``spec`` unless it is recorded; False when another process holds it and ``wait`` is off."""
        rid, label = spec.run_id, run_label(index, len(specs), spec)
        if driver.finished(rid, label):
            remove_checkpoint(spec.checkpoint_dir, rid)  # left by a process stopped between recording and removing
            return True
        claim = driver.claim(rid)
        if claim is None:
            if not wait:
                say(f"{label}: being run by another process right now; coming back to it at the end")
                return False
            say(f"{label}: waiting for the other process running it to finish")
            claim = driver.claim(rid, wait=True)
        try:
            if driver.finished(rid, label):  # another process may have finished it since the first look
                return True
            say(f"{label}: running ({driver.elapsed():.0f} s into the grid)")
            try:
                row = execute(spec, context, say=say)
            except KeyboardInterrupt:
                say(f"{label}: interrupted; not recorded, {_resume_note(spec, rid)}")
                raise
            driver.record(row, label)
            remove_checkpoint(spec.checkpoint_dir, rid)
        finally:
            claim.release()
        return True

    deferred = [(index, spec) for index, spec in enumerate(specs, 1) if not attempt(index, spec, wait=False)]
    driver.outcome.elsewhere = len(deferred)
    for index, spec in deferred:  # held by another process: wait for it, then reuse its row or run it here
        attempt(index, spec, wait=True)
    driver.outcome.seconds = driver.elapsed()
    say(driver.outcome.summary())


def _measure_peaks(specs: list, settings: RunSettings, say: Callable[[str], None]) -> None:
    """The matmul peak of each precision the runs use (fp32 too beside bf16 on a CPU: its yardstick), measured
    once for the whole grid and handed to every run (``prime_peak``)."""
    import torch

    from bench.execute.measure import measure_matmul_peak
    from bench.execute.unit import prime_peak

    device = settings.device
    precisions = {spec.settings()[0].precision for spec in specs} or {"fp32"}
    if torch.device(device).type == "cpu" and "bf16" in precisions:
        precisions.add("fp32")
    peaks = {precision: measure_matmul_peak(device, precision) for precision in sorted(precisions, reverse=True)}
    for precision, peak in peaks.items():
        prime_peak(device, settings.threads, peak, precision)
    say(f"device {device}, {settings.threads} threads, matmul peak "
        f"{', '.join(f'{p} {peak / 1e9:.1f}' for p, peak in peaks.items())} GFLOP/s")
    if torch.device(device).type == "cpu" and "bf16" in peaks and peaks["bf16"] <= peaks["fp32"]:
        say(_slow_bf16_note(peaks["bf16"], peaks["fp32"]))


def _resume_note(spec, rid: str) -> str:
    """What the next invocation does with an interrupted run: resume it from its checkpoint, or start it again."""
    from bench.execute.checkpoint import checkpoint_path

    if spec.checkpoint_dir is not None and checkpoint_path(spec.checkpoint_dir, rid).exists():
        return f"the next invocation resumes it from its checkpoint {checkpoint_path(spec.checkpoint_dir, rid)}"
    return "the next invocation runs it again"


def _slow_bf16_note(bf16_peak: float, fp32_peak: float) -> str:
    """What to say when this CPU multiplies bf16 no faster than fp32: no bf16 instructions (autocast
    emulates them), or bf16 dot products without the matrix units that make them pay (seen here: a Xeon
    VM with avx512_bf16 but no AMX at 0.57x, bf16 training steps 0.6x to 0.8x of fp32)."""
    return (f"note: bf16 matmul peak {bf16_peak / 1e9:.1f} GFLOP/s is not above fp32 {fp32_peak / 1e9:.1f} on this "
            f"CPU ({cpu_name()}; {cpu_features() or 'features unknown'}): bf16 runs will likely be slower than "
            "fp32 here; python -m benchmarks.precision compares training steps")


LAUNCHER = Launcher(
    "serial", "one run after another in this process (the default)",
    (Option("--checkpoint-every", "save an epoch checkpoint at most this often, so an interrupted run resumes "
            "after its last saved epoch (default 10; 0: never)", float, None, "MINUTES"),),
    SerialOptions.parse,
    lambda grid, results, settings, options, say=print: run_serial(grid, results, settings, options, say))
