"""Grids and budgets: which methods run on which backbones, with which seeds and how much data.

The grids themselves are files (``grids/*.toml``, read by ``bench.config.grid_files``). A grid is methods
(as variants: a method plus setting overrides and a label) x backbones x seeds on one task under one
budget. A budget caps the data and epochs so a grid fits a machine: ``default`` is sized for the
2-core CPU (the ``sizes`` grid in about 30 minutes), ``full`` is the whole protocol (whole train set,
each method's own epoch count) for GPUs or patient CPUs. ``python -m bench list`` prints all of this.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bench.registry import Registry


@dataclass(frozen=True)
class Budget:
    name: str
    train_cap: int | None  # first N training examples (splits are pre-shuffled), None = all
    select_cap: int | None  # first N of the select split, None = all 1,000
    max_epochs: int | None  # epochs = min(method's epochs, max_epochs); None = the method's own
    max_len: int = 64
    batch_size: int = 32

    def describe(self) -> str:
        train = "all" if self.train_cap is None else f"{self.train_cap:,}"
        select = "all" if self.select_cap is None else f"{self.select_cap:,}"
        epochs = "method's own" if self.max_epochs is None else f"min(method's, {self.max_epochs})"
        return (f"train {train}, select {select}, eval all, epochs {epochs}, "
                f"max length {self.max_len}, batch {self.batch_size}")

    def problems(self) -> list[str]:
        """What is wrong with this budget's values, each saying what is accepted (empty when valid)."""
        def whole(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        out = [f"budget {self.name}.{key}={getattr(self, key)!r}: must be an integer >= 1 or none (all)"
               for key in ("train_cap", "select_cap", "max_epochs")
               if getattr(self, key) is not None and not whole(getattr(self, key))]
        out += [f"budget {self.name}.{key}={getattr(self, key)!r}: must be an integer >= 1"
                for key in ("max_len", "batch_size") if not whole(getattr(self, key))]
        return out


BUDGETS: Registry[Budget] = Registry("budget")
for _budget in (Budget("default", train_cap=1000, select_cap=500, max_epochs=3),
                Budget("full", train_cap=None, select_cap=None, max_epochs=None),
                Budget("smoke", train_cap=None, select_cap=None, max_epochs=4, max_len=32)):
    BUDGETS.add(_budget.name, _budget)


@dataclass(frozen=True)
class Variant:
    """A method as a grid runs it: ``label`` names it in rows and tables (default: the method)."""

    method: str
    overrides: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.method


@dataclass(frozen=True)
class Grid:
    name: str
    description: str
    variants: tuple[Variant, ...]
    backbones: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    task: str = "auto"
    budget: str = "default"
    reference: str = ""  # the method label the report compares against ("" for none)


class GridError(ValueError):
    """An unknown grid, budget, method or backbone; the message lists what is accepted."""


SEED_LIMIT = 2**32  # seeds go to numpy.random.seed, which takes 0 .. 2**32 - 1


def valid_seed(seed: object) -> bool:
    """Whether ``seed`` is an integer 0 .. 2**32 - 1 (a JSON or TOML ``true`` is not one)."""
    return isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < SEED_LIMIT


SEED_RANGE = "integers >= 0 and below 2**32 = 4294967296 (numpy's seed range)"


def narrow(grid: Grid, methods: list[str] | None = None, backbones: list[str] | None = None,
           seeds: list[int] | None = None, task: str | None = None, budget: str | None = None) -> Grid:
    """The grid with command-line narrowing applied. ``methods`` match a variant's label or method;
    ``backbones`` may name any registered backbone or a local directory."""
    from pathlib import Path

    from bench.backbones import BACKBONES
    from methods import METHODS

    for flag, given in (("--methods", methods), ("--backbones", backbones), ("--seeds", seeds)):
        if given is not None and not given:
            raise GridError(f"{flag} names nothing; give a comma-separated list, or leave {flag} out for the "
                            "grid's own")
    bad_seeds = [s for s in seeds or [] if not valid_seed(s)]
    if bad_seeds:
        raise GridError(f"seeds must be {SEED_RANGE}, got {bad_seeds}")
    variants = list(grid.variants)
    if methods is not None:
        unknown = [m for m in methods if m not in METHODS and m not in {v.name for v in variants}]
        if unknown:
            raise GridError(f"--methods: {METHODS.unknown(*unknown)}")
        chosen = [v for v in variants if v.name in methods]
        chosen += [Variant(m) for m in methods if m not in {v.name for v in chosen}]
        variants = chosen
    if backbones is not None:
        bad = [b for b in backbones if b not in BACKBONES and not Path(b).is_dir()]
        if bad:
            raise GridError(f"--backbones: {BACKBONES.unknown(*bad)}")
    if budget is not None and budget not in BUDGETS:
        raise GridError(f"--budget: {BUDGETS.unknown(budget)}")
    return replace(grid, variants=tuple(variants),
                   backbones=tuple(backbones) if backbones is not None else grid.backbones,
                   seeds=tuple(seeds) if seeds is not None else grid.seeds,
                   task=_task_ref(task) if task else grid.task, budget=budget or grid.budget)


def _task_ref(task: str) -> str:
    """A registered task's name as given; a task file's path made absolute (a run names it wherever it runs)."""
    from pathlib import Path

    return str(Path(task).resolve()) if task.endswith(".toml") else task
