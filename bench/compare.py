"""Compare the harness's own rows between two CSVs or two commits: a before/after table with ratios.

    python -m bench compare old.csv results/runs.csv
    python -m bench compare HEAD~3:results/runs.csv results/runs.csv     # GIT_REF:path reads from git

Runs are matched on (grid, task, budget, device, threads, backbone, method); for each, the median train
samples/s and eval samples/s over ok seeds and the mean accuracy, before and after, with after/before
ratios (above 1 = faster). Throughput is only comparable between rows from the same kind of machine.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.results import COLUMNS, SchemaError

KEYS = ["grid", "task", "budget", "device", "threads", "backbone", "method"]


def read_source(source: str) -> pd.DataFrame:
    """A CSV from a path, or from git when written ``REF:path`` and the path is not a file."""
    path = Path(source)
    if path.exists():
        text = path.read_text(encoding="utf-8")
    elif ":" in source:
        ref, _, inside = source.partition(":")
        result = subprocess.run(["git", "show", f"{ref}:{inside}"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent.parent)
        if result.returncode != 0:
            raise SchemaError(f"cannot read '{inside}' at git ref '{ref}': {result.stderr.strip()}")
        text = result.stdout
    else:
        raise SchemaError(f"'{source}' is neither a file nor GIT_REF:path")
    data = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    missing = [c for c in KEYS + ["acc", "train_samples_per_s", "eval_samples_per_s", "status"]
               if c not in data.columns]
    if missing:
        raise SchemaError(f"'{source}' lacks columns {missing}; expected the results schema ({len(COLUMNS)} "
                          "columns)")
    return data


def summarise(data: pd.DataFrame) -> pd.DataFrame:
    ok = data[data["status"] == "ok"].copy()
    for column in ("acc", "train_samples_per_s", "eval_samples_per_s"):
        ok[column] = pd.to_numeric(ok[column], errors="coerce")
    return ok.groupby(KEYS, sort=True).agg(acc=("acc", "mean"), train=("train_samples_per_s", "median"),
                                           eval=("eval_samples_per_s", "median"), seeds=("acc", "size"))


def compare(before: str, after: str) -> str:
    """The before/after table as markdown text."""
    old, new = summarise(read_source(before)), summarise(read_source(after))
    joined = old.add_suffix("_before").join(new.add_suffix("_after"), how="outer")
    if joined.empty:
        return "no ok runs in either file"
    rows = []
    for key, r in joined.iterrows():
        rows.append(list(key) + [
            f"{r.acc_before:.4f}" if r.acc_before == r.acc_before else "–",
            f"{r.acc_after:.4f}" if r.acc_after == r.acc_after else "–",
            f"{r.train_before:.1f}" if r.train_before == r.train_before else "–",
            f"{r.train_after:.1f}" if r.train_after == r.train_after else "–",
            f"{r.train_after / r.train_before:.2f}" if r.train_before and r.train_after == r.train_after
            and r.train_before == r.train_before else "–",
            f"{r.eval_after / r.eval_before:.2f}" if r.eval_before and r.eval_after == r.eval_after
            and r.eval_before == r.eval_before else "–",
        ])
    headers = KEYS + ["acc before", "acc after", "train/s before", "train/s after", "train ratio",
                      "eval ratio"]
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
