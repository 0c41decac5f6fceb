"""From rows to one table per grid, task, budget, device and precision: superseded runs dropped, the
swept settings chosen on ``select``, means and standard deviations over seeds, speeds from one machine."""

from __future__ import annotations

import functools
import json
import sys

import pandas as pd

from bench.backbones import BACKBONES
from bench.report.frame import clean_speed, speed_cpu


def backbone_size(name: str, fallback: float) -> float:
    spec = BACKBONES.get(name)
    return float(spec.approx_params) if spec else float(fallback)


@functools.cache
def _built_in_grid(name: str):
    """The built-in grid ``name``, None for another grid; a broken grid file is said once and treated as unknown
    (it must not break the report)."""
    from bench.config.grid_files import GRIDS
    from bench.config.grids import GridError

    try:
        return GRIDS.get(name)
    except GridError as exc:
        print(f"warning: {exc}; its page shows methods in the order of the rows, with no reference", file=sys.stderr)
        return None


def layout(rows: pd.DataFrame) -> tuple[str, list[str]]:
    """(reference method, method order) for rows of one grid: from the grid's file when the grid is a
    built-in one, else no reference and the order in which methods first appear in the rows."""
    grids = set(rows["grid"])
    known = _built_in_grid(next(iter(grids))) if len(grids) == 1 else None
    if known is None:
        return "", list(dict.fromkeys(rows["method"]))
    return known.reference, list(dict.fromkeys(v.name for v in known.variants))


def ranked_methods(methods, order: list[str]) -> list[str]:
    """``methods`` in ``order``; methods it does not name come after, by name."""
    return sorted(set(methods), key=lambda m: (order.index(m) if m in order else len(order), m))


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
    ranked = ranked_methods(table["method"], order)
    table["method_rank"] = table["method"].map(ranked.index)
    table = table.sort_values(["size", "backbone", "method_rank"], kind="stable").reset_index(drop=True)
    table["reference"] = reference_method
    reference = table[table["method"] == reference_method].set_index("backbone")
    table["gap"] = [row.acc_mean - reference["acc_mean"].get(row.backbone, float("nan"))
                    for row in table.itertuples()]
    table["speed_ratio"] = [row.samples_per_s / reference["samples_per_s"].get(row.backbone, float("nan"))
                            for row in table.itertuples()]
    return table.drop(columns=["method_rank"])


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
