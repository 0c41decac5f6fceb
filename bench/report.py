"""Reports: markdown tables and PNG plots regenerated from every CSV under ``results/``.

``write_reports(results_dir, out_dir)`` renders ``README.md`` (the index, with published reference
points kept apart from our numbers) and one page per grid and task, each with one table per budget and
device, notes on how the numbers were made, and plots. The output depends on the rows alone (no
rendering timestamps, stable orders, fixed float formats, PNGs without metadata), so the same results
give byte-identical reports. ``check_reports`` renders into a temporary folder and compares, for CI.

Writing never removes or overwrites a file the harness did not write. Everything is rendered into a
fresh temporary folder first (a new ``out_dir`` is then renamed into place whole); ``out_dir/.generated``
lists the files the harness wrote there. Files it listed that are no longer generated are removed,
listed ones are replaced (each with an atomic ``os.replace``; on any error the ones already replaced
are put back), and a new file that would overwrite an unlisted one is refused before anything changes.
The installing is ``bench.report_install``'s job. A missing results folder, one without CSVs, or one whose
CSVs hold no valid row (empty, header-only, damaged throughout) is refused too, so a typo in
``--results-dir`` cannot replace the reports with an empty set.

Aggregation: of rows sharing a ``run_id`` (a ``--rerun``) only the last counts; runs with
``status == ok`` make the means (mean ± sample std over seeds, medians for
speed); collapsed and failed runs are counted in their own column and flagged, never averaged in.
Speeds measured on different CPUs are never pooled: each table takes its speed columns from the runs
on one CPU (the one with the most ok runs in it, see ``speed_cpu``); runs on other CPUs count toward
accuracy only, and the page says so. Speeds measured while other processes used the cores
(``speed_clean == false``) are left out of the speed columns too.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import tempfile
from pathlib import Path

import pandas as pd
from filelock import FileLock
from tabulate import tabulate

from bench.backbones import BACKBONES
from bench.record.provenance import machine_of
from bench.record.store import read_rows
from bench.report_history import render_history
from bench.report_install import (
    MANIFEST,
    ReportError,
    create,
    manifest_text,
    os_reason,
    previously_generated,
    update,
)
from bench.rows import as_frame, clean_speed, speed_cpu

PLOTS = ["acc-vs-size", "acc-vs-trainable", "throughput"]  # the suffixes of the PNGs made by ``_plots``

PUBLISHED = [
    ("distilbert-base-uncased", "finetune, 10 ep, lr 5e-5, bs 32", "SST-2 dev", "88.42 (771/872)",
     "fastNLP tutorial E1"),
    ("distilbert-base-uncased", "prompt, P=20, lr 1e-2, 10 ep, head frozen", "SST-2 dev", "73.74 (643/872)",
     "fastNLP tutorial E2"),
    ("distilbert-base-uncased", "finetune", "SST-2 dev", "91.3", "DistilBERT model card"),
    ("bert-base-uncased", "finetune", "SST-2 dev", "92.7", "DistilBERT model card"),
    ("MiniLM-L12-H384", "finetune", "SST-2 dev", "93.0", "MiniLM model card"),
    ("BERT tiny / mini / small / medium", "finetune", "SST-2 GLUE test", "83.2 / 85.9 / 89.7 / 89.6",
     "google-research/bert README (Turc et al.)"),
    ("roberta-large", "prompt, 0.003% trainable", "SST-2", "95.3 ± 0.2", "Delta-tuning (Ding et al. 2023), tab. 2"),
    ("roberta-large", "adapter / BitFit", "SST-2", "95.8 / 95.6", "same table"),
]


# --- loading ------------------------------------------------------------------------------------
def load_results(results_dir: Path) -> pd.DataFrame:
    """Every row of every ``*.csv`` under ``results_dir`` (files in name order), as ``bench.rows.as_frame``."""
    return as_frame([row for path in sorted(Path(results_dir).glob("**/*.csv")) for row in read_rows(path)])


def backbone_size(name: str, fallback: float) -> float:
    spec = BACKBONES.get(name)
    return float(spec.approx_params) if spec else float(fallback)


def layout(rows: pd.DataFrame) -> tuple[str, list[str]]:
    """(reference method, method order) for rows of one grid: from the grid's file when the grid is a
    built-in one, else no reference and the order in which methods first appear in the rows."""
    from bench.grid_files import GRIDS

    grids = set(rows["grid"])
    known = GRIDS.get(next(iter(grids))) if len(grids) == 1 else None
    if known is None:
        return "", list(dict.fromkeys(rows["method"]))
    return known.reference, list(dict.fromkeys(v.name for v in known.variants))


def _ranked(methods, order: list[str]) -> list[str]:
    """``methods`` in ``order``; methods it does not name come after, by name."""
    return sorted(set(methods), key=lambda m: (order.index(m) if m in order else len(order), m))


# --- aggregation --------------------------------------------------------------------------------
def choose_on_select(group: pd.DataFrame) -> tuple[pd.DataFrame, str, int]:
    """A sweep's winner: of the settings combinations (distinct ``hparams``) in one backbone's and method's
    rows, the one with the best mean ``select`` accuracy over its ok seeds (ties: the first in sorted
    order). ``eval`` never takes part. Returns its rows, the winning values of the settings that vary
    (empty when nothing was swept) and the number of combinations tried."""
    combinations = sorted(set(group["hparams"]))
    if len(combinations) < 2:
        return group, "", len(combinations)
    ok = group[group["status"] == "ok"]
    scores = ok.groupby("hparams")["acc_select"].mean()
    winner = max(combinations, key=lambda h: (scores.get(h, float("-inf")), -combinations.index(h)))
    values = [json.loads(h) if h else {} for h in combinations]
    varied = sorted(k for k in set().union(*values) if len({json.dumps(v.get(k)) for v in values}) > 1)
    won = json.loads(winner) if winner else {}

    def shown(key: str) -> str:  # a winner at the end of a numeric range says so: the range may be too narrow
        tried = [v.get(key) for v in values if isinstance(v.get(key), (int, float))]
        at_edge = len(tried) > 2 and won.get(key) in (min(tried), max(tried))
        where = "" if not at_edge else " (lowest tried)" if won.get(key) == min(tried) else " (highest tried)"
        return f"{key}={won.get(key)}{where}"

    return group[group["hparams"] == winner], ", ".join(shown(k) for k in varied), len(combinations)


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (backbone, method): accuracy over ok seeds, counts of collapsed/failed runs,
    sizes, median speed over the ok runs on ``speed_cpu(rows)``, and the gap and speed ratio to the
    grid's reference method on the same backbone (``layout``; none when the grid names none)."""
    reference_method, order = layout(rows)
    lines = []
    timing_cpu = speed_cpu(rows)
    for (backbone, method), group in rows.groupby(["backbone", "method"], sort=False):
        group, chosen, tried = choose_on_select(group)
        ok = group[group["status"] == "ok"]
        timed = ok[(ok["machine"] == timing_cpu) & clean_speed(ok)]
        # FLOP/s as a share of the matmul peak measured in the same process, per run, then the median
        utilisation = (timed["train_flops_per_s"] / timed["matmul_peak_flops_per_s"].where(
            timed["matmul_peak_flops_per_s"] > 0)).median()
        sized = group.dropna(subset=["total_params"])
        total = sized["total_params"].iloc[0] if len(sized) else float("nan")
        # the backbone's own size: its smallest total over methods (prompt/prefix add their vectors)
        own = rows[(rows["backbone"] == backbone)]["total_params"].min()
        lines.append({
            "backbone": backbone, "method": method,
            "size": backbone_size(backbone, total if total == total else 0),
            "total_params": total, "backbone_params": own,
            "trainable_params": sized["trainable_params"].iloc[0] if len(sized) else float("nan"),
            "trainable_excl_head": sized["trainable_params_excl_head"].iloc[0] if len(sized) else float("nan"),
            "trainable_pct": sized["trainable_pct"].iloc[0] if len(sized) else float("nan"),
            "acc_mean": ok["acc"].mean(), "acc_std": ok["acc"].std(ddof=1) if len(ok) > 1 else float("nan"),
            "acc_last_mean": ok["acc_last"].mean(),
            "n_ok": len(ok), "n_collapsed": int((group["status"] == "collapsed").sum()),
            "n_failed": int((group["status"] == "failed").sum()),
            "majority_rate": group["majority_rate"].dropna().max(),
            "n_timed": len(timed),
            "samples_per_s": timed["train_samples_per_s"].median(),
            "tokens_per_s": timed["train_tokens_per_s"].median(),
            "utilisation": utilisation,
            "eval_samples_per_s": timed["eval_samples_per_s"].median(),
            "peak_mem_mb": ok["peak_mem_mb"].median(),
            "seeds": sorted(int(s) for s in ok["seed"].dropna()),
            "chosen": chosen, "tried": tried,
        })
    table = pd.DataFrame(lines)
    if table.empty:
        return table
    ranked = _ranked(table["method"], order)
    table["method_rank"] = table["method"].map(ranked.index)
    table = table.sort_values(["size", "backbone", "method_rank"], kind="stable").reset_index(drop=True)
    table["reference"] = reference_method
    reference = table[table["method"] == reference_method].set_index("backbone")
    table["gap"] = [row.acc_mean - reference["acc_mean"].get(row.backbone, float("nan"))
                    for row in table.itertuples()]
    table["speed_ratio"] = [row.samples_per_s / reference["samples_per_s"].get(row.backbone, float("nan"))
                            for row in table.itertuples()]
    return table.drop(columns=["method_rank"])


