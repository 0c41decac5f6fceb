"""A planned run: ``RunSpec``, the one run type. It holds what defines a run as names and plain values,
resolves its typed settings, ``hparams`` and ``run_id``, and reads and writes its JSON form (``run-one``,
every value checked with what is accepted). No torch here: a grid becomes a plan of these before any
model is built (``bench.launchers.driver.expand``); the task's data is loaded where the run executes."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import IDENTITY_VERSION
from bench.config.grids import BUDGETS, SEED_RANGE, Budget, GridError, Variant, valid_seed
from bench.file_kinds import special_kind
from bench.record.schema import run_id
from bench.tasks import TaskData, task_identity
from methods import METHODS
from methods.settings import Settings, TrainingSettings


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


JSON_FIELDS = ("grid", "task", "backbone", "method", "seed", "budget", "label", "overrides", "device", "threads",
               "bucketing", "data_dir", "checkpoint_dir", "checkpoint_every_s")  # a run's JSON form (run-one)
JSON_DEFAULTS: dict[str, Any] = {"label": "", "overrides": {}, "device": "cpu", "threads": 2, "bucketing": True,
                                 "data_dir": None, "checkpoint_dir": None, "checkpoint_every_s": 600.0}
_TASKS: dict[tuple[str, str | None], TaskData] = {}  # task data loaded once per process


def prime_task(task: TaskData, data_dir: str | None, ref: str | None = None) -> None:
    """Use the caller's loaded ``task`` for runs naming it (``ref``: a task file's path; default its name), so
    this process does not load it twice."""
    _TASKS[(ref or task.name, data_dir)] = task


def device_type(device: str) -> str:
    """``cuda`` of ``cuda:1``, ``cpu`` of ``cpu``: what ``torch.device(device).type`` gives, without torch."""
    return device.partition(":")[0]


@dataclass(frozen=True)
class RunSpec:
    """One run, the one shape a run has from the plan to its row: built by the driver from a grid, sent as
    JSON to ``run-one`` (``from_json`` / ``to_json``) and as itself to a Ray worker, and executed by
    ``bench.execute.unit.execute``. It holds names and plain values (a ``Budget`` and a ``Variant`` are
    both); the task's data is loaded where the run executes (``task_data``), once per process."""

    grid: str
    task: str  # a task name, or a task file's path (never "auto": the caller resolves it)
    backbone: str
    variant: Variant
    seed: int
    budget: Budget
    device: str = "cpu"
    threads: int = 2
    bucketing: bool = True
    progress: bool = True
    data_dir: str | None = None  # where a task that needs files (SST-2) finds them
    checkpoint_dir: str | None = None  # epoch checkpoints go here (bench.execute.checkpoint); None: none
    checkpoint_every_s: float = 600.0  # at most one checkpoint per this many seconds

    def task_data(self) -> TaskData:
        """The task's splits (``bench.tasks.load_task``), loaded once per process and data folder."""
        key = (self.task, self.data_dir)
        if key not in _TASKS:
            from bench.tasks import load_task

            _TASKS[key] = load_task(self.task, self.data_dir)
        return _TASKS[key]

    def settings(self) -> tuple[TrainingSettings, Settings]:
        """The typed settings this run uses: the method's defaults, the budget's batch size and length,
        the grid's overrides, then the budget's epoch cap."""
        values = {"batch_size": self.budget.batch_size, "max_len": self.budget.max_len, **self.variant.overrides}
        training, own = METHODS[self.variant.method].resolve(values)
        if self.budget.max_epochs is not None and training.epochs > self.budget.max_epochs:
            training = replace(training, epochs=self.budget.max_epochs)
        return training, own

    def hparams(self) -> dict[str, Any]:
        """Every value the run uses (what its row records): both settings objects and the data caps."""
        training, own = self.settings()
        return {"method": self.variant.method, **training.as_dict(), **own.as_dict(),
                "train_cap": self.budget.train_cap, "select_cap": self.budget.select_cap,
                "bucketing": self.bucketing}

    @functools.cached_property
    def run_id(self) -> str:
        """The run's id (``bench.record.schema.run_id`` of its identity), computed once per spec."""
        return run_id(self.identity())

    def identity(self) -> dict[str, Any]:
        """What defines the run: its row's run_id is the hash of this."""
        return {"grid": self.grid, **task_identity(self.task), "backbone": self.backbone,
                "method": self.variant.name, "seed": self.seed, "budget": self.budget.name,
                "hparams": self.hparams(), "device": device_type(self.device),
                "schema_version": IDENTITY_VERSION}

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """A run from JSON (or a path to a JSON file); GridError naming what is wrong or missing."""
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
        fields, required = JSON_FIELDS, [name for name in JSON_FIELDS if name not in JSON_DEFAULTS]
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
        values = {**JSON_DEFAULTS, **data}
        variant = Variant(values.pop("method"), dict(values.pop("overrides")), values.pop("label"))
        budget = values.pop("budget")
        if budget not in BUDGETS:  # a RunSpec holds a Budget: say so with every other problem of the run
            from bench.config.grids import Grid
            from bench.config.validate import validate

            validate(Grid(values["grid"], "", (variant,), (values["backbone"],), (values["seed"],), values["task"],
                          budget))
        return cls(variant=variant, budget=BUDGETS[budget], progress=False, **values)

    def to_json(self) -> str:
        """The JSON form ``from_json`` reads: the variant and budget by their values and names."""
        variant = {"method": self.variant.method, "label": self.variant.label,
                   "overrides": dict(self.variant.overrides)}
        values = {name: variant[name] if name in variant else getattr(self, name) for name in JSON_FIELDS}
        values["budget"] = self.budget.name
        return json.dumps(values, sort_keys=True)


def hparams_json(spec: RunSpec) -> str:
    return json.dumps(spec.hparams(), sort_keys=True)
