"""Reproduce committed numbers on this machine: run a grid into its own file and compare, cell by cell.

``python -m bench reproduce --grid sizes`` runs the grid's runs into ``reproduced/runs.csv`` (never
into ``results/``, so committed rows are not mixed with a newcomer's), then prints, per backbone and
method, the committed accuracy beside the one measured here with a verdict, and the speed ratio.
Runs are matched by ``run_id`` (the same grid, task, budget, hyper-parameters, seed and device type).

Verdicts: ``identical`` (every seed gave the same accuracy: same CPU and libraries),
``agrees`` (the means differ by at most ``max(2 x committed std, TOLERANCE_PTS)`` points: other
processors sum floats in another order), ``DIFFERS`` (more than that), ``not committed`` (nothing to
compare with).
"""

from __future__ import annotations

import statistics

from tabulate import tabulate

from bench.results import machine_of

TOLERANCE_PTS = 1.5  # seen here: the same seed moved by ~0.5 pt between AMD EPYC and Intel Xeon


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(committed: list[float], here: list[float], same_seeds_equal: bool) -> str:
    """The verdict for one cell from its accuracies (fractions) over seeds."""
    if not committed:
        return "not committed"
    if same_seeds_equal:
        return "identical"
    tolerance = max(2 * 100 * _std(committed), TOLERANCE_PTS)
    gap = 100 * abs(statistics.mean(here) - statistics.mean(committed))
    return "agrees" if gap <= tolerance else "DIFFERS"


def comparison(committed: dict[str, dict[str, str]], here: dict[str, dict[str, str]]) -> tuple[str, list[str]]:
    """Markdown table, one line per backbone and method measured here, and the verdicts. Both arguments
    map run ids to their finished rows (``bench.results.finished_rows``)."""
    cells: dict[tuple[str, str], list[str]] = {}
    for rid, row in here.items():
        cells.setdefault((row["backbone"], row["method"]), []).append(rid)
    lines, verdicts = [], []
    for (backbone, method), rids in cells.items():
        mine = [float(here[r]["acc"]) for r in rids]
        theirs = [float(committed[r]["acc"]) for r in rids if r in committed]
        equal = all(r in committed and committed[r]["acc"] == here[r]["acc"] for r in rids)
        speed_here = statistics.median(float(here[r]["train_samples_per_s"]) for r in rids)
        speed_then = [float(committed[r]["train_samples_per_s"]) for r in rids if r in committed]
        cpus = sorted({machine_of(committed[r]) for r in rids if r in committed})
        verdicts.append(verdict(theirs, mine, equal and bool(theirs)))
        lines.append([
            backbone, method,
            f"{100 * statistics.mean(theirs):.1f} ± {100 * _std(theirs):.1f} ({len(theirs)})" if theirs else "–",
            f"{100 * statistics.mean(mine):.1f} ± {100 * _std(mine):.1f} ({len(mine)})",
            f"{100 * (statistics.mean(mine) - statistics.mean(theirs)):+.1f}" if theirs else "–",
            verdicts[-1],
            f"{speed_here / statistics.median(speed_then):.2f}" if speed_then else "–",
            ", ".join(cpus) or "–",
        ])
    headers = ["backbone", "method", "committed eval acc % (seeds)", "here eval acc % (seeds)", "Δ pts", "verdict",
               "speed here / committed", "committed on CPU"]
    return tabulate(lines, headers=headers, tablefmt="pipe", disable_numparse=True), verdicts
