"""Issue 21's input guards: a grid's size is known before it is expanded, bad `run-one` specs, special
files, folders given as a grid, and Ctrl-C at start-up are each one line and an exit code, before any work;
and the expansion of every built-in grid keeps its run_ids."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.grid_files import GRIDS, expand_sweeps
from bench.grids import narrow
from bench.results import run_id
from bench.runner import expand

ROOT = Path(__file__).resolve().parent.parent
PINNED = json.loads((Path(__file__).parent / "fixtures" / "grid_run_ids.json").read_text())


@pytest.mark.parametrize("key", sorted(PINNED))
def test_every_built_in_grid_expands_to_its_pinned_run_ids(key) -> None:
    """Computed by the code before issue 21 changed the expansion: same runs, same order, same ids."""
    name, task = key.split("/")
    grid = narrow(expand_sweeps(GRIDS[name]), task=task)
    specs = expand(grid, SimpleNamespace(name=task), "cpu", 2, True, False, say=lambda _: None)
    assert [run_id(s.identity()) for s in specs] == PINNED[key]