# --- formatting ---------------------------------------------------------------------------------
def _num(value: float, fmt: str, empty: str = "–") -> str:
    return empty if value != value else format(value, fmt)


def _count(value: float) -> str:
    if value != value:
        return "–"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{int(value)}"


def _accuracy(row) -> str:
    if row.n_ok == 0:
        return "–"
    spread = "" if row.acc_std != row.acc_std else f" ± {100 * row.acc_std:.1f}"
    return f"{100 * row.acc_mean:.1f}{spread}"


def _flags(row) -> str:
    flags = []
    if row.n_collapsed:
        flags.append(f"⚠ {row.n_collapsed} collapsed")
    if row.n_failed:
        flags.append(f"✗ {row.n_failed} failed")
    return ", ".join(flags)


def main_table(table: pd.DataFrame) -> str:
    """The comparison table as markdown (tabulate, pipe format)."""
    swept = bool((table["tried"] > 1).any())
    ref = table["reference"].iloc[0] if len(table) else ""
    headers = ["backbone", "method"] + (["chosen on select (of tried)"] if swept else []) + [
               "acc % ↑ (mean ± std)", "seeds", f"Δ vs {ref or 'a reference'} (pts) ↑",
               "trainable ↓ (+head)", "trainable excl. head ↓", "trainable % ↓", "train samples/s ↑",
               "train tokens/s ↑", f"speed × {ref or 'a reference'} ↑", "FLOP/s % of matmul peak ↑", "peak mem MB ↓",
               "not averaged"]
    body = []
    for row in table.itertuples():
        body.append([
            f"{row.backbone} ({_count(row.backbone_params)})", row.method,
            *([f"{row.chosen} (of {row.tried})" if row.tried > 1 else "–"] if swept else []),
            _accuracy(row), str(row.n_ok),
            "ref" if row.method == ref else _num(100 * row.gap, "+.1f"),
            _count(row.trainable_params), _count(row.trainable_excl_head), _num(row.trainable_pct, ".3g"),
            _num(row.samples_per_s, ".1f"), _num(row.tokens_per_s, ",.0f"),
            "ref" if row.method == ref else _num(row.speed_ratio, ".2f"),
            _num(100 * row.utilisation, ".0f"), _num(row.peak_mem_mb, ",.0f"), _flags(row),
        ])
    return tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True)


