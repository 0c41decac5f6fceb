"""Where and from what a row was measured: the code's git state, the machine (CPU name and speed
features, GPU, cores this process may use) and library versions. ``machine_of`` names a row's kind of
machine the one way every reader uses (speeds of different kinds are never pooled)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path


# --- provenance -------------------------------------------------------------------------------------
def git_state(root: Path | None = None) -> tuple[str, bool]:
    """(sha, dirty) of the working tree, ignoring results/, reports/ and benchmarks/history.csv (which
    runs, reports and the regression check themselves write)."""
    root = root or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!results", ":!reports",
                                 ":!benchmarks/history.csv"],
                                cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return sha or "unknown", bool(status)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def core_affinity() -> set[int] | None:
    """The cores this process may run on (a container or taskset narrows them); None where unknown."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return None


def available_cores() -> int:
    """How many cores this process may run on (its CPU affinity; else all)."""
    cores = core_affinity()
    return len(cores) if cores is not None else os.cpu_count() or 1


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Instruction sets that change how fast a matmul runs, in the order a row lists them: x86 (AVX2, AVX-512,
# its bf16 dot products, AMX tiles) and Arm (SVE, bf16). Other flags do not change these speeds.
SPEED_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "asimd", "sve", "bf16")


def cpu_features(cpuinfo: str | None = None) -> str:
    """This CPU's ``SPEED_FEATURES``, space-separated ("none" when it has none of them; "" when unknown:
    no ``/proc/cpuinfo``). Two CPUs of one model name can differ here: a Xeon VM with or without AMX."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            present = set(value.split())
            return " ".join(f for f in SPEED_FEATURES if f in present) or "none"
    return ""


def machine_of(row: dict[str, str]) -> str:
    """The kind of machine a row's speeds were measured on: its GPU's name, else its CPU's name with the
    CPU's speed features when recorded (rows before schema v4 have the name alone). Speeds of different
    kinds are never pooled."""
    if row.get("accelerator"):
        return row["accelerator"]
    cpu, features = row.get("cpu") or "unknown CPU", row.get("cpu_features") or ""
    return f"{cpu} ({features})" if features else cpu


def this_cpu() -> str:
    """This machine's CPU as a row measured here names it (``machine_of``): e.g. "AMD EPYC (avx2)"."""
    return machine_of({"cpu": cpu_name(), "cpu_features": cpu_features()})


@functools.cache
def environment() -> dict[str, str]:
    """Library versions and machine, recorded with every row (constant for a process: looked up once;
    callers copy it into their rows)."""
    import importlib.metadata as md

    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "fastnlp": md.version("fastnlp"), "python": platform.python_version(), "cpu": cpu_name(),
            "cpu_features": cpu_features(), "node": platform.node()}


def accelerator_name(device: str) -> str:
    """The GPU a run used, by name ("" on CPU): speeds of different GPUs are never pooled."""
    import torch

    parsed = torch.device(device)
    return torch.cuda.get_device_name(parsed) if parsed.type == "cuda" else ""
