"""When a workload counts as slower: a ratio above a factor *and* a significant rank test.

The samples are a workload's per-repeat ratios (harness time / plain PyTorch time, ``benchmarks.loop``).
Like asv's ``compare``, a change counts only when both hold:

* the median of the new samples over the median of the baseline's exceeds ``factor``: big enough to
  matter and beyond the noise measured on an unchanged tree (docs/regression-tracking.md);
* a one-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``) says the new samples are larger with
  p < ``alpha``: the shift is not a few unlucky repeats. With 5 new and 10 baseline samples, the
  smallest possible p is 1/3003, so ``alpha`` 0.01 needs most of the new samples above most of the old.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from scipy.stats import mannwhitneyu


@dataclass(frozen=True)
class Verdict:
    change: float  # median(now) / median(baseline)
    p_value: float  # one-sided: now is larger
    factor: float
    alpha: float

    @property
    def regression(self) -> bool:
        return self.change > self.factor and self.p_value < self.alpha


def judge(baseline: list[float], now: list[float], factor: float, alpha: float) -> Verdict:
    """Compare ``now`` with ``baseline`` (each at least 3 samples)."""
    if len(baseline) < 3 or len(now) < 3:
        raise ValueError(f"need at least 3 samples on each side, got {len(baseline)} and {len(now)}")
    change = statistics.median(now) / statistics.median(baseline)
    p_value = float(mannwhitneyu(now, baseline, alternative="greater").pvalue)
    return Verdict(change, p_value, factor, alpha)