def precision_lines(sections: dict[tuple[str, str, str], tuple[pd.DataFrame, pd.DataFrame]]) -> list[str]:
    """Where one budget and device have rows in fp32 and in another precision: per backbone and method,
    both accuracies over seeds, the difference, whether it is within seed noise (at most twice the larger
    of the two standard deviations, the page's rule for ties) and the training speed ratio (medians of
    the quiet runs of each, so across runs, not paired). ``sections`` maps (budget, device, precision)
    to that section's rows and ``aggregate`` table, as ``_page`` made them."""
    lines = []
    for (budget, device, precision), (rows_here, table) in sections.items():
        if precision == "fp32" or (budget, device, "fp32") not in sections:
            continue
        fp32_rows, fp32_table = sections[(budget, device, "fp32")]
        base = fp32_table.set_index(["backbone", "method"])
        # a speed ratio only between speeds measured on the same machine
        same_machine = speed_cpu(fp32_rows) == speed_cpu(rows_here)
        body = []
        for row in table.itertuples():
            if (row.backbone, row.method) not in base.index or row.n_ok == 0:
                continue
            ref = base.loc[(row.backbone, row.method)]
            diff = row.acc_mean - ref.acc_mean
            noise = 2 * max(v for v in (row.acc_std, ref.acc_std, 0.0) if v == v)
            verdict = ("no fp32 runs" if ref.n_ok == 0 else "one seed: no noise estimate" if noise == 0
                       else "within seed noise" if abs(diff) <= noise
                       else f"{precision} {'better' if diff > 0 else 'worse'} beyond seed noise")
            body.append([row.backbone, row.method, _accuracy(ref), _accuracy(row), _num(100 * diff, "+.1f"),
                         verdict, _num(row.samples_per_s / ref.samples_per_s, ".2f") if same_machine
                         else "– (timed on different CPUs)",
                         f"{int(ref.n_timed)} / {int(row.n_timed)}"])
        if body:
            lines += [f"## `{precision}` against `fp32`, budget `{budget}` on `{device}`", "",
                      tabulate(body, headers=["backbone", "method", "fp32 acc %", f"{precision} acc %",
                                              "Δ (pts)", "verdict", f"train speed {precision} / fp32",
                                              "quiet runs timed (fp32 / " + precision + ")"],
                               tablefmt="pipe", disable_numparse=True), "",
                      "The speed ratio divides medians of separate runs; docs/findings.md (bf16) gives the paired "
                      "step-time ratios measured within one process (`python -m benchmarks.precision`).", ""]
    return lines


