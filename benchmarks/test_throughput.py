"""pytest-benchmark suite: training and evaluation step time per method on fixed random backbones.

Run alone with ``python -m pytest benchmarks -p no:cacheprovider --benchmark-only``; the regression
check runs it with ``python -m benchmarks.check --steps`` to say whether a whole-loop regression sits in
a method's own step, and compares its ratios to the committed baseline.
"""

from __future__ import annotations

import pytest

from benchmarks.workloads import BACKBONES, WORKLOADS, eval_step, train_step

ROUNDS, WARMUP = 25, 3


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("phase", ["train", "eval"])
def test_step(benchmark, phase: str, backbone: str, workload: str) -> None:
    step = (train_step if phase == "train" else eval_step)(backbone, workload)
    benchmark.extra_info.update(phase=phase, backbone=backbone, workload=workload)
    benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP)
