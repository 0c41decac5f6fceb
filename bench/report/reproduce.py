"""Reproduce committed numbers on this machine: run a grid into its own file and compare, cell by cell.

``python -m bench reproduce --grid sizes`` runs the grid's runs into ``reproduced/runs.csv`` (never
into ``results/``, so committed rows are not mixed with a newcomer's), then prints, per backbone and
method, the committed accuracy beside the one measured here with a verdict, and the speed ratio.
Runs are matched by ``run_id`` (the same grid, task, budget, hyper-parameters, seed and device type).

A cell is compared on the seeds both sides have, and says which (``0,1,2 (seed 3 only here)``): a
seed missing on one side would otherwise make like unlike. The speed ratio is the median over those
seeds whose speed was measured on a quiet machine on both sides (``speed_clean`` true; a GPU run,
which the CPU-load check does not judge, counts when it is empty); the others are left out, saying so.

Verdicts: ``identical`` (every shared seed gave the same accuracy: same CPU and libraries),
``agrees`` (the means differ by at most ``max(2 x committed std, TOLERANCE_PTS)`` points: other
processors sum floats in another order), ``DIFFERS`` (more than that), ``not committed`` (no seed
to compare with).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from tabulate import tabulate

from bench.config.grids import GridError
from bench.file_kinds import special_kind
from bench.record.provenance import machine_of
from bench.record.store import finished_rows

TOLERANCE_PTS = 1.5  # seen here: the same seed moved by ~0.5 pt between AMD EPYC and Intel Xeon
# What makes two rows the same cell apart from their seed (the run identity without the seed).
CELL_FIELDS = ("grid", "task", "budget", "hparams", "device", "backbone", "method")


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(committed: list[float], here: list[float], same_seeds_equal: bool) -> str:
    """The verdict for one cell from its accuracies (fractions) over the seeds both sides have."""
    if not committed:
        return "not committed"
    if same_seeds_equal:
        return "identical"
    tolerance = max(2 * 100 * _std(committed), TOLERANCE_PTS)
    gap = 100 * abs(statistics.mean(here) - statistics.mean(committed))
    return "agrees" if gap <= tolerance else "DIFFERS"


def committed_csvs(against: Path) -> list[Path]:
    """The results CSVs under ``against`` (a folder, or one CSV file); refused in one line, before any
    run, when there is none or one is not a regular file (a FIFO would block the read forever)."""
    if not against.exists():
        raise GridError(f"--against '{against}' does not exist; pass the folder of committed results CSVs "
                        "(default results/) or one CSV file")
    paths = [against] if not against.is_dir() else sorted(against.glob("**/*.csv"))
    for path in paths:
        if not path.exists():  # a dangling link
            raise GridError(f"--against: cannot read '{path}': it is a link to nothing")
        kind = special_kind(path)
        if kind:
            raise GridError(f"--against: '{path}' is not a regular file ({kind}); pass results CSV files")
    if not paths:
        raise GridError(f"--against '{against}' holds no .csv file; pass the folder of committed results CSVs "
                        "(default results/) or one CSV file")
    return paths


def committed_rows(against: Path) -> dict[str, dict[str, str]]:
    """The finished committed rows under ``against`` (``committed_csvs``), by run id."""
    return {rid: row for path in committed_csvs(against) for rid, row in finished_rows(path).items()}


def _seeds(rows: list[dict[str, str]]) -> str:
    return ",".join(sorted({r["seed"] for r in rows}, key=lambda s: (len(s), s)))


def _seed_note(shared: list[dict[str, str]], only_here: list[dict[str, str]],
               only_committed: list[dict[str, str]]) -> str:
    """Which seeds are compared, e.g. ``0,1,2 (seed 3 only here)``."""
    def phrase(rows: list[dict[str, str]], where: str) -> str:
        seeds = _seeds(rows)
        return f"seed{'s' if ',' in seeds else ''} {seeds} only {where}"

    extra = [phrase(rows, where) for rows, where in ((only_here, "here"), (only_committed, "committed")) if rows]
    return (_seeds(shared) if shared else "none") + (f" ({'; '.join(extra)})" if extra else "")


def _clean(row: dict[str, str]) -> bool:
    """Was this row's speed measured on a quiet machine? The CPU-load check does not judge GPU runs."""
    return row["speed_clean"] == "true" or (row["speed_clean"] == "" and row["device"].startswith("cuda"))


def _speed(shared: list[str], committed: dict[str, dict[str, str]], here: dict[str, dict[str, str]]) -> tuple[str, str]:
    """The median train-speed ratio here / committed over the shared seeds clean on both sides, and a note
    on those left out."""
    clean = [r for r in shared if _clean(here[r]) and _clean(committed[r])]
    left_out = len(shared) - len(clean)
    note = f"speed of {left_out} seed(s) not measured on a quiet machine, left out of the ratio" if left_out else ""
    if not clean:
        return "–", note
    ratio = (statistics.median(float(here[r]["train_samples_per_s"]) for r in clean)
             / statistics.median(float(committed[r]["train_samples_per_s"]) for r in clean))
    return f"{ratio:.2f}", note


def _cell_key(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(row[f] for f in CELL_FIELDS)


def comparison(committed: dict[str, dict[str, str]], here: dict[str, dict[str, str]]) -> tuple[str, list[str]]:
    """Markdown table, one line per backbone and method measured here, and the verdicts. Both arguments
    map run ids to their finished rows (``bench.record.store.finished_rows``)."""
    cells: dict[tuple[str, str], list[str]] = {}
    for rid, row in here.items():
        cells.setdefault((row["backbone"], row["method"]), []).append(rid)
    lines, verdicts = [], []
    for (backbone, method), rids in cells.items():
        shared = [r for r in rids if r in committed]
        keys = {_cell_key(here[r]) for r in rids}
        only_committed = [row for rid, row in committed.items() if rid not in here and _cell_key(row) in keys]
        mine = [float(here[r]["acc"]) for r in (shared or rids)]
        theirs = [float(committed[r]["acc"]) for r in shared]
        equal = bool(shared) and all(committed[r]["acc"] == here[r]["acc"] for r in shared)
        ratio, speed_note = _speed(shared, committed, here)
        cpus = sorted({machine_of(committed[r]) for r in shared})
        verdicts.append(verdict(theirs, mine, equal))
        lines.append([
            backbone, method, _seed_note([here[r] for r in shared], [here[r] for r in rids if r not in committed],
                                         only_committed),
            f"{100 * statistics.mean(theirs):.1f} ± {100 * _std(theirs):.1f} ({len(theirs)})" if theirs else "–",
            f"{100 * statistics.mean(mine):.1f} ± {100 * _std(mine):.1f} ({len(mine)})",
            f"{100 * (statistics.mean(mine) - statistics.mean(theirs)):+.1f}" if theirs else "–",
            verdicts[-1], ratio, ", ".join(cpus) or "–", speed_note,
        ])
    headers = ["backbone", "method", "seeds compared", "committed eval acc % (seeds)", "here eval acc % (seeds)",
               "Δ pts", "verdict", "speed here / committed", "committed on CPU", "note"]
    return tabulate(lines, headers=headers, tablefmt="pipe", disable_numparse=True), verdicts