def verdicts(table: pd.DataFrame) -> list[str]:
    """One line per backbone: the most accurate method, and among the methods within one standard
    deviation of it (its own std over seeds), the cheapest (fewest trainable parameters) and the fastest."""
    lines = []
    for backbone, part in table[table["n_ok"] > 0].groupby("backbone", sort=False):
        best = part.sort_values("acc_mean", ascending=False, kind="stable").iloc[0]
        spread = 0.0 if best.acc_std != best.acc_std else best.acc_std
        close = part[part["acc_mean"] >= best.acc_mean - spread]
        cheapest = close.sort_values("trainable_params", kind="stable").iloc[0]
        timed = close.dropna(subset=["samples_per_s"])
        fastest = timed.sort_values("samples_per_s", ascending=False, kind="stable").iloc[0] if len(timed) else None
        text = (f"- **{backbone}**: most accurate `{best.method}` ({_accuracy(best)} %); within one std of it "
                f"(≥ {100 * (best.acc_mean - spread):.1f} %): cheapest `{cheapest.method}` "
                f"({_count(cheapest.trainable_params)} trainable)")
        text += (f", fastest `{fastest.method}` ({fastest.samples_per_s:.1f} train samples/s)" if fastest is not None
                 else ", fastest: – (no run timed in this table: it takes speeds from quiet runs on one CPU, named "
                      "under Environment)")
        lines.append(text)
    return lines


def _hparams_lines(rows: pd.DataFrame) -> list[str]:
    lines = []
    ranked = _ranked(rows["method"], layout(rows)[1])
    for method, group in sorted(rows.groupby("method"), key=lambda item: ranked.index(item[0])):
        for text in sorted(set(group["hparams"])):
            values = json.loads(text) if text else {}
            shown = ", ".join(f"{k}={values[k]}" for k in sorted(values))
            lines.append(f"- `{method}`: {shown}")
    return lines


def _environment_lines(rows: pd.DataFrame) -> list[str]:
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


def _reproduce(grid: str, task: str, budget: str, rows: pd.DataFrame) -> str:
    seeds = ",".join(str(s) for s in sorted({int(s) for s in rows["seed"].dropna()}))
    backbones = sorted(set(rows["backbone"]), key=lambda b: backbone_size(b, 0))
    methods = _ranked(rows["method"], layout(rows)[1])
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


# --- plots ---------------------------------------------------------------------------------------
def speed_source(rows: pd.DataFrame) -> tuple[str, str]:
    """Where a page section's speeds come from, for the throughput plot: ("CPU, N threads", a note on the
    ok runs left out because they ran on other CPUs, or "" when none); ("", "") when no speed was measured
    on a quiet machine. The CPU is ``speed_cpu(rows)``, the one ``aggregate`` takes its speeds from."""
    cpu = speed_cpu(rows)
    if cpu is None:
        return "", ""
    ok = rows[(rows["status"] == "ok") & clean_speed(rows)]
    threads = sorted({int(t) for t in ok[ok["machine"] == cpu]["threads"].dropna()})
    source = cpu + (f", {'/'.join(str(t) for t in threads)} thread{'' if threads == [1] else 's'}" if threads else "")
    others = ok[ok["machine"] != cpu]
    note = (f"{len(others)} ok run(s) on {', '.join(sorted(set(others['machine'])))} left out (speeds of different "
            "CPUs are not pooled)") if len(others) else ""
    return source, note


def _spread(values: list[float], gap: float) -> list[float]:
    """``values`` moved apart as little as possible so that sorted neighbours are at least ``gap`` apart
    (for text labels that would otherwise overlap); same order as given."""
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    blocks: list[list[int]] = []  # runs of labels that touch, each placed centred on its own mean
    for i in order:
        blocks.append([i])
        while len(blocks) > 1:
            low, high = blocks[-2], blocks[-1]
            top = sum(values[j] for j in low) / len(low) + gap * (len(low) - 1) / 2
            bottom = sum(values[j] for j in high) / len(high) - gap * (len(high) - 1) / 2
            if bottom - top >= gap:
                break
            blocks[-2:] = [low + high]
    placed = list(values)
    for block in blocks:
        centre = sum(values[j] for j in block) / len(block)
        for k, j in enumerate(block):
            placed[j] = centre + gap * (k - (len(block) - 1) / 2)
    return placed


