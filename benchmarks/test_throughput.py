"""pytest-benchmark suite: training and evaluation step time per method on fixed random backbones.

Run alone with ``python -m pytest benchmarks -p no:cacheprovider --benchmark-only``; the regression
check (``python -m benchmarks.check``) runs it and compares ratios to the committed baseline.
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
