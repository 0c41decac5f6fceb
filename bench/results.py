"""Result rows: the schema, the append-only CSV, run ids and the environment of a run.

One run = one row. ``append_row`` writes a whole row in a single write call (then fsync), so an
interrupted run leaves either the full row or nothing. A file whose header is not this schema is never
touched: ``SchemaError`` says what differs. ``run_id`` hashes what defines a run (grid, task, backbone,
method, seed, budget, hyper-parameters, device type), so a resumed grid can skip what is recorded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

COLUMNS = [
    # identity
    "schema_version", "run_id", "created_at", "grid", "task", "backbone", "method", "seed", "budget",
    "hparams",
    # code
    "git_sha", "git_dirty",
    # size
    "total_params", "trainable_params", "trainable_params_excl_head", "trainable_pct",
    # accuracy
    "train_loss", "acc", "acc_last", "acc_select", "best_epoch", "epochs", "majority_rate", "pred_majority_share",
    "n_train", "n_select", "n_eval",
    # speed
    "train_samples_per_s", "train_tokens_per_s", "train_flops_per_s", "matmul_peak_flops_per_s",
    "eval_samples_per_s", "train_s", "run_s", "peak_mem_mb", "peak_cuda_mem_mb",
    # place
    "device", "threads", "torch", "transformers", "fastnlp", "python", "cpu",
    # outcome
    "status", "error",
]
STATUSES = ("ok", "failed", "collapsed")


class SchemaError(RuntimeError):
    """A results file cannot be read or appended to as this schema."""


def run_id(identity: dict[str, Any]) -> str:
    """A short stable hash of what defines a run."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"cannot read results file {path}: {exc}") from None


def check_schema(path: Path) -> None:
    """Raise SchemaError unless ``path`` is absent, empty, or has exactly this schema's header."""
    if not path.exists() or path.stat().st_size == 0:
        return
    header = _header(path)
    if header != COLUMNS:
        missing = [c for c in COLUMNS if c not in header]
        extra = [c for c in header if c not in COLUMNS]
        raise SchemaError(
            f"{path} has another schema (missing {missing or 'none'}, extra {extra or 'none'}); it is "
            "left untouched: write to another file with --results, or move it aside")


def format_row(row: dict[str, Any]) -> dict[str, str]:
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise ValueError(f"row has columns outside the schema: {unknown}")
    if row.get("status") not in STATUSES:
        raise ValueError(f"row status must be one of {STATUSES}, got {row.get('status')!r}")
    out = {}
    for column in COLUMNS:
        value = row.get(column, "")
        if isinstance(value, float):
            value = repr(value)
        elif isinstance(value, bool):
            value = str(value).lower()
        elif value is None:
            value = ""
        out[column] = str(value)
    return out


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row; writes the header first into a new file. All or nothing per row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    check_schema(path)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    new = not path.exists() or path.stat().st_size == 0
    if new:
        writer.writeheader()
    writer.writerow(format_row(row))
    with path.open("a", newline="", encoding="utf-8") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())


def read_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a results CSV as strings (the schema is checked first)."""
    if not path.exists():
        return []
    check_schema(path)
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def recorded_ids(path: Path) -> set[str]:
    """Run ids already recorded as finished (ok or collapsed); failed runs are retried."""
    return {r["run_id"] for r in read_rows(path) if r["status"] in ("ok", "collapsed")}


def git_state(root: Path | None = None) -> tuple[str, bool]:
    """(sha, dirty) of the working tree, ignoring results/ and reports/ (which runs themselves write)."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!results", ":!reports"],
                                cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return sha or "unknown", bool(status)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, str]:
    """Library versions and machine, recorded with every row."""
    import importlib.metadata as md

    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "fastnlp": md.version("fastnlp"), "python": platform.python_version(), "cpu": cpu_name()}
