"""Grids as files: the built-in grids live in ``grids/*.toml``; a user's grid is a TOML file run by path.

TOML, read with the standard library's ``tomllib``: no dependency, comments allowed (a grid file
explains itself), typed values (``lr = 1e-3`` is a float, ``train_head = false`` a boolean), and
tables map one-to-one onto methods. A grid file::

    description = "what this grid asks"
    backbones = ["minilm-l6", "/path/to/a/saved/model"]
    seeds = [0, 1, 2]
    task = "mr"              # auto, mr, sst2, synthetic, or a task file (relative to this file)
    budget = "default"       # default, full, smoke
    reference = "finetune"   # the method the report compares against ("" for none)

    [methods.finetune]       # one table per method, in report order
    [methods.prompt]
    prompt_len = 20          # any of the method's settings (python -m bench list)
    [methods.prompt-long]    # a second variant of a method: a label and `method = ...`
    method = "prompt"
    prompt_len = 64

A list value is a sweep: ``lr = [1e-3, 3e-3, 1e-2]`` runs every combination of the listed values
(``expand_sweeps``); the report picks each backbone's and method's winner on the ``select`` split.
A grid's size (``grid_size``: backbones x seeds x each method's combinations) is arithmetic, known before
anything is expanded; ``check_size`` refuses a grid of more than ``MAX_RUNS`` runs (``--max-runs``
raises the limit), and expansion walks the combinations lazily, so a typo'd sweep of 10^8 runs costs
nothing but its refusal.

``load_grid_file`` lists every problem of a file at once, each with its key path and what is accepted,
before anything runs. ``apply_sets`` applies ``--set method.key=value`` overrides (values read as TOML,
else as a plain string; ``--set prefix.lr=[1e-3,3e-3]`` sweeps). ``get_grid(name_or_path)`` finds a grid.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.config.grids import BUDGETS, SEED_RANGE, Grid, GridError, Variant, valid_seed
from bench.file_kinds import read_toml, special_kind
from bench.registry import LazyRegistry, Registry

GRIDS_DIR = Path(__file__).resolve().parents[2] / "grids"
MAX_RUNS = 10_000  # a grid of more runs is refused unless --max-runs raises this (a typo'd sweep, not a plan)
TOP_KEYS = {"description": "a string", "backbones": "a list of backbone names or model folders",
            "seeds": f"a list of {SEED_RANGE}", "task": "a task name or a .toml task file", "budget": "a budget name",
            "reference": "a method label of this grid, or \"\"", "methods": "a table of method tables"}


def _problems_of(data: dict[str, Any]) -> list[str]:
    """Every problem of a parsed grid file, each as ``key.path: what is wrong; what is accepted``."""
    from bench.backbones import BACKBONES
    from bench.tasks import TASKS
    from methods import METHODS

    problems = [f"{key}: unknown key; accepted: {', '.join(TOP_KEYS)}" for key in data if key not in TOP_KEYS]
    if not isinstance(data.get("description", ""), str):
        problems.append("description: must be a string")
    backbones = data.get("backbones")
    if not isinstance(backbones, list) or not backbones or not all(isinstance(b, str) for b in backbones):
        problems.append("backbones: must be a non-empty list of strings (registered names or model folders)")
    else:
        unknown = [b for b in backbones if b not in BACKBONES and not Path(b).is_dir()]
        if unknown:
            problems.append(f"backbones: {BACKBONES.unknown(*unknown)}")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(valid_seed(s) for s in seeds):
        problems.append(f"seeds: must be a non-empty list of {SEED_RANGE}, got {seeds!r}")
    task = data.get("task", "auto")
    if task != "auto" and task not in TASKS and not (isinstance(task, str) and task.endswith(".toml")):
        problems.append(f"task: {TASKS.unknown(task)}")
    budget = data.get("budget", "default")
    if budget not in BUDGETS:
        problems.append(f"budget: {BUDGETS.unknown(budget)}")
    methods = data.get("methods")
    if not isinstance(methods, dict) or not methods:
        problems.append("methods: must hold at least one method table, e.g. [methods.finetune]")
        return problems
    for label, table in methods.items():
        if not isinstance(table, dict):
            problems.append(f"methods.{label}: must be a table of settings")
            continue
        method = table.get("method", label)
        if method not in METHODS:
            where = "method" if "method" in table else "(the table's name)"
            problems.append(f"methods.{label}.{where}: {METHODS.unknown(method)}")
            continue
        settings = {k: v for k, v in table.items() if k != "method"}
        where = f"methods.{label}"
        problems += [f"{where}.{key}: an empty list sweeps nothing; give at least one value"
                     for key, value in settings.items() if value == []]
        for values in _each_value({k: v for k, v in settings.items() if v != []}):  # every swept value
            problems += [p for p in METHODS[method].problems(values, where) if p not in problems]
    reference = data.get("reference", "")
    if not isinstance(reference, str) or (reference and reference not in methods):
        problems.append(f"reference: {reference!r} is not a method of this grid; accepted: "
                        f"{', '.join(map(repr, methods))}, or \"\"")
    return problems


def _each_value(settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Settings that between them hold every listed value of ``settings`` once (each swept key's values in
    turn, the other keys at their first): a method checks each value on its own, so this finds every
    problem of every combination at the cost of the values' count, not of their product."""
    first = {key: value[0] if isinstance(value, list) else value for key, value in settings.items()}
    yield first
    for key, value in settings.items():
        for one in value[1:] if isinstance(value, list) else ():
            yield {**first, key: one}


