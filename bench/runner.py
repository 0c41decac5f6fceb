"""Run a grid: expand it into runs, skip the ones already recorded, append one row per run.

A run that raises is recorded with ``status=failed`` and its error, and the grid goes on. Runs whose
``run_id`` is already in the results file (ok or collapsed) are skipped unless ``rerun`` is set, so an
interrupted grid resumes where it stopped. Progress goes to the console: one line per run, plus
fastNLP's training progress.
"""

from __future__ import annotations

import datetime as dt
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import SCHEMA_VERSION
from bench.backbones import backbone_spec
from bench.grids import BUDGETS, Grid
from bench.results import append_row, check_schema, environment, git_state, recorded_ids, run_id
from bench.tasks import resolve_task
from bench.train import RunSpec, hparams_json, measure_matmul_peak, run_one


def expand(grid: Grid, task, device: str, threads: int, bucketing: bool = True,
           progress: bool = True) -> list[RunSpec]:
    """Every run of the grid, backbones in size order, then methods, then seeds."""
    budget = BUDGETS[grid.budget]
    backbones = sorted(grid.backbones, key=lambda b: backbone_spec(b).approx_params)
    return [RunSpec(grid.name, task, backbone, variant, seed, budget, device, threads, bucketing, progress)
            for backbone in backbones for variant in grid.variants for seed in grid.seeds]


def run_grid(grid: Grid, results: Path, device: str = "cpu", threads: int = 2, rerun: bool = False,
             data_dir: str | None = None, bucketing: bool = True, progress: bool = True,
             say: Callable[[str], None] = print) -> list[dict]:
    """Run every missing run of ``grid`` and append its row to ``results``; returns the new rows."""
    check_schema(results)  # refuse a foreign file before spending any time
    task, note = resolve_task(grid.task, data_dir)
    say(f"grid {grid.name}: {note}; budget {grid.budget} ({BUDGETS[grid.budget].describe()})")
    import torch

    torch.set_num_threads(threads)
    peak = measure_matmul_peak(device)
    say(f"device {device}, {threads} threads, fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    specs = expand(grid, task, device, threads, bucketing, progress)
    done = set() if rerun else recorded_ids(results)
    sha, dirty = git_state()
    env = environment()
    rows, start = [], time.perf_counter()
    for index, spec in enumerate(specs, 1):
        identity = spec.identity()
        rid = run_id(identity)
        label = f"[{index}/{len(specs)}] {spec.backbone} {spec.variant.name} seed {spec.seed}"
        if rid in done:
            say(f"{label}: already recorded ({rid}), skipped (use --rerun to run again)")
            continue
        say(f"{label}: running ({time.perf_counter() - start:.0f} s into the grid)")
        row = {"schema_version": SCHEMA_VERSION, "run_id": rid,
               "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "grid": grid.name, "task": task.name, "backbone": spec.backbone,
               "method": spec.variant.name, "seed": spec.seed, "budget": grid.budget,
               "hparams": hparams_json(spec), "git_sha": sha, "git_dirty": dirty,
               "matmul_peak_flops_per_s": peak, "device": device, "threads": threads, **env}
        try:
            row.update(run_one(spec))
        except Exception as exc:  # a failed run is recorded and the grid goes on
            message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
            row.update({"status": "failed", "error": message})
            if not isinstance(exc, (RuntimeError, ValueError, OSError)):
                traceback.print_exc()
        append_row(results, row)
        rows.append(row)
        if row["status"] == "failed":
            say(f"{label}: FAILED: {row['error']}")
        else:
            say(f"{label}: {row['status']} acc {row['acc']:.4f} (majority {row['majority_rate']:.3f}), "
                f"{row['train_samples_per_s']:.1f} train samples/s, {row['run_s']:.0f} s")
    say(f"grid {grid.name}: {len(rows)} run(s) recorded in {results} "
        f"in {time.perf_counter() - start:.0f} s")
    return rows
