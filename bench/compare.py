"""Compare the harness's own rows between two CSVs or two commits: a before/after table with ratios.

    python -m bench compare old.csv results/runs.csv
    python -m bench compare HEAD~3:results/runs.csv results/runs.csv     # GIT_REF:path reads from git

A GIT_REF is checked before git runs: one that starts with '-' (git would read it as an option), holds a
range ('..') or characters outside a plain revision is refused with one line.

Damaged records are skipped with a warning naming their byte offset (``bench.results.parse_rows``),
so one cut-off line does not make the whole file unreadable. Runs are matched on (grid, task, budget,
device, threads, backbone, method); for each, the median train samples/s and eval samples/s over ok
seeds and the mean accuracy, before and after, with after/before ratios (above 1 = faster).
Throughput is only comparable between rows from the same kind of machine.
"""

from __future__ import annotations

import string
import subprocess
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.results import COLUMNS, SchemaError, parse_rows

KEYS = ["grid", "task", "budget", "device", "threads", "backbone", "method"]


GIT_REF_CHARS = set(string.ascii_letters + string.digits + "._/~^@{}+-")
REF_RULE = ("a branch, tag or commit such as HEAD~1, main or v1.0 (letters, digits and . _ / ~ ^ @ { } + -, "
            "not starting with '-', no '..')")


def _check_ref(ref: str, source: str) -> None:
    """Refuse a git ref that ``git show`` could take for an option, a range or anything but a revision."""
    if not ref:
        why = "is empty"
    elif ref.startswith("-"):
        why = "starts with '-'"
    elif ".." in ref:
        why = "contains '..' (a range, not one revision)"
    elif set(ref) - GIT_REF_CHARS:
        why = f"contains {''.join(sorted(set(ref) - GIT_REF_CHARS))!r}"
    else:
        return
    raise SchemaError(f"git ref '{ref}' in '{source}' {why}; write GIT_REF:path with GIT_REF {REF_RULE}")


def read_source(source: str) -> pd.DataFrame:
    """A CSV from a path, or from git when written ``REF:path`` and the path is not a file."""
    path = Path(source)
    if path.is_dir():
        raise SchemaError(f"'{source}' is a folder; pass a results CSV file or GIT_REF:path")
    if path.exists():
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SchemaError(f"cannot read '{source}': {exc.strerror or exc}") from None
    elif ":" in source:
        ref, _, inside = source.partition(":")
        _check_ref(ref, source)
        if not inside:
            raise SchemaError(f"'{source}' names no file after ':'; write GIT_REF:path, e.g. HEAD~1:results/runs.csv")
        try:
            result = subprocess.run(["git", "show", f"{ref}:{inside}"], capture_output=True,
                                    cwd=Path(__file__).resolve().parent.parent)
        except OSError as exc:
            raise SchemaError(f"cannot run git to read '{source}': {exc.strerror or exc}") from None
        if result.returncode != 0:
            detail = " ".join(result.stderr.decode("utf-8", errors="replace").split())
            raise SchemaError(f"cannot read '{inside}' at git ref '{ref}': {detail}")
        data = result.stdout
    else:
        raise SchemaError(f"'{source}' does not exist and is not GIT_REF:path; pass a results CSV file or "
                          "GIT_REF:path, e.g. HEAD~1:results/runs.csv")
    data = pd.DataFrame(parse_rows(data, source), columns=COLUMNS, dtype=str)
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