def accuracy_limits(table: pd.DataFrame) -> tuple[float, float]:
    """The accuracy axis (in %) of the plots: from the lowest mean − std to the highest mean + std over the
    methods with ok runs, with a margin of 8 % of that range (at least half a point). Never forced down to
    50 % or any other fixed floor; the majority-class line is drawn only when it falls inside."""
    ok = table[table["n_ok"] > 0]
    if ok.empty:
        return 0.0, 100.0
    mean, std = 100 * ok["acc_mean"], 100 * ok["acc_std"].fillna(0)
    low, high = float((mean - std).min()), float((mean + std).max())
    margin = max(0.08 * (high - low), 0.5)
    return low - margin, high + margin


def _log_limits(values, left: float = 0.08, right: float = 0.08) -> tuple[float, float]:
    """Limits of a log axis around positive ``values``: padded by ``left`` / ``right`` of the span in decades
    (a span of at least 0.3 decades, so that one value alone is not squeezed)."""
    import math

    logs = [math.log10(v) for v in values if v == v and v > 0]
    if not logs:
        return 1.0, 10.0
    low, high = min(logs), max(logs)
    span = max(high - low, 0.3)
    middle = (low + high) / 2
    low, high = min(low, middle - span / 2), max(high, middle + span / 2)
    return 10 ** (low - left * span), 10 ** (high + right * span)


