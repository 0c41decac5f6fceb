"""The run as the unit of work: one fully specified run in, its result row out.

A run is a ``bench.plan.RunSpec``: everything it needs as names and plain values (it travels as JSON to
``python -m bench run-one`` and as itself to a Ray worker). ``execute`` runs it on whatever machine it
lands on and returns the whole row: ``ok`` or ``collapsed`` with every measurement, or ``failed`` with
the error (its traceback and whether the error was an expected kind ride along under ``traceback`` and
``expected``, which are not columns: the caller logs and drops them); it never raises but for Ctrl-C.
The serial launcher and every launcher call the same ``execute``, so a row means the same whatever ran
it. The environment (library versions, CPU, node, GPU name, matmul peak) is measured where the run
trains; the code version (git) is the caller's, passed in ``context``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import traceback
from typing import Any

from bench.plan import RunSpec, hparams_json
from bench.record.schema import SCHEMA_VERSION
from bench.tasks import task_name

_PEAKS: dict[tuple[str, int, str], float] = {}  # matmul peak per (device, threads, precision), once per process


def execute(spec: RunSpec, context: dict[str, Any], say=print) -> dict[str, Any]:
    """Run ``spec`` here and return its row. ``context`` holds what the caller knows (``git_sha``,
    ``git_dirty``, ``launcher``, ``progress``). A failure is a ``failed`` row whose ``error`` is the
    message and whose ``traceback`` key (not a column: the caller logs and drops it) is the traceback."""
    import torch

    from bench.execute.loop import run_one
    from bench.execute.measure import measure_matmul_peak
    from bench.record.provenance import accelerator_name, environment

    torch.set_num_threads(spec.threads)
    if spec.progress != bool(context.get("progress")):  # a copy only when it differs: it hashes its identity anew
        spec = dataclasses.replace(spec, progress=bool(context.get("progress")))
    precision = spec.settings()[0].precision
    peak_key = (spec.device, spec.threads, precision)
    if peak_key not in _PEAKS:
        _PEAKS[peak_key] = measure_matmul_peak(spec.device, precision)
    row = {**row_identity(spec, context), "matmul_peak_flops_per_s": _PEAKS[peak_key], **environment(),
           "accelerator": accelerator_name(spec.device)}
    try:
        row.update(run_one(spec, say=say))
    except (KeyboardInterrupt, BrokenPipeError):  # stopped from outside (Ctrl-C, the console's reader gone): no row
        raise
    except Exception as exc:  # a failed run is a row; the caller decides how loudly to say it
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:400]
        row.update({"status": "failed", "error": message, "traceback": traceback.format_exc(),
                    "expected": isinstance(exc, expected_errors())})
    return row


def row_identity(spec: RunSpec, context: dict[str, Any]) -> dict[str, Any]:
    """What a row says about its run before any measurement: also all a launcher knows of a run whose
    worker died."""
    return {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "grid": spec.grid,
            "task": task_name(spec.task), "backbone": spec.backbone, "method": spec.variant.name, "seed": spec.seed,
            "budget": spec.budget.name, "hparams": hparams_json(spec), "git_sha": context.get("git_sha", ""),
            "git_dirty": context.get("git_dirty", ""), "device": spec.device, "threads": spec.threads,
            "launcher": context.get("launcher", "serial")}


def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message says all there is to say; any other is an internal error, and its traceback
    is shown on the console too (it is always kept in the log)."""
    from bench.backbones import BackboneError
    from bench.execute.callbacks import TrainingDiverged
    from bench.tasks import TaskError
    from methods.base import MethodRefused

    return BackboneError, TaskError, OSError, MemoryError, TrainingDiverged, MethodRefused


def prime_peak(device: str, threads: int, value: float, precision: str = "fp32") -> None:
    """Use ``value`` as this process's matmul peak in ``precision`` for (device, threads): the one the grid
    printed."""
    _PEAKS[(device, threads, precision)] = value
