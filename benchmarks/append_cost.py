"""What one recorded run costs the results file as it grows: ``append_row`` and ``finished_rows``.

A grid looks up each run in the results file (``finished_rows``, twice when it claims the run) and
appends its row (``append_row``, which checks the file's last record for damage first). This fills
temporary copies of ``results/runs.csv`` to each size (its committed rows repeated, run ids made
unique), then times the grid's look-up and an append there, in turn as a grid does, and reports the
medians. The first look-up of a process reads the whole file (so does the first append of a process
that has not looked anything up, as ``run-one``); later ones read what was appended since.

    python -m benchmarks.append_cost [--sizes 100,10000,50000] [--repeats 5]

The machine may be busy: compare the sizes with each other (the ratio), not the seconds with another day's.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.record.schema import COLUMNS
from bench.record.store import append_row, finished_rows, read_rows

ROOT = Path(__file__).resolve().parent.parent


def fill(path: Path, size: int) -> dict[str, str]:
    """``path`` with ``size`` rows (the committed ones repeated, each with its own run id); returns a row
    to append."""
    rows = read_rows(ROOT / "results" / "runs.csv", warn=lambda _: None)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for i in range(size):
        writer.writerow({**rows[i % len(rows)], "run_id": f"bench-{i:08d}"})
    with path.open("w", encoding="utf-8") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())  # else the first append's fsync writes the whole filled file out
    return dict(rows[0])


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(size: int, repeats: int) -> tuple[float, float, float]:
    """Median seconds of one append and of one ``finished_rows`` look-up at ``size`` rows, and the seconds
    of the process's first look-up (which reads the whole file)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.csv"
        row = fill(path, size)
        appends, lookups = [], []
        for i in range(repeats):  # as a grid does: look the run up, then append its row
            lookups.append(timed(lambda i=i: finished_rows(path, warn=lambda _: None).get(f"new-{i}")))
            appends.append(timed(lambda i=i: append_row(path, {**row, "run_id": f"new-{i}"})))
    return statistics.median(appends), statistics.median(lookups), lookups[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,10000,50000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {size: measure(size, args.repeats) for size in sizes}
    first_append, first_lookup, _ = results[sizes[0]]
    print(f"{'rows':>8} {'append s':>10} {'x':>6} {'look-up s':>10} {'x':>6} {'first look-up s':>16}"
          f"   (medians of {args.repeats})")
    for size, (append, lookup, cold) in results.items():
        print(f"{size:>8} {append:>10.4f} {append / first_append:>6.1f} {lookup:>10.4f} {lookup / first_lookup:>6.1f} "
              f"{cold:>16.4f}")


if __name__ == "__main__":
    main()
