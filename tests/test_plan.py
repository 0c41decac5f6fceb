"""The one run type: a planned run holds names and plain values, goes to JSON and back unchanged, and
importing it loads no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.config.grid_files import GRIDS, expand_sweeps
from bench.config.grids import GridError
from bench.launchers.driver import expand
from bench.plan import RunSpec
from bench.tasks import TaskData

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["smoke", "sizes", "lr-sweep"])
def test_every_planned_run_goes_to_json_and_back_with_its_run_id(name: str) -> None:
    task = TaskData(GRIDS[name].task if GRIDS[name].task != "auto" else "mr", "", 2, None, None, None)
    specs = expand(expand_sweeps(GRIDS[name]), task, "cpu", 2, progress=False, say=lambda _: None)
    assert specs
    for spec in specs:
        again = RunSpec.from_json(spec.to_json())
        assert again == spec and again.run_id == spec.run_id
        assert isinstance(spec.task, str) and json.loads(spec.to_json())["task"] == spec.task


def test_a_json_spec_with_an_unknown_budget_lists_it_with_the_runs_other_problems() -> None:
    text = json.dumps({"grid": "g", "task": "synthetic", "backbone": "random-bert-tiny", "method": "nope", "seed": 0,
                       "budget": "huge"})
    with pytest.raises(GridError) as caught:
        RunSpec.from_json(text)
    assert "unknown budget 'huge'" in str(caught.value) and "unknown method 'nope'" in str(caught.value)


def test_the_plan_imports_no_torch() -> None:
    probe = "import sys, bench.plan, bench.launchers.driver; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