def _combinations(settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every combination of the listed (swept) values of ``settings``, one at a time; scalars are kept."""
    swept = [key for key, value in settings.items() if isinstance(value, list)]
    for values in itertools.product(*(settings[key] for key in swept)):
        yield {**settings, **dict(zip(swept, values, strict=True))}


def sweep_size(overrides: dict[str, Any]) -> int:
    """How many combinations a variant's settings sweep (1 without a list value), by arithmetic."""
    return math.prod(len(value) for value in overrides.values() if isinstance(value, list))


def _settings_count(grid: Grid) -> int:
    return sum(sweep_size(dict(v.overrides)) for v in grid.variants)


def grid_size(grid: Grid) -> int:
    """The runs ``grid`` names once its sweeps are expanded: backbones x seeds x every variant's
    combinations, by arithmetic (nothing is expanded)."""
    return len(grid.backbones) * len(grid.seeds) * _settings_count(grid)


def check_size(grid: Grid, max_runs: int = MAX_RUNS) -> int:
    """The grid's size; GridError, at once, when it is over ``max_runs``, saying how to narrow it."""
    size = grid_size(grid)
    if size <= max_runs:
        return size
    sweeps = "; ".join(f"{v.name} sweeps " + " x ".join(f"{len(value)} {key}" for key, value in v.overrides.items()
                                                       if isinstance(value, list))
                       for v in grid.variants if sweep_size(dict(v.overrides)) > 1)
    raise GridError(f"grid {grid.name} names {size:,} runs ({len(grid.backbones)} backbone(s) x {len(grid.seeds)} "
                    f"seed(s) x {_settings_count(grid):,} method setting(s)"
                    f"{f': {sweeps}' if sweeps else ''}), over the limit of {max_runs:,}; nothing was run: narrow "
                    f"it with --backbones, --methods or --seeds, or sweep fewer values, or raise the limit with "
                    f"--max-runs {size}")


def expand_sweeps(grid: Grid, max_runs: int = MAX_RUNS) -> Grid:
    """The grid with every variant that has list values replaced by one variant per combination (same
    label: the rows of a sweep share their method column and differ in ``hparams``); GridError first,
    without expanding anything, when the grid names more than ``max_runs`` runs."""
    check_size(grid, max_runs)
    variants = tuple(replace(v, overrides=combination) for v in grid.variants
                     for combination in _combinations(dict(v.overrides)))
    return replace(grid, variants=variants)


def load_grid_file(path: Path) -> Grid:
    """The grid in TOML file ``path`` (named after the file); GridError listing every problem."""
    path = Path(path)
    data = read_toml(path, "grid file", "a .toml grid file, or a built-in grid's name (python -m bench list)",
                     GridError)
    problems = _problems_of(data)
    if problems:
        raise GridError(f"grid file {path} has {len(problems)} problem(s), nothing was run: " + "; ".join(problems))
    variants = tuple(Variant(table.get("method", label), {k: v for k, v in table.items() if k != "method"},
                             "" if table.get("method", label) == label else label)
                     for label, table in data["methods"].items())
    task = data.get("task", "auto")
    if task.endswith(".toml"):  # a task file, relative to the grid file's folder
        task = str((path.parent / task).resolve())
    return Grid(path.stem, data.get("description", ""), variants, tuple(data["backbones"]),
                tuple(data.get("seeds", [0])), task, data.get("budget", "default"), data.get("reference", ""))


# The built-in grids, by file name; each file is read when a command first names it, so a broken one breaks
# only what uses it.
GRIDS: Registry[Grid] = LazyRegistry("grid", [path.stem for path in sorted(GRIDS_DIR.glob("*.toml"))],
                                     lambda name: load_grid_file(GRIDS_DIR / f"{name}.toml"),
                                     "a path to a .toml grid file")


def get_grid(name: str) -> Grid:
    """A built-in grid by name, or a user's grid file by path (anything ending in .toml)."""
    if name in GRIDS:
        return GRIDS[name]
    if Path(name).is_dir():
        raise GridError(f"--grid {name} is a folder; accepted: a .toml grid file, or one of: {', '.join(GRIDS)}")
    if special_kind(name):
        return load_grid_file(Path(name))  # refused by its type, before anything opens it
    if name.endswith(".toml") or Path(name).is_file():
        if not Path(name).is_file():
            raise GridError(f"grid file '{name}' does not exist; accepted: {GRIDS.accepted()}")
        return load_grid_file(Path(name))
    raise GridError(GRIDS.unknown(name))


def parse_set(text: str) -> tuple[str, str, Any]:
    """``method.key=value`` as (method, key, value); the value is read as TOML, else kept as a string."""
    target, sep, raw = text.partition("=")
    method, dot, key = target.strip().partition(".")
    if not sep or not dot or not method or not key:
        raise GridError(f"--set '{text}' is not METHOD.KEY=VALUE, e.g. --set prefix.lr=3e-3")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word such as normal
    return method, key, value


def apply_sets(grid: Grid, sets: list[str], whole: Grid | None = None,
               say: Callable[[str], None] = print) -> Grid:
    """The grid with every ``--set METHOD.KEY=VALUE`` applied to the variants labelled or of that method;
    a method the grid does not have is an error (the values themselves are checked with the grid). Sets
    come after ``--methods`` (so ``--methods lora --set lora.r=4`` works): ``whole``, the grid before
    ``--methods`` narrowed it, makes a set of a method left out a note rather than an error."""
    variants = list(grid.variants)
    for text in sets:
        method, key, value = parse_set(text)
        chosen = [i for i, v in enumerate(variants) if method in (v.name, v.method)]
        if not chosen and whole is not None and any(method in (v.name, v.method) for v in whole.variants):
            say(f"note: --set {text} changes nothing: --methods leaves out {method}")
            continue
        if not chosen:
            raise GridError(f"--set {text}: grid {grid.name} has no method '{method}'; accepted: "
                            f"{', '.join(dict.fromkeys(n for v in variants for n in (v.name, v.method)))}")
        for i in chosen:
            variants[i] = replace(variants[i], overrides={**variants[i].overrides, key: value})
    return replace(grid, variants=tuple(variants))


def set_everywhere(grid: Grid, key: str, value: Any) -> Grid:
    """The grid with ``key = value`` set for every method (``--precision bf16``)."""
    return replace(grid, variants=tuple(replace(v, overrides={**v.overrides, key: value}) for v in grid.variants))
