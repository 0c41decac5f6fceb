"""The lines under each table that say how its numbers were made: failures by reason, hyper-parameters,
environment and the command that reproduces it."""

from __future__ import annotations

import json
import re

import pandas as pd

from bench.record.provenance import machine_of
from bench.report.aggregate import backbone_size, layout, ranked_methods
from bench.report.frame import clean_speed, speed_cpu


def hparams_lines(rows: pd.DataFrame) -> list[str]:
    lines = []
    ranked = ranked_methods(rows["method"], layout(rows)[1])
    for method, group in sorted(rows.groupby("method"), key=lambda item: ranked.index(item[0])):
        for text in sorted(set(group["hparams"])):
            values = json.loads(text) if text else {}
            shown = ", ".join(f"{k}={values[k]}" for k in sorted(values))
            lines.append(f"- `{method}`: {shown}")
    return lines


def environment_lines(rows: pd.DataFrame) -> list[str]:
    def values(column: str) -> str:
        found = sorted(text for text in rows[column].dropna().astype(str).unique() if text not in ("", "nan"))
        return ", ".join(found) or "–"

    peaks = [f"{machine} {group.median() / 1e9:.1f} GFLOP/s" for machine, group in
             rows.groupby("machine", sort=True)["matmul_peak_flops_per_s"] if group.notna().any()]
    places = rows[["cpu", "cpu_features"]].fillna("").drop_duplicates()
    cpus = sorted({machine_of({"cpu": cpu, "cpu_features": features}) for cpu, features in
                   zip(places["cpu"], places["cpu_features"], strict=True) if cpu})
    peak_text = f"{'; '.join(peaks)} (median of runs)" if peaks else "–"
    dirty = (rows["git_dirty"] == "true").sum()
    lines = [
        f"- device: {values('device')}; threads: {values('threads')}; CPU: {', '.join(cpus) or '–'}",
        *([f"- GPU: {values('accelerator')}"] if values("accelerator") != "–" else []),
        *([f"- launcher: {values('launcher')}; nodes: {values('node')}"] if (rows["launcher"] == "ray").any() else []),
        f"- {values('precision')} matmul peak measured in the same process: {peak_text}",
        f"- torch {values('torch')}, transformers {values('transformers')}, fastNLP {values('fastnlp')}, "
        f"python {values('python')}",
        f"- git sha of the runs: {values('git_sha')}" + (f" ({dirty} run(s) from a modified tree)" if dirty else ""),
        f"- rows: {len(rows)}, runs started from {values('created_at').split(', ')[0]} to "
        f"{values('created_at').split(', ')[-1]}",
    ]
    timing_cpu = speed_cpu(rows)
    busy = rows[(rows["status"] == "ok") & ~clean_speed(rows)]
    if len(busy):
        lines.append(f"- {len(busy)} ok run(s) were measured while other processes used the cores (median "
                     f"{busy['other_cpu_load'].median():.2f} cores busy beside the run): their accuracy counts, "
                     "their speeds are left out of the speed columns")
    unchecked = int(((rows["status"] == "ok") & (rows["schema_version"] == "1")).sum())
    if unchecked:
        lines.append(f"- {unchecked} ok run(s) predate the quiet-machine check (results schema v1): their speeds "
                     "are used as recorded")
    ok = rows[(rows["status"] == "ok") & clean_speed(rows)]
    others = sorted(set(ok["machine"]) - {timing_cpu})
    if others:
        lines.append(f"- speed columns (samples/s, tokens/s, speed ratio, FLOP/s share, eval speed) are medians "
                     f"over the {int((ok['machine'] == timing_cpu).sum())} ok runs on {timing_cpu} only; the "
                     f"{int(ok['machine'].isin(others).sum())} ok runs on {', '.join(others)} count toward accuracy "
                     "and memory only (speeds from different CPUs are not pooled; a method with no run on "
                     f"{timing_cpu} shows –)")
    return lines


def reproduce_command(grid: str, task: str, budget: str, rows: pd.DataFrame) -> str:
    seeds = ",".join(str(s) for s in sorted({int(s) for s in rows["seed"].dropna()}))
    backbones = sorted(set(rows["backbone"]), key=lambda b: backbone_size(b, 0))
    methods = ranked_methods(rows["method"], layout(rows)[1])
    device = sorted(set(rows["device"]))[0]
    threads = sorted({str(int(t)) for t in rows["threads"].dropna()})
    parts = [f"python -m bench --grid {grid} --task {task} --budget {budget} --seeds {seeds}",
             f"--backbones {','.join(backbones)} --methods {','.join(methods)} --device {device}"]
    if threads:
        parts.append(f"--threads {threads[0]}")
    precision = sorted(set(rows["precision"]))[0]
    if precision != "fp32":
        parts += [f"--set {method}.precision={precision}" for method in methods]
    return " ".join(parts)


def failed_lines(rows: pd.DataFrame) -> list[str]:
    """Each distinct reason runs failed, with the backbones, methods and seeds it hit: a method refused
    on a backbone, or one that diverged, is a finding users should see, not only a count."""
    failed = rows[rows["status"] == "failed"]
    if failed.empty:
        return []
    reasons: dict[str, list[str]] = {}
    for row in failed.sort_values(["backbone", "method", "seed"], kind="stable").itertuples():
        reason = re.sub(r"\s*\(traceback in [^)]*\)$", "", str(row.error or "no error recorded"))
        reasons.setdefault(reason, []).append(f"{row.backbone} {row.method} seed {row.seed}")
    lines = [f"Failed runs ({len(failed)}), by reason:", ""]
    lines += [f"- {reason}: {', '.join(runs)}" for reason, runs in reasons.items()]
    return lines + [""]
