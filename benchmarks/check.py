"""Performance and accuracy regression check against ``benchmarks/baseline.json``.

    python -m benchmarks.check            # run the suite + accuracy guard, compare, exit 1 on regression
    python -m benchmarks.check --update   # re-measure and write the baseline (commit it on purpose)

Speed: absolute times drift between machines and with load, so the check compares ratios measured in
one process: each method's median step time divided by the median step time of the ``plain`` PyTorch
reference on the same backbone and phase. A ratio above ``baseline x (1 + TOLERANCE)`` is a
regression. TOLERANCE was chosen from the measured spread (see README.md, "Regression tracking").

Accuracy: the ``smoke`` grid (seeded, 1 thread) must reproduce the baseline's accuracy and last-epoch
training loss exactly on the same platform (same torch, CPU model and Python), and within
``ACC_TOLERANCE`` / ``LOSS_TOLERANCE`` elsewhere.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = Path(__file__).resolve().parent / "baseline.json"
TOLERANCE = 0.35  # ratio may grow by 35% before it counts as a regression (see module docstring)
ACC_TOLERANCE = 0.03  # off-platform accuracy tolerance (absolute)
LOSS_TOLERANCE = 0.10  # off-platform last-epoch loss tolerance (relative)


def run_suite() -> dict[str, dict[str, float]]:
    """Run the pytest-benchmark suite in a subprocess; median seconds per (phase, backbone, workload)."""
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


def ratios(medians: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each method's median time over the plain reference's, per phase and backbone."""
    out = {}
    for key, times in sorted(medians.items()):
        for workload, seconds in sorted(times.items()):
            if workload != "plain":
                out[f"{key}/{workload}"] = seconds / times["plain"]
    return out


def accuracy_guard() -> dict[str, dict[str, float]]:
    """Run the smoke grid (1 thread) into a temporary CSV; accuracy and loss per run."""
    from bench.grid_files import GRIDS
    from bench.results import read_rows
    from bench.runner import run_grid

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "smoke.csv"
        run_grid(GRIDS["smoke"], path, threads=1, progress=False, say=lambda _: None)
        rows = read_rows(path)
    return {f"{r['backbone']}/{r['method']}": {"acc": float(r["acc"] or "nan"), "acc_last": float(r["acc_last"]
            or "nan"), "train_loss": float(r["train_loss"] or "nan"), "status": r["status"]} for r in rows}


def cpu_flags_digest() -> str:
    """A short hash of the CPU feature flags: the same name can hide different vector units, and those
    pick different kernels (and so different rounding)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return hashlib.sha256(" ".join(sorted(line.split(":", 1)[1].split())).encode()).hexdigest()[:12]
    except OSError:
        pass
    return "unknown"


def platform_key() -> dict[str, str]:
    """What must match for the accuracy guard to demand bit-identical results."""
    import torch

    from bench.results import cpu_name

    return {"torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_name(),
            "cpu_flags": cpu_flags_digest(), "machine": platform.machine()}


def compare(baseline: dict, measured: dict[str, float], guard: dict) -> list[str]:
    """Human-readable problems (empty when everything holds)."""
    problems = []
    print(f"{'workload':45} {'baseline':>9} {'now':>9} {'change':>8}  limit {1 + TOLERANCE:.2f}x")
    for key, base in sorted(baseline["ratios"].items()):
        now = measured.get(key)
        if now is None:
            problems.append(f"{key}: missing from this run")
            continue
        change = now / base
        flag = "  REGRESSION" if change > 1 + TOLERANCE else ""
        print(f"{key:45} {base:9.3f} {now:9.3f} {change:7.2f}x{flag}")
        if flag:
            problems.append(f"{key}: time relative to plain PyTorch grew {change:.2f}x "
                            f"({base:.3f} -> {now:.3f}; limit {1 + TOLERANCE:.2f}x)")
    for key in sorted(set(measured) - set(baseline["ratios"])):
        print(f"{key:45} {'–':>9} {measured[key]:9.3f}    (not in the baseline: a new workload; "
              "python -m benchmarks.check --update on a quiet machine adds it)")
    same_platform = baseline["platform"] == platform_key()
    print(f"accuracy guard ({'exact: same platform' if same_platform else 'tolerance: other platform'}):")
    for key, base in sorted(baseline["accuracy"].items()):
        now = guard.get(key)
        if now is None:
            problems.append(f"accuracy guard {key}: missing from this run")
            continue
        print(f"  {key:32} acc {base['acc']:.4f} -> {now['acc']:.4f}, "
              f"loss {base['train_loss']:.6f} -> {now['train_loss']:.6f}, {now['status']}")
        if now["status"] != base["status"]:
            problems.append(f"accuracy guard {key}: status {base['status']} -> {now['status']}")
        for metric in ("acc", "acc_last", "train_loss"):
            old, new = base[metric], now[metric]
            if same_platform:
                bad = old != new
            elif metric == "train_loss":
                bad = abs(new - old) > LOSS_TOLERANCE * abs(old)
            else:
                bad = abs(new - old) > ACC_TOLERANCE
            if bad:
                problems.append(f"accuracy guard {key}: {metric} {old} -> {new} "
                                f"({'must be identical on the same platform' if same_platform else 'past tolerance'})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.check", description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="write the measured values as the new baseline")
    parser.add_argument("--repeats", type=int, default=3,
                        help="suite runs; the median ratio over runs is compared (default 3)")
    args = parser.parse_args(argv)
    runs = [ratios(run_suite()) for _ in range(args.repeats)]
    measured = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    guard = accuracy_guard()
    if args.update:
        spread = {key: max(run[key] for run in runs) / min(run[key] for run in runs) for key in runs[0]}
        BASELINE.write_text(json.dumps({
            "platform": platform_key(), "threads": 1, "tolerance": TOLERANCE, "repeats": args.repeats,
            "ratios": {k: round(v, 4) for k, v in measured.items()},
            "spread_max_over_min": {k: round(v, 4) for k, v in spread.items()},
            "accuracy": guard}, indent=2, sort_keys=True) + "\n")
        print(f"baseline written to {BASELINE}; largest spread between runs {max(spread.values()):.3f}x")
        return 0
    if not BASELINE.exists():
        print(f"no baseline at {BASELINE}; create one with: python -m benchmarks.check --update")
        return 1
    problems = compare(json.loads(BASELINE.read_text()), measured, guard)
    if problems:
        print("REGRESSION:\n  " + "\n  ".join(problems))
        print("If the change is intended, update the baseline: python -m benchmarks.check --update")
        return 1
    print("no regression: every ratio within tolerance and the accuracy guard reproduced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