def figures(table: pd.DataFrame, title: str, speeds: tuple[str, str] = ("", "")) -> dict[str, object]:
    """The three plots of one table (``aggregate``'s), as matplotlib figures keyed by their suffix in
    ``PLOTS``; ``speeds`` is ``speed_source`` of the table's rows (the CPU the throughput comes from)."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    plt.rcParams.update({"font.size": 9, "svg.hashsalt": "bench"})
    measured = set(table[table["n_ok"] > 0]["backbone"])  # a backbone where every run failed has nothing to plot
    table = table[table["backbone"].isin(measured)]
    if table.empty:
        return {}
    methods = list(dict.fromkeys(table["method"]))  # the table's own order
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    markers = dict(zip(methods, "osD^vP*X" * 4, strict=False))
    backbones = list(dict.fromkeys(table["backbone"]))  # smallest first (aggregate's order)
    sizes = {b: table[table["backbone"] == b]["backbone_params"].min() for b in backbones}
    ok = table[table["n_ok"] > 0]
    low, high = accuracy_limits(table)
    majority = table["majority_rate"].dropna()
    majority = 100 * float(majority.max()) if len(majority) else None
    single = bool((ok["n_ok"] == 1).any())
    spread_note = "mean ± std over seeds" + (" (no bar: one seed)" if single else "")
    out: dict[str, object] = {}

    def finish_accuracy(ax, what: str) -> None:
        ax.set_ylim(low, high)
        ax.set_ylabel(f"eval accuracy (%)\n{spread_note}")
        ax.set_title(f"{title}: eval accuracy vs {what}")
        ax.grid(alpha=0.3)
        handles = [Line2D([], [], color=colours[m], marker=markers[m], linestyle="none", label=m)
                   for m in methods if m in set(ok["method"])]
        if majority is not None:
            inside = low <= majority <= high
            if inside:
                ax.axhline(majority, color="grey", linestyle=":", zorder=0)
            where = "" if inside else " (below the axis)" if majority < low else " (above the axis)"
            handles.append(Line2D([], [], color="grey", linestyle=":",
                                  label=f"majority class\n{majority:.1f} %{where}"))
        ax.legend(handles=handles, title="method", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, fontsize=8, title_fontsize=8, frameon=False)

    # accuracy vs backbone size: x ticks name the backbones, methods side by side at each size
    fig, ax = plt.subplots(figsize=(7.4, 4.4))
    ax.set_xscale("log")
    xmin, xmax = _log_limits([sizes[b] / 1e6 for b in backbones])
    span = math.log10(xmax / xmin)
    for i, method in enumerate(methods):
        part = ok[ok["method"] == method]
        if part.empty:
            continue
        shift = 10 ** (0.025 * span * (i - (len(methods) - 1) / 2))  # a small dodge so error bars do not overlap
        ax.errorbar(part["backbone_params"] / 1e6 * shift, 100 * part["acc_mean"],
                    yerr=100 * part["acc_std"].fillna(0), color=colours[method], marker=markers[method],
                    capsize=3, linestyle="-", linewidth=1.2, markersize=6)
    ax.set_xlim(xmin, xmax)
    ticks: dict[str, list[str]] = {}  # backbones of the same size (to 0.1M) share one tick that names them all
    for backbone in backbones:
        ticks.setdefault(f"{sizes[backbone] / 1e6:.1f}", []).append(backbone)
    ax.xaxis.set_major_locator(FixedLocator([float(size) for size in ticks]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, pos: " / ".join(ticks.get(f"{v:.1f}", [])) + f" ({v:.1f}M)"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", labelsize=8, labelrotation=25)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
        label.set_rotation_mode("anchor")
    ax.set_xlabel("backbone (total parameters, millions, log scale)")
    finish_accuracy(ax, "backbone size")
    out["acc-vs-size"] = fig

    # accuracy vs trainable parameters: each point labelled with its backbone
    fig, ax = plt.subplots(figsize=(7.4, 4.4))
    ax.set_xscale("log")
    xmin, xmax = _log_limits(ok["trainable_params"], left=0.06, right=0.28)  # room for the labels on the right
    span = math.log10(xmax / xmin)
    for method in methods:
        part = ok[ok["method"] == method]
        if not part.empty:
            ax.errorbar(part["trainable_params"], 100 * part["acc_mean"], yerr=100 * part["acc_std"].fillna(0),
                        color=colours[method], marker=markers[method], capsize=3, linestyle="none", markersize=6)
    points = [(math.log10(r.trainable_params), 100 * r.acc_mean, r.backbone, r.method) for r in ok.itertuples()
              if r.trainable_params == r.trainable_params and r.trainable_params > 0]
    points.sort(key=lambda p: (p[0], p[1]))
    groups: list[list[tuple]] = []  # labels whose x ranges overlap (within 0.2 of the axis span) share a column
    for point in points:
        if groups and point[0] - groups[-1][-1][0] < 0.2 * span:
            groups[-1].append(point)
        else:
            groups.append([point])
    for group in groups:
        placed = _spread([p[1] for p in group], 0.055 * (high - low))
        for (logx, y, backbone, method), y_text in zip(group, placed, strict=True):
            ax.annotate(backbone, xy=(10 ** logx, y), xytext=(10 ** (logx + 0.025 * span), y_text),
                        fontsize=7.5, va="center", ha="left", color=colours[method],
                        arrowprops=None if abs(y_text - y) < 1e-9 else
                        {"arrowstyle": "-", "color": colours[method], "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3})
    ax.set_xlim(xmin, xmax)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _count(v)))  # 10K, 1M rather than 10^4, 10^6
    # under ~1.5 decades there are too few powers of ten: label 2x, 3x, 5x too, and under 0.6 every minor tick
    minor = "" if span >= 1.5 else "235" if span >= 0.6 else "123456789"
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: _count(v) if f"{v:.0e}"[0] in minor else ""))
    ax.tick_params(axis="x", which="both", labelsize=8)
    ax.set_xlabel("trainable parameters incl. classification head (log scale)")
    finish_accuracy(ax, "trainable parameters")
    out["acc-vs-trainable"] = fig

    # throughput: one panel per backbone, each with its own linear axis from zero, the value on every bar
    cpu, left_out = speeds
    fig, axes = plt.subplots(1, max(len(backbones), 1), figsize=(max(4.4, 2.5 * len(backbones) + 0.9), 4.2),
                             squeeze=False)
    fewer = False
    for ax, backbone in zip(axes[0], backbones, strict=False):
        part = table[table["backbone"] == backbone]
        names = list(part["method"])
        values = [float(v) for v in part["samples_per_s"]]
        heights = [0.0 if v != v else v for v in values]
        bars = ax.bar(range(len(names)), heights, width=0.7, color=[colours[m] for m in names])
        labels = []
        top = max([h for h in heights if h > 0], default=1.0)
        for i, (row, value) in enumerate(zip(part.itertuples(), values, strict=True)):
            if value != value:  # upright, so that neighbouring untimed bars do not overprint each other
                labels.append("")
                ax.text(i, top * 0.03, "not timed", rotation=90, ha="center", va="bottom", fontsize=8, color="dimgrey")
            else:
                fewer = fewer or row.n_timed < row.n_ok
                labels.append(f"{value:.1f}" + (f"\n(n={row.n_timed})" if row.n_timed < row.n_ok else ""))
        ax.bar_label(bars, labels=labels, padding=2, fontsize=8)
        ax.set_ylim(0, top * 1.22)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(f"{backbone} ({sizes[backbone] / 1e6:.1f}M params)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("training throughput (samples/s)\nmedian over seeds")
    heading = f"{title}: training throughput on {cpu}" if cpu else f"{title}: training throughput (no speed " \
        "measured on a quiet machine)"
    notes = ["each panel has its own scale"] if len(backbones) > 1 else []
    if fewer:
        notes.append("(n=…): the median is over fewer runs than seeds")
    if left_out:
        notes.append(left_out)
    fig.suptitle("\n".join([heading] + notes), fontsize=9)
    out["throughput"] = fig
    return out


def _plots(table: pd.DataFrame, stem: Path, title: str, speeds: tuple[str, str] = ("", "")) -> list[str]:
    """The ``figures`` as PNGs next to the page (no metadata, so they re-render byte-identically);
    returns their file names."""
    import matplotlib.pyplot as plt

    names = []
    for suffix, fig in figures(table, title, speeds).items():
        name = f"{stem.name}-{suffix}.png"
        fig.tight_layout()
        fig.savefig(stem.parent / name, dpi=110, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
        plt.close(fig)
        names.append(name)
    return names


# --- pages ---------------------------------------------------------------------------------------
def _slug(*parts: str) -> str:
    return "-".join("".join(c if c.isalnum() or c in "-_" else "_" for c in p) for p in parts)


def _failed_lines(rows: pd.DataFrame) -> list[str]:
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


def _page(grid: str, task: str, rows: pd.DataFrame, out_dir: Path) -> tuple[str, list[str]]:
    lines = [f"# Grid `{grid}` on task `{task}`", "",
             "Generated by `python -m bench report` from `results/`; do not edit by hand. "
             "Accuracy is on the `eval` split with the epoch chosen on `select`; ↑ / ↓ mark the better "
             "direction. ± is the sample standard deviation over seeds (n − 1); with 3 seeds it is itself "
             "rough, so read gaps smaller than about twice it as ties. Speeds are medians over seeds on one CPU. "
             "Only runs with status `ok` are averaged; collapsed (one predicted class) and "
             "failed runs are counted in the last column.", ""]
    summary = []
    tables = {}
    for (budget, device, precision), part in rows.groupby(["budget", "device", "precision"], sort=True):
        table = aggregate(part)
        tables[(budget, device, precision)] = (part, table)
        in_precision = "" if precision == "fp32" else f" in `{precision}`"
        slug = _slug(grid, task, budget, device, *([] if precision == "fp32" else [precision]))
        lines += [f"## Budget `{budget}` on `{device}`{in_precision}", "", *verdicts(table), "", main_table(table), ""]
        lines += _failed_lines(part)
        if (table["tried"] > 1).any():
            lines += ["Swept settings: for each backbone and method, the combination with the best mean `select` "
                      "accuracy over its ok seeds was chosen (`eval` takes no part in the choice); the row reports "
                      "that combination's `eval` accuracy, speed and size. A winner at the end of the range it was "
                      "chosen from is marked (lowest / highest tried): the best value may lie beyond it. All "
                      "combinations tried are listed under the hyper-parameters below.", ""]
        if task == "mr":
            lines.append("Task: MR (Rotten Tomatoes sentences, 6,464 train / 1,000 select / 1,066 eval); "
                         "SST-2 could not be loaded offline, so these are not SST-2 numbers.")
        sentence = [b for b in dict.fromkeys(table["backbone"]) if b in BACKBONES and BACKBONES[b].sentence_embedding]
        if sentence:
            lines.append(f"Backbones {', '.join(sentence)} are sentence-embedding fine-tunes (sentence-"
                         "transformers), not raw MLM checkpoints. Every method classifies from the mean "
                         "of the sentence's token states (no pooler).")
        n_train = sorted({int(v) for v in part["n_train"].dropna()})
        lines += ["", "Data per run: " + f"train {', '.join(f'{n:,}' for n in n_train) or '–'}, "
                  f"select {', '.join(sorted({f'{int(v):,}' for v in part['n_select'].dropna()})) or '–'}, "
                  f"eval {', '.join(sorted({f'{int(v):,}' for v in part['n_eval'].dropna()})) or '–'}.", "",
                  "Hyper-parameters used:", ""] + _hparams_lines(part)
        lines += ["", "Environment:", ""] + _environment_lines(part)
        lines += ["", "Reproduce:", "", "```", _reproduce(grid, task, budget, part), "```", ""]
        pngs = _plots(table, out_dir / slug, f"{grid}/{task}/{budget}", speed_source(part))
        lines += [f"![{name}]({name})" for name in pngs] + [""]
        summary.append((budget, device + ("" if precision == "fp32" else f"/{precision}"), table))
    lines += precision_lines(tables)
    name = f"{_slug(grid, task)}.md"
    (out_dir / name).write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    best = []
    for budget, device, table in summary:
        ok = table[table["n_ok"] > 0]
        if not ok.empty:
            top = ok.sort_values(["acc_mean", "method"], ascending=[False, True], kind="stable").iloc[0]
            best.append(f"{budget}/{device}: best {top['method']} on {top['backbone']} "
                        f"({100 * top['acc_mean']:.1f}%), {int(table['n_ok'].sum())} ok runs")
    return name, best


def _render(rows: pd.DataFrame, dest: Path) -> list[str]:
    """Write every report file and the manifest into the empty folder ``dest``; returns their names, sorted."""
    index = ["# Reports", "",
             "Regenerated from every CSV under `results/` by `python -m bench report` (CI checks that this "
             "folder matches). One page per grid and task:", ""]
    if rows.empty:
        index.append("No results yet: run `python -m bench --grid sizes`.")
    for (grid, task), part in rows.groupby(["grid", "task"], sort=True):
        name, best = _page(grid, task, part, dest)
        index.append(f"- [{grid} / {task}]({name}): " + ("; ".join(best) or "no successful runs"))
    index += [line for line in [render_history(dest)[1]] if line]
    index += ["", "## Published reference points (other people's numbers, other data and setups)", "",
              "Never mixed into our tables: different backbones, SST-2 rather than MR, different protocols "
              "(most pick the best epoch on the split they report).", "",
              tabulate(PUBLISHED, headers=["backbone", "method", "data", "accuracy %", "source"],
                       tablefmt="pipe", disable_numparse=True), ""]
    (dest / "README.md").write_text("\n".join(index), encoding="utf-8")
    names = sorted(p.name for p in dest.iterdir())
    (dest / MANIFEST).write_text(manifest_text(names), encoding="utf-8")
    return sorted(names + [MANIFEST])


def _load_checked(results_dir: Path) -> pd.DataFrame:
    """``load_results``, refusing a results folder that is missing, holds no CSV or no valid row (a typo in
    ``--results-dir`` must not turn into an empty report that replaces the real ones)."""
    results_dir = Path(results_dir)
    hint = "pass --results-dir with the folder holding the results CSVs"
    if not results_dir.exists():
        raise ReportError(f"results folder '{results_dir}' does not exist; {hint}")
    if not results_dir.is_dir():
        raise ReportError(f"results folder '{results_dir}' is not a folder; {hint}")
    if not any(results_dir.glob("**/*.csv")):
        raise ReportError(f"results folder '{results_dir}' holds no *.csv files, and an empty report would "
                          f"replace the existing one; {hint}")
    rows = load_results(results_dir)
    if rows.empty:
        raise ReportError(f"results folder '{results_dir}' holds no valid row (its CSVs are empty, header-only or "
                          f"damaged throughout), and an empty report would replace the existing one; nothing was "
                          f"changed; {hint}")
    return rows


def write_reports(results_dir: Path, out_dir: Path) -> list[Path]:
    """Render the reports into a temporary folder and swap them into ``out_dir``; returns the files written.

    Raises ``ReportError`` (one line) for a missing results folder, one without a valid row, a file in ``out_dir`` that
    the harness did not write but would overwrite, or an OS error (``out_dir`` is then left as it was)."""
    rows = _load_checked(results_dir)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"reports folder '{out_dir}' is a file; pass --out with a folder")

    def render(dest: Path) -> list[str]:
        return _render(rows, dest)

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        lock = out_dir.parent / f".{out_dir.name}.lock"
        lock.touch()  # filelock waits forever on a lock file it cannot create: fail here instead
        with FileLock(str(lock)):  # two `report`s at once take turns
            names = update(render, out_dir, PLOTS) if out_dir.is_dir() else create(render, out_dir)
    except OSError as exc:
        raise ReportError(f"cannot write reports into '{out_dir}': {os_reason(exc)}; it was left as it "
                          "was") from None
    return [out_dir / name for name in names]


def check_reports(results_dir: Path, out_dir: Path) -> int:
    """0 when every file ``write_reports`` makes from ``results_dir`` (the manifest included) is in
    ``out_dir`` with the same bytes and no file the manifest lists is left over; else 1, with those files.
    Other files in ``out_dir`` are not the harness's and are ignored."""
    rows = _load_checked(results_dir)
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        names = _render(rows, fresh)
        differ = [n for n in names if not (out_dir / n).is_file()
                  or not filecmp.cmp(out_dir / n, fresh / n, shallow=False)]
    listed = previously_generated(out_dir, PLOTS)[0] if (out_dir / MANIFEST).is_file() else set()
    differ += [f"{n} (stale)" for n in sorted(listed - set(names)) if os.path.lexists(out_dir / n)]
    if differ:
        print(f"{out_dir} is out of date for: {', '.join(differ)}; run: python -m bench report")
        return 1
    print(f"{out_dir} matches {results_dir}")
    return 0
