"""Compare the harness's own rows between two CSVs or two commits: a before/after table with ratios.

    python -m bench compare old.csv results/runs.csv
    python -m bench compare HEAD~3:results/runs.csv results/runs.csv     # GIT_REF:path reads from git

A source that is not a regular file (a FIFO, a device, a socket) is refused by its type without reading
it, and one that holds no row (empty, or a header alone) is refused: either is one line and exit 2.
A GIT_REF is checked before git runs: one that starts with '-' (git would read it as an option), holds a
range ('..') or characters outside a plain revision is refused with one line.

Damaged records are skipped with a warning naming their byte offset (``bench.record.store.parse_rows``),
so one cut-off line does not make the whole file unreadable. Rows are loaded the report's way
(``bench.report.frame``: a row superseded by a re-run is dropped). Runs are matched on (grid, task,
budget, device, threads, backbone, method); for each, the seeds and mean accuracy over ok seeds, before
and after (a cell whose seed sets differ is marked), and the median train and eval samples/s over the ok
runs measured on a quiet machine on one CPU, with after/before ratios (above 1 = faster) only when both
sides ran on the same CPU.
"""

from __future__ import annotations

import string
import subprocess
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.file_kinds import special_kind
from bench.record.schema import SchemaError
from bench.record.store import parse_rows
from bench.report.frame import as_frame, clean_speed, speed_cpu

KEYS = ["grid", "task", "budget", "device", "precision", "threads", "backbone", "method"]


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
        kind = special_kind(path)
        if kind:  # a FIFO would block the read forever
            raise SchemaError(f"'{source}' is not a regular file ({kind}); pass a results CSV file or GIT_REF:path")
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
                                    cwd=Path(__file__).resolve().parents[2])
        except OSError as exc:
            raise SchemaError(f"cannot run git to read '{source}': {exc.strerror or exc}") from None
        if result.returncode != 0:
            detail = " ".join(result.stderr.decode("utf-8", errors="replace").split())
            raise SchemaError(f"cannot read '{inside}' at git ref '{ref}': {detail}")
        data = result.stdout
    else:
        raise SchemaError(f"'{source}' does not exist and is not GIT_REF:path; pass a results CSV file or "
                          "GIT_REF:path, e.g. HEAD~1:results/runs.csv")
    rows = parse_rows(data, source)
    if not rows:
        what = "is empty" if not data.strip() else "holds no whole row after its header"
        raise SchemaError(f"'{source}' {what}: no rows to compare; pass a results CSV with at least one row")
    return as_frame(rows)


def summarise(data: pd.DataFrame) -> pd.DataFrame:
    """One line per cell (``KEYS``): mean accuracy over its ok seeds and the seeds, and the median speeds
    over the ok runs measured on a quiet machine on one CPU (``bench.report.frame.speed_cpu``), with that CPU."""
    lines = []
    for key, group in data.groupby(KEYS, sort=True):
        ok = group[group["status"] == "ok"]
        if ok.empty:
            continue
        cpu = speed_cpu(group)
        timed = ok[(ok["machine"] == cpu) & clean_speed(ok)]
        lines.append({**dict(zip(KEYS, key, strict=True)), "acc": ok["acc"].mean(),
                      "seeds": ",".join(str(int(s)) for s in sorted(ok["seed"].dropna())),
                      "train": timed["train_samples_per_s"].median(), "eval": timed["eval_samples_per_s"].median(),
                      "cpu": cpu or ""})
    return pd.DataFrame(lines, columns=KEYS + ["acc", "seeds", "train", "eval", "cpu"]).set_index(KEYS)


def _number(value: float, fmt: str) -> str:
    return "–" if value != value else format(value, fmt)


def compare(before: str, after: str) -> str:
    """The before/after table as markdown text. Rows superseded by a re-run are dropped; accuracy is
    compared over each side's seeds (a cell whose seed sets differ is marked); speed ratios are given
    only between runs on the same CPU."""
    old, new = summarise(read_source(before)), summarise(read_source(after))
    joined = old.add_suffix("_before").join(new.add_suffix("_after"), how="outer")
    if joined.empty:
        return "no ok runs in either file"
    rows = []
    for key, r in joined.iterrows():
        notes = []
        both = isinstance(r.seeds_before, str) and isinstance(r.seeds_after, str)
        if both and r.seeds_before != r.seeds_after:
            notes.append(f"seeds differ ({r.seeds_before} vs {r.seeds_after}): accuracy not like for like")
        same_cpu = both and r.cpu_before and r.cpu_before == r.cpu_after
        if both and not same_cpu:
            notes.append(f"different CPUs ({r.cpu_before or 'none quiet'} vs {r.cpu_after or 'none quiet'}): "
                         "no speed ratio")
        rows.append(list(key) + [
            r.seeds_before if isinstance(r.seeds_before, str) else "–",
            r.seeds_after if isinstance(r.seeds_after, str) else "–",
            _number(r.acc_before, ".4f"), _number(r.acc_after, ".4f"),
            _number(r.train_before, ".1f"), _number(r.train_after, ".1f"),
            _number(r.train_after / r.train_before, ".2f") if same_cpu and r.train_before else "–",
            _number(r.eval_after / r.eval_before, ".2f") if same_cpu and r.eval_before else "–",
            "; ".join(notes),
        ])
    headers = KEYS + ["seeds before", "seeds after", "acc before", "acc after", "train/s before", "train/s after",
                      "train ratio", "eval ratio", "note"]
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
