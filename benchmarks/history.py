"""Speed history: each recorded check appends its per-workload ratios with the commit to ``history.csv``.

One row per workload per check: when, which commit (``+dirty`` when the tree had uncommitted changes
outside results/ and reports/), the CPU and threads, the median ratio to plain PyTorch over the
check's repeats, the baseline's median, the change, the rank test's p-value, the factor it was held to
and whether it was flagged. ``python -m bench report`` draws it as a trend per workload
(``reports/speed-history.md``), so a slow drift over many commits shows, not only a jump. Appends take a
file lock: two checks recording at once each add whole rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

from filelock import FileLock

HISTORY = Path(__file__).resolve().parent / "history.csv"
COLUMNS = ["date", "commit", "cpu", "threads", "repeats", "workload", "ratio", "baseline", "change", "p_value",
           "limit", "regression"]


def append(rows: list[dict[str, object]], path: Path = HISTORY) -> None:
    """Append ``rows`` (each with every column of ``COLUMNS``), writing the header to a new file."""
    for row in rows:
        if set(row) != set(COLUMNS):
            raise ValueError(f"a history row needs exactly the columns {COLUMNS}, got {sorted(row)}")
    with FileLock(str(path) + ".lock", timeout=60):
        new = not path.exists() or path.stat().st_size == 0
        with path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerows(rows)
            handle.flush()
