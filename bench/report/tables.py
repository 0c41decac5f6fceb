"""The markdown of a table: the main table, the verdict lines and the precision comparison."""

from __future__ import annotations

import pandas as pd
from tabulate import tabulate

from bench.report.frame import speed_cpu


def _num(value: float, fmt: str, empty: str = "–") -> str:
    return empty if value != value else format(value, fmt)


def count_text(value: float) -> str:
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
            f"{row.backbone} ({count_text(row.backbone_params)})", row.method,
            *([f"{row.chosen} (of {row.tried})" if row.tried > 1 else "–"] if swept else []),
            _accuracy(row), str(row.n_ok),
            "ref" if row.method == ref else _num(100 * row.gap, "+.1f"),
            count_text(row.trainable_params), count_text(row.trainable_excl_head), _num(row.trainable_pct, ".3g"),
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
    to that section's rows and ``aggregate`` table, as ``grid_page`` made them."""
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
                f"({count_text(cheapest.trainable_params)} trainable)")
        text += (f", fastest `{fastest.method}` ({fastest.samples_per_s:.1f} train samples/s)" if fastest is not None
                 else ", fastest: – (no run timed in this table: it takes speeds from quiet runs on one CPU, named "
                      "under Environment)")
        lines.append(text)
    return lines
