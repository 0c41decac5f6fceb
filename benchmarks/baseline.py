"""The committed baseline (``benchmarks/baseline.json``): one entry per platform the check was calibrated on.

An entry holds what was measured on one platform (CPU name and feature flags, torch, Python, threads):
the whole-loop samples (``loop``), optionally the step-level ratios (``steps``) and the accuracy guard's
numbers (``accuracy``). ``--update`` replaces the parts it measured in the entry of the platform it ran
on and leaves every other entry alone, so a baseline taken on an Intel Xeon does not erase the AMD EPYC
one. Speed is compared with the entry of the same CPU (name and flags) when there is one, else with
another CPU's entry under a wider factor; accuracy must be identical only on the very same platform.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

BASELINE = Path(__file__).resolve().parent / "baseline.json"
VERSION = 2


class BaselineError(ValueError):
    """The baseline file cannot be used (missing, unreadable, or of another version)."""


def cpu_flags_digest() -> str:
    """A short hash of the CPU feature flags: the same name can hide different vector units, and those
    pick different kernels (and so different rounding and speed)."""
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

    from bench.record.provenance import cpu_name

    return {"torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_name(),
            "cpu_flags": cpu_flags_digest(), "machine": platform.machine()}


def same_cpu(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether speeds measured on ``a`` are comparable as they are with speeds on ``b``."""
    return (a.get("cpu"), a.get("cpu_flags"), a.get("machine")) == (b.get("cpu"), b.get("cpu_flags"),
                                                                      b.get("machine"))


def load(path: Path = BASELINE) -> list[dict[str, Any]]:
    """The baseline's entries."""
    if not path.exists():
        raise BaselineError(f"no baseline at {path}; create one on a quiet machine with: "
                            "python -m benchmarks.check --update")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise BaselineError(f"{path} is not readable JSON ({error}); restore it with git checkout {path}") from None
    if data.get("version") != VERSION or not isinstance(data.get("entries"), list):
        raise BaselineError(f"{path} is not a version-{VERSION} baseline; re-create it with "
                            "python -m benchmarks.check --update")
    return data["entries"]


def pick(entries: list[dict[str, Any]], here: dict[str, str], part: str) -> tuple[dict[str, Any] | None, bool]:
    """The entry to compare ``part`` with, and whether it was measured on this CPU: this CPU's entry if
    it has the part, else the first entry that has it (another CPU), else ``None``."""
    having = [entry for entry in entries if part in entry]
    for entry in having:
        if same_cpu(entry["platform"], here):
            return entry, True
    return (having[0], False) if having else (None, False)


def save(entries: list[dict[str, Any]], here: dict[str, str], parts: dict[str, Any],
         path: Path = BASELINE) -> None:
    """Write ``parts`` into the entry of the platform ``here`` (created if missing), keeping every other
    entry and the parts of this one that were not measured."""
    kept = [entry for entry in entries if entry["platform"] != here]
    mine = next((entry for entry in entries if entry["platform"] == here), {"platform": here})
    kept.append({**mine, **parts})
    kept.sort(key=lambda entry: json.dumps(entry["platform"], sort_keys=True))
    path.write_text(json.dumps({"version": VERSION, "entries": kept}, indent=2, sort_keys=True) + "\n")
