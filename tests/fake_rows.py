"""Rows made up for report and row-store tests: whole, valid rows of the current schema's shape, with
the accuracy, status and any column a test sets. Shared here so that no test module imports another."""

from __future__ import annotations

import json


def make_row(backbone: str, method: str, seed: int, acc: float, status: str = "ok", **extra) -> dict:
    trainable = {"finetune": 22_000_000, "prompt": 6_914, "prefix": 74_498}[method]
    row = {"schema_version": 1, "run_id": f"{backbone}-{method}-{seed}-{status}", "grid": "sizes",
           "task": "mr", "backbone": backbone, "method": method, "seed": seed, "budget": "default",
           "hparams": json.dumps({"lr": 0.01, "method": method}), "git_sha": "abc", "git_dirty": False,
           "created_at": f"2026-01-0{seed + 1}T00:00:00+00:00", "total_params": 22_600_000,
           "trainable_params": trainable, "trainable_params_excl_head": trainable - 770,
           "trainable_pct": 100 * trainable / 22_600_000, "majority_rate": 0.5, "device": "cpu", "threads": 2,
           "train_samples_per_s": 50.0 + seed, "train_tokens_per_s": 1500.0, "train_flops_per_s": 1e9,
           "matmul_peak_flops_per_s": 1e10, "eval_samples_per_s": 300.0, "peak_mem_mb": 900.0,
           "torch": "2.13.0", "transformers": "5.24.0", "fastnlp": "1.0.1", "python": "3.11.7", "cpu": "x",
           "status": status}
    if status != "failed":
        row["acc"] = acc
        row["acc_last"] = acc
    row.update(extra)
    return row
