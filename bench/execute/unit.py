"""The run as the unit of work: one fully specified run in, its result row out.

``RunRequest`` names everything a run needs as plain values (it travels as JSON to ``python -m bench
run-one`` and as a pickle to a Ray worker): grid and task names, backbone, method and settings, seed,
budget, device, threads. ``execute`` runs it on whatever machine it lands on and returns the whole row:
``ok`` or ``collapsed`` with every measurement, or ``failed`` with the error (its traceback and
whether the error was an expected kind ride along under ``traceback`` and ``expected``, which are not
columns: the caller logs and drops them); it never raises but for Ctrl-C. The serial launcher and every
launcher call the same ``execute``, so a row means the same whatever ran it. The environment
(library versions, CPU, node, GPU name, matmul peak) is measured where the run trains; the code
version (git) is the caller's, passed in ``context``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import traceback
from pathlib import Path
from typing import Any

from bench.config.grids import BUDGETS, SEED_RANGE, GridError, Variant, valid_seed
from bench.file_kinds import special_kind
from bench.record.schema import SCHEMA_VERSION

_PEAKS: dict[tuple[str, int, str], float] = {}  # matmul peak per (device, threads, precision), once per process
_TASKS: dict[tuple[str, str | None], Any] = {}  # task data loaded once per process


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


# What each field of a JSON spec must be: (check, what is accepted). The type hints say the same, but a
# spec is data from anywhere: "zero" for a seed must be refused here, not deep in training.
_FIELD_CHECKS: dict[str, tuple[Any, str]] = {
    **{name: (lambda v: isinstance(v, str) and v != "", "a non-empty string")
       for name in ("grid", "task", "backbone", "method", "budget", "device")},
    "label": (lambda v: isinstance(v, str), "a string"),
    "seed": (valid_seed, f"an integer {SEED_RANGE.removeprefix('integers ')}"),
    "overrides": (lambda v: isinstance(v, dict), "a JSON object of settings, e.g. {\"lr\": 0.001}"),
    "threads": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "bucketing": (lambda v: isinstance(v, bool), "true or false"),
    **{name: (lambda v: v is None or (isinstance(v, str) and v != ""), "a folder path, or null")
       for name in ("data_dir", "checkpoint_dir")},
    "checkpoint_every_s": (lambda v: _is_number(v) and v >= 0, "a number of seconds >= 0 (0: every epoch)"),
}


@dataclasses.dataclass(frozen=True)
class RunRequest:
    grid: str
    task: str  # a task name (never "auto": the caller resolves it)
    backbone: str
    method: str
    seed: int
    budget: str
    label: str = ""  # the method's label in the grid ("" = the method's name)
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    device: str = "cpu"
    threads: int = 2
    bucketing: bool = True
    data_dir: str | None = None
    checkpoint_dir: str | None = None  # epoch checkpoints (bench.execute.checkpoint) go here; None: none
    checkpoint_every_s: float = 600.0

    @classmethod
    def from_spec(cls, spec: Any, data_dir: str | None = None) -> RunRequest:
        v = spec.variant
        return cls(spec.grid, spec.task.name, spec.backbone, v.method, spec.seed, spec.budget.name, v.label,
                   dict(v.overrides), spec.device, spec.threads, spec.bucketing, data_dir, spec.checkpoint_dir,
                   spec.checkpoint_every_s)

    @classmethod
    def from_json(cls, text: str) -> RunRequest:
        """A request from JSON (or a path to a JSON file); GridError naming what is wrong or missing."""
        kind = "" if text.lstrip().startswith("{") else special_kind(text)
        if kind:
            raise GridError(f"run-one: the spec {text} is {kind}; accepted: a JSON object or a JSON file")
        if not text.lstrip().startswith("{") and Path(text).is_file():
            try:
                text = Path(text).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise GridError(f"run-one: cannot read the spec file {text}: {exc}") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise GridError(f"run-one: the spec is neither a JSON object nor a JSON file ({exc})") from None
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [name for name, f in fields.items()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if not isinstance(data, dict):
            raise GridError("run-one: the spec must be a JSON object")
        problems = [f"unknown key {k!r}" for k in data if k not in fields]
        problems += [f"missing key {k!r}" for k in required if k not in data]
        if problems:
            raise GridError(f"run-one: {'; '.join(problems)}; accepted: {', '.join(fields)} "
                            f"(required: {', '.join(required)})")
        problems = [f"{key}={value!r} must be {_FIELD_CHECKS[key][1]}" for key, value in data.items()
                    if not _FIELD_CHECKS[key][0](value)]
        if problems:
            raise GridError(f"run-one: {'; '.join(problems)}; nothing was run")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def spec(self) -> Any:
        """The RunSpec this request names (loads the task data once per process)."""
        from bench.plan import RunSpec
        from bench.tasks import load_task

        key = (self.task, self.data_dir)
        if key not in _TASKS:
            _TASKS[key] = load_task(self.task, self.data_dir)
        return RunSpec(self.grid, _TASKS[key], self.backbone, Variant(self.method, dict(self.overrides), self.label),
                       self.seed, BUDGETS[self.budget], self.device, self.threads, self.bucketing, progress=False,
                       checkpoint_dir=self.checkpoint_dir, checkpoint_every_s=self.checkpoint_every_s)


def execute(request: RunRequest, context: dict[str, Any], say=print) -> dict[str, Any]:
    """Run ``request`` here and return its row. ``context`` holds what the caller knows (``git_sha``,
    ``git_dirty``, ``launcher``, ``progress``). A failure is a ``failed`` row whose ``error`` is the
    message and whose ``traceback`` key (not a column: the caller logs and drops it) is the traceback."""
    import torch

    from bench.execute.loop import run_one
    from bench.execute.measure import measure_matmul_peak
    from bench.record.provenance import accelerator_name, environment

    torch.set_num_threads(request.threads)
    spec = request.spec()
    if context.get("progress"):
        spec = dataclasses.replace(spec, progress=True)
    precision = spec.settings()[0].precision
    peak_key = (request.device, request.threads, precision)
    if peak_key not in _PEAKS:
        _PEAKS[peak_key] = measure_matmul_peak(request.device, precision)
    row = {**row_identity(request, spec, context), "matmul_peak_flops_per_s": _PEAKS[peak_key], **environment(),
           "accelerator": accelerator_name(request.device)}
    try:
        row.update(run_one(spec, say=say))
    except (KeyboardInterrupt, BrokenPipeError):  # stopped from outside (Ctrl-C, the console's reader gone): no row
        raise
    except Exception as exc:  # a failed run is a row; the caller decides how loudly to say it
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:400]
        row.update({"status": "failed", "error": message, "traceback": traceback.format_exc(),
                    "expected": isinstance(exc, expected_errors())})
    return row


def row_identity(request: RunRequest, spec: Any, context: dict[str, Any]) -> dict[str, Any]:
    """What a row says about its run before any measurement: also all a launcher knows of a run whose
    worker died."""
    from bench.plan import hparams_json

    return {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "grid": request.grid,
            "task": request.task, "backbone": request.backbone, "method": spec.variant.name, "seed": request.seed,
            "budget": request.budget, "hparams": hparams_json(spec), "git_sha": context.get("git_sha", ""),
            "git_dirty": context.get("git_dirty", ""), "device": request.device, "threads": request.threads,
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


def prime_task(task: Any, data_dir: str | None) -> None:
    """Use the caller's loaded ``task`` for requests naming it (no second load in this process)."""
    _TASKS[(task.name, data_dir)] = task
