"""The check of a whole grid before anything runs: its budget, every variant's method and settings, and
that it has something to run, every problem listed at once. A grid file's own structure (keys, types,
names) is checked when it is read (``bench.config.grid_files.load_grid_file``), ``run-one``'s values in
``bench.plan.RunSpec.from_json``; all three ask the method registry the same question
(``MethodEntry.problems``), so a setting is accepted or refused alike wherever it is given."""

from __future__ import annotations

from bench.config.grids import BUDGETS, Grid, GridError


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
