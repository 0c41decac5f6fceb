"""Measurements: training-step throughput, peak memory, matmul peak.

* ``StepTimer`` is a fastNLP callback timing the training steps alone (forward, backward, optimizer
  step, zero-grad), skipping the first ``warmup`` steps and synchronising CUDA around each step;
  data loading and evaluation are outside the timed window.
* ``reset_peak_memory`` / ``peak_memory_mb``: the process's peak resident memory for one run
  (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) and, on a GPU, the CUDA allocator's peak.
* ``matmul_peak_flops``: this machine's measured dense peak (``measure_matmul_peak``: rounded for the
  row). (A run's training FLOPs come from its method's own formula, ``Method.train_flops_per_token``.)
* ``CpuLoadMeter``: the CPU time other processes used on this process's cores while a run trained;
  ``speed_is_clean`` decides from it whether the run's speed counts.
"""

from __future__ import annotations

import math
import os
import resource
import time
from pathlib import Path

import torch
from fastNLP import Callback

from bench.record.provenance import core_affinity

QUIET_MARGIN_CORES = 0.25  # other processes may use this many cores beyond the ones the run leaves free


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(Callback):
    """Sum the wall time of training steps after ``warmup`` steps, with samples and real tokens."""

    def __init__(self, device: torch.device, warmup: int = 3):
        super().__init__()
        self.device, self.warmup = device, warmup
        self.steps = self.samples = self.tokens = self.padded_tokens = 0
        self.seconds = 0.0
        self._start: float | None = None
        self._batch: tuple[int, int, int] = (0, 0, 0)

    def on_train_batch_begin(self, trainer, batch, indices) -> None:
        mask = batch["attention_mask"]
        self._batch = (mask.shape[0], int(mask.sum()), mask.numel())
        _sync(self.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer) -> None:
        _sync(self.device)
        elapsed = time.perf_counter() - self._start
        self.steps += 1
        if self.steps <= self.warmup:
            return
        self.seconds += elapsed
        self.samples += self._batch[0]
        self.tokens += self._batch[1]
        self.padded_tokens += self._batch[2]

    def state(self) -> dict[str, float]:
        """What an epoch checkpoint keeps: the timed totals (not the step count, so a resumed process
        skips its own warm-up steps again)."""
        return {"samples": self.samples, "tokens": self.tokens, "padded_tokens": self.padded_tokens,
                "seconds": self.seconds}

    def restore(self, state: dict[str, float]) -> None:
        self.samples, self.tokens = state["samples"], state["tokens"]
        self.padded_tokens, self.seconds = state["padded_tokens"], state["seconds"]

    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0

    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak for this run (best effort: /proc/self/clear_refs exists on Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    """Process peak RSS since the last reset (MB), and the CUDA peak on a GPU (MB, else 0)."""
    rss = 0.0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) / 1024
    except OSError:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    return {"peak_mem_mb": round(rss, 1), "peak_cuda_mem_mb": round(cuda, 1)}


def matmul_peak_flops(device: torch.device, size: int = 1024, repeats: int = 10,
                      dtype: torch.dtype = torch.float32) -> float:
    """Best-of-``repeats`` FLOP/s of a ``size`` x ``size`` matmul in ``dtype`` at the current thread count."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 2):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def measure_matmul_peak(device: str, precision: str = "fp32") -> float:
    """This machine's matmul peak in ``precision`` at the current thread count (FLOP/s), rounded for the
    row: a bf16 run's FLOP/s share is of the bf16 peak."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    value = matmul_peak_flops(torch.device(device), dtype=dtype)
    return float(f"{value:.4g}") if math.isfinite(value) else 0.0


class CpuLoadMeter:
    """CPU time the rest of the machine used on this process's cores while a block ran, in cores.

    Busy time of the cores this process may run on (its affinity; Linux ``/proc/stat``) minus this
    process's own CPU time, divided by wall time: 0 on a quiet machine, about 1 when another process
    keeps one of those cores busy. ``None`` where it cannot be read."""

    def __init__(self, stat_path: str = "/proc/stat", cores: set[int] | None = None):
        self.stat_path = stat_path
        self.cores = cores if cores is not None else core_affinity()
        self.load: float | None = None
        self.other_s: float | None = None
        self.wall_s = 0.0

    def _busy_seconds(self) -> float | None:
        total = 0
        try:
            with open(self.stat_path) as handle:
                lines = [line.split() for line in handle if line.startswith("cpu") and line[3:4].isdigit()]
            seen = 0
            for name, *values in lines:
                if self.cores is None or int(name[3:]) in self.cores:
                    fields = [int(v) for v in values]
                    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
                    guest = sum(fields[8:10])  # already counted in user / nice
                    total += sum(fields) - idle - guest
                    seen += 1
        except (OSError, ValueError, IndexError):
            return None
        return total / os.sysconf("SC_CLK_TCK") if seen else None

    def __enter__(self) -> CpuLoadMeter:
        self._busy, self._own, self._wall = self._busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def so_far(self) -> tuple[float | None, float]:
        """(CPU seconds other processes used on these cores, wall seconds) since the block began; the
        first is None where it cannot be read."""
        busy, wall = self._busy_seconds(), time.perf_counter() - self._wall
        if busy is None or self._busy is None:
            return None, wall
        return max(0.0, busy - self._busy - (time.process_time() - self._own)), wall

    def __exit__(self, *exc) -> None:
        self.other_s, self.wall_s = self.so_far()
        if self.other_s is not None and self.wall_s > 0:
            self.load = self.other_s / self.wall_s


def speed_is_clean(other_load: float | None, threads: int, cores: int) -> bool | None:
    """Whether a speed was measured without competition: other processes used no more than the cores
    the run left free plus a small margin. ``None`` when the load is unknown."""
    if other_load is None:
        return None
    return other_load <= max(0, cores - threads) + QUIET_MARGIN_CORES
