"""Performance and accuracy regression check against ``benchmarks/baseline.json``.

    python -m benchmarks.check              # whole loop + accuracy guard; exit 1 on a regression
    python -m benchmarks.check --steps      # also the step-level suite, to locate a regression
    python -m benchmarks.check --record     # also append the ratios with the commit to history.csv
    python -m benchmarks.check --update     # re-measure this platform's baseline (commit it on purpose)

Speed: for every registered method, a training epoch and an evaluation pass through the real harness,
each divided by a plain PyTorch loop over the same batches measured beside it (``benchmarks.loop``),
``--repeats`` times. A workload is a SPEED regression when its median ratio grew past its phase's
``FACTORS`` entry (past ``CROSS_FACTOR`` when the baseline was measured on another CPU) and a one-sided
Mann-Whitney U test puts p below ``ALPHA`` (``benchmarks.verdict``). The factors come from the noise
measured on unchanged trees (docs/regression-tracking.md): the evaluation pass is short and noisier.

Accuracy: the ``smoke`` grid (seeded, 1 thread) must reproduce the baseline's accuracy and last-epoch
training loss exactly on the same platform (same torch, CPU model and flags, Python), and within
``ACC_TOLERANCE`` / ``LOSS_TOLERANCE`` elsewhere. Its problems are labelled ACCURACY.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import baseline as baseline_file
from benchmarks.verdict import judge

ROOT = Path(__file__).resolve().parent.parent
# same CPU: how much a median ratio may grow, per phase (from the noise measured: README, "Regression tracking")
FACTORS = {"train": 1.20, "eval": 1.30}
CROSS_FACTOR = 1.5  # baseline from another CPU: ratios shift between CPUs, so only a large change counts
ALPHA = 0.01  # one-sided Mann-Whitney U
STEP_TOLERANCE = 0.35  # step-level ratios (diagnostic, --steps) may grow by 35%
ACC_TOLERANCE = 0.03  # off-platform accuracy tolerance (absolute)
LOSS_TOLERANCE = 0.10  # off-platform last-epoch loss tolerance (relative)
REPEATS, UPDATE_REPEATS = 5, 10


def run_step_suite() -> dict[str, dict[str, float]]:
    """Run the pytest-benchmark step suite in a subprocess; median seconds per (phase, backbone, workload)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        command = [sys.executable, "-m", "pytest", str(ROOT / "benchmarks"), "-q", "-p", "no:cacheprovider",
                   "--benchmark-only", f"--benchmark-json={out}", "--benchmark-disable-gc"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"benchmark suite failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        data = json.loads(out.read_text())
    medians: dict[str, dict[str, float]] = {}
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        key = f"{info['phase']}/{info['backbone']}"
        medians.setdefault(key, {})[info["workload"]] = bench["stats"]["median"]
    return medians


def step_ratios(medians: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each method's median step time over the plain reference's, per phase and backbone."""
    out = {}
    for key, times in sorted(medians.items()):
        for workload, seconds in sorted(times.items()):
            if workload != "plain":
                out[f"{key}/{workload}"] = seconds / times["plain"]
    return out


def accuracy_guard() -> dict[str, dict[str, Any]]:
    """Run the smoke grid (1 thread) into a temporary CSV; accuracy and loss per run."""
    from bench.config.grid_files import GRIDS
    from bench.launchers.serial import run_grid
    from bench.record.store import read_rows

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "smoke.csv"
        run_grid(GRIDS["smoke"], path, threads=1, progress=False, say=lambda _: None)
        rows = read_rows(path)
    return {f"{r['backbone']}/{r['method']}": {"acc": float(r["acc"] or "nan"), "acc_last": float(r["acc_last"]
            or "nan"), "train_loss": float(r["train_loss"] or "nan"), "status": r["status"]} for r in rows}


def compare_loop(base: dict[str, list[float]], now: dict[str, list[float]], same_cpu: bool,
                 say=print) -> tuple[list[str], list[dict[str, Any]]]:
    """SPEED problems of the whole-loop workloads, and one history row per workload."""
    problems, history = [], []
    limits = (", ".join(f"{phase} {factor:.2f}x" for phase, factor in FACTORS.items()) if same_cpu
              else f"{CROSS_FACTOR:.2f}x (baseline from another CPU)")
    say(f"{'whole-loop workload (harness / plain PyTorch)':46} {'baseline':>8} {'now':>7} {'change':>7} "
        f"{'p':>7}  limit {limits}, and p < {ALPHA}")
    for key in sorted(base):
        if key not in now:
            problems.append(f"SPEED {key}: missing from this run")
            continue
        factor = FACTORS[key.split("/")[1]] if same_cpu else CROSS_FACTOR
        verdict = judge(base[key], now[key], factor, ALPHA)
        flag = "  SPEED REGRESSION" if verdict.regression else ""
        old, new = statistics.median(base[key]), statistics.median(now[key])
        say(f"{key:46} {old:8.3f} {new:7.3f} {verdict.change:6.2f}x {verdict.p_value:7.4f}{flag}")
        if verdict.regression:
            problems.append(f"SPEED {key}: the harness takes {verdict.change:.2f}x as long as before relative to "
                            f"plain PyTorch (median {old:.3f} -> {new:.3f} over {len(now[key])} repeats, "
                            f"Mann-Whitney p={verdict.p_value:.4f}; limit {factor:.2f}x and p < {ALPHA})")
        history.append({"workload": key, "ratio": round(new, 4), "baseline": round(old, 4),
                        "change": round(verdict.change, 4), "p_value": round(verdict.p_value, 5),
                        "limit": factor, "regression": verdict.regression})
    for key in sorted(set(now) - set(base)):
        say(f"{key:46} {'–':>8} {statistics.median(now[key]):7.3f}  (not in the baseline: a new workload; "
            "python -m benchmarks.check --update on a quiet machine adds it)")
    return problems, history


def compare_steps(base: dict[str, float], now: dict[str, float], say=print) -> list[str]:
    """SPEED problems of the step-level ratios (one median per workload; a fixed tolerance)."""
    problems = []
    say(f"{'step workload (method / plain step)':46} {'baseline':>8} {'now':>7} {'change':>7}  "
        f"limit {1 + STEP_TOLERANCE:.2f}x")
    for key, old in sorted(base.items()):
        new = now.get(key)
        if new is None:
            problems.append(f"SPEED {key}: missing from this run")
            continue
        change = new / old
        flag = "  SPEED REGRESSION" if change > 1 + STEP_TOLERANCE else ""
        say(f"{key:46} {old:8.3f} {new:7.3f} {change:6.2f}x{flag}")
        if flag:
            problems.append(f"SPEED {key}: step time relative to plain PyTorch grew {change:.2f}x "
                            f"({old:.3f} -> {new:.3f}; limit {1 + STEP_TOLERANCE:.2f}x)")
    return problems


def compare_accuracy(base: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]], exact: bool,
                     say=print) -> list[str]:
    """ACCURACY problems: identical on the same platform, within tolerance elsewhere."""
    problems = []
    say(f"accuracy guard ({'exact: same platform' if exact else 'tolerance: other platform'}):")
    for key, old in sorted(base.items()):
        new = now.get(key)
        if new is None:
            problems.append(f"ACCURACY {key}: missing from this run")
            continue
        say(f"  {key:32} acc {old['acc']:.4f} -> {new['acc']:.4f}, "
            f"loss {old['train_loss']:.6f} -> {new['train_loss']:.6f}, {new['status']}")
        if new["status"] != old["status"]:
            problems.append(f"ACCURACY {key}: status {old['status']} -> {new['status']}")
        for metric in ("acc", "acc_last", "train_loss"):
            a, b = old[metric], new[metric]
            if exact:
                bad = a != b
            elif metric == "train_loss":
                bad = abs(b - a) > LOSS_TOLERANCE * abs(a)
            else:
                bad = abs(b - a) > ACC_TOLERANCE
            if bad:
                problems.append(f"ACCURACY {key}: {metric} {a} -> {b} "
                                f"({'must be identical on the same platform' if exact else 'past tolerance'})")
    return problems


def _history_rows(rows: list[dict[str, Any]], repeats: int) -> list[dict[str, Any]]:
    from bench.record.provenance import git_state, this_cpu
    from benchmarks.loop import THREADS

    sha, dirty = git_state(ROOT)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"date": stamp, "commit": sha + ("+dirty" if dirty else ""), "cpu": this_cpu(), "threads": THREADS,
             "repeats": repeats, **row} for row in rows]


def _write_baseline(entries: list, here: dict, loop: dict, steps: dict | None, guard: dict, threads: int) -> None:
    """This platform's baseline entry from this run's samples (``--update``)."""
    parts: dict[str, Any] = {"threads": threads, "accuracy": guard,
                             "loop": {k: [round(v, 5) for v in samples] for k, samples in loop.items()}}
    if steps is not None:
        parts["steps"] = {k: round(v, 4) for k, v in steps.items()}
    baseline_file.save(entries, here, parts)
    spread = max(max(s) / min(s) for s in loop.values())
    print(f"baseline for {here['cpu']} written to {baseline_file.BASELINE}; "
          f"largest spread of one workload's samples {spread:.3f}x")


def _problems(entries: list, here: dict, loop: dict, steps: dict | None, guard: dict) -> tuple[list[str], list]:
    """Every SPEED and ACCURACY problem of this run against the baseline, and the whole-loop rows compared."""
    problems: list[str] = []
    entry, same = baseline_file.pick(entries, here, "loop")
    if entry is None:
        problems.append("SPEED: the baseline has no whole-loop samples; python -m benchmarks.check --update")
        rows = []
    else:
        found, rows = compare_loop(entry["loop"], loop, same)
        problems += found
    if steps is not None:
        step_entry, _ = baseline_file.pick(entries, here, "steps")
        if step_entry is not None:
            problems += compare_steps(step_entry["steps"], steps)
    acc_entry, _ = baseline_file.pick(entries, here, "accuracy")
    if acc_entry is not None:
        problems += compare_accuracy(acc_entry["accuracy"], guard, exact=acc_entry["platform"] == here)
    return problems, rows


def main(argv: list[str] | None = None) -> int:
    from benchmarks import history
    from benchmarks.loop import THREADS, measure
    from methods import METHODS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.check", description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="write this platform's baseline from this run")
    parser.add_argument("--repeats", type=int, help=f"whole-loop repeats (default {REPEATS}; "
                                                    f"{UPDATE_REPEATS} with --update)")
    parser.add_argument("--steps", action="store_true", help="also run the step-level suite (3 runs)")
    parser.add_argument("--record", action="store_true", help=f"append the ratios to {history.HISTORY.name}")
    args = parser.parse_args(argv)
    repeats = args.repeats or (UPDATE_REPEATS if args.update else REPEATS)
    if repeats < 3:
        parser.error(f"--repeats must be at least 3 (the rank test needs samples), got {repeats}")
    here = baseline_file.platform_key()
    try:
        entries = baseline_file.load()
    except baseline_file.BaselineError as error:
        if not args.update:
            print(error)
            return 2
        entries = []

    start = time.perf_counter()
    print(f"whole loop: {len(METHODS)} methods x {repeats} repeats, {THREADS} thread", flush=True)
    loop = measure(list(METHODS), repeats, say=lambda line: print(line, flush=True))
    steps = None
    if args.steps:
        runs = [step_ratios(run_step_suite()) for _ in range(3)]
        steps = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    guard = accuracy_guard()
    print(f"measured in {time.perf_counter() - start:.0f} s")

    if args.update:
        _write_baseline(entries, here, loop, steps, guard, THREADS)
        return 0
    problems, rows = _problems(entries, here, loop, steps, guard)
    if args.record and rows:
        history.append(_history_rows(rows, repeats))
        print(f"ratios appended to {history.HISTORY}")
    if problems:
        print("REGRESSION:\n  " + "\n  ".join(problems))
        print("If the change is intended, re-baseline on a quiet machine: python -m benchmarks.check --update")
        return 1
    print("no regression: every whole-loop ratio within its limit and the accuracy guard reproduced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
