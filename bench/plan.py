"""A planned run: what defines it (names and plain values, plus the task data it reads), its typed
settings, its ``hparams`` and its ``run_id``. No torch here: a grid becomes a plan of these before any
model is built (``bench.launchers.driver.expand``), and ``bench.execute.unit.RunRequest`` is its JSON form
for ``run-one`` and Ray."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from typing import Any

from bench import IDENTITY_VERSION
from bench.config.grids import Budget, Variant
from bench.record.schema import run_id
from bench.tasks import TaskData
from methods import METHODS
from methods.settings import Settings, TrainingSettings


def device_type(device: str) -> str:
    """``cuda`` of ``cuda:1``, ``cpu`` of ``cpu``: what ``torch.device(device).type`` gives, without torch."""
    return device.partition(":")[0]


@dataclass(frozen=True)
class RunSpec:
    grid: str
    task: TaskData
    backbone: str
    variant: Variant
    seed: int
    budget: Budget
    device: str = "cpu"
    threads: int = 2
    bucketing: bool = True
    progress: bool = True
    checkpoint_dir: str | None = None  # epoch checkpoints go here (bench.execute.checkpoint); None: none
    checkpoint_every_s: float = 600.0  # at most one checkpoint per this many seconds

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
        return {"grid": self.grid, "task": self.task.name, "backbone": self.backbone,
                "method": self.variant.name, "seed": self.seed, "budget": self.budget.name,
                "hparams": self.hparams(), "device": device_type(self.device),
                "schema_version": IDENTITY_VERSION}


def hparams_json(spec: RunSpec) -> str:
    return json.dumps(spec.hparams(), sort_keys=True)
