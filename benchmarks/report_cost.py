"""What the results file's size costs ``python -m bench report``: the whole command, and reading the rows.

Fills temporary results folders to each size with the committed rows of ``results/runs.csv`` repeated,
each copy with its own run ids and seeds and, as real runs have, its own times, speeds, losses and
memory (so no value repeats more than it would in a real file), then times in turn, interleaved:
``load_results`` (parse, check every value against its column's domain, build the table) in this
process, and the whole ``python -m bench report`` command in a fresh one (imports, aggregation, tables
and every plot). Reports the medians and each size's ratio to the first.

    python -m benchmarks.report_cost [--sizes 221,10000,50000] [--repeats 3]

The machine may be busy: compare the sizes with each other (the ratio), not the seconds with another day's.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.record.schema import COLUMNS, DOMAINS
from bench.record.store import read_rows

ROOT = Path(__file__).resolve().parent.parent
# Columns whose values differ from run to run (measurements): perturbed per copy, so they do not repeat.
MEASURED = ("train_loss", "train_samples_per_s", "train_tokens_per_s", "train_flops_per_s", "eval_samples_per_s",
            "train_s", "run_s", "peak_mem_mb", "other_cpu_load", "matmul_peak_flops_per_s")


def _perturbed(text: str, copy: int) -> str:
    if not text or copy == 0:
        return text
    return repr(float(text) * (1 + copy * 1e-7))


def fill(folder: Path, size: int) -> None:
    """``folder/runs.csv`` with ``size`` rows: the committed ones repeated, each copy a different seed with
    its own measurements."""
    rows = read_rows(ROOT / "results" / "runs.csv", warn=lambda _: None)
    assert all(DOMAINS[c].kind == "number" for c in MEASURED)
    folder.mkdir(parents=True)
    with (folder / "runs.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for i in range(size):
            row, copy = rows[i % len(rows)], i // len(rows)
            seed = str(int(row["seed"]) + 1000 * copy) if row["seed"] else row["seed"]
            writer.writerow({**row, **{c: _perturbed(row[c], copy) for c in MEASURED},
                             "run_id": f"bench-{i:08d}", "seed": seed})


def _load_seconds(folder: Path) -> float:
    from bench.report.load import load_results

    start = time.perf_counter()
    load_results(folder)
    return time.perf_counter() - start


def _report_seconds(folder: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench", "report", "--results-dir", str(folder), "--out", str(out)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="221,10000,50000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    loads: dict[int, list[float]] = {size: [] for size in sizes}
    reports: dict[int, list[float]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            fill(Path(tmp) / str(size), size)
        for repeat in range(args.repeats):  # interleaved, so a busy spell touches every size alike
            for size in sizes:
                loads[size].append(_load_seconds(Path(tmp) / str(size)))
                reports[size].append(_report_seconds(Path(tmp) / str(size), Path(tmp) / f"out-{size}-{repeat}"))
    load = {size: statistics.median(v) for size, v in loads.items()}
    report = {size: statistics.median(v) for size, v in reports.items()}
    first = sizes[0]
    print(f"{'rows':>8} {'load_results s':>15} {'x':>6} {'report s':>9} {'x':>6}   (medians of {args.repeats})")
    for size in sizes:
        print(f"{size:>8} {load[size]:>15.2f} {load[size] / load[first]:>6.1f} {report[size]:>9.2f} "
              f"{report[size] / report[first]:>6.2f}")


if __name__ == "__main__":
    main()
