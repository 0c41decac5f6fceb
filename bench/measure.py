"""Measurements: training-step throughput, peak memory, matmul peak.

* ``StepTimer`` is a fastNLP callback timing the training steps alone (forward, backward, optimizer
  step, zero-grad), skipping the first ``warmup`` steps and synchronising CUDA around each step;
  data loading and evaluation are outside the timed window.
* ``reset_peak_memory`` / ``peak_memory_mb``: the process's peak resident memory for one run
  (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) and, on a GPU, the CUDA allocator's peak.
* ``matmul_peak_flops``: this machine's measured dense peak. (A run's training FLOPs come from its
  method's own formula, ``Method.train_flops_per_token``.)
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import torch
from fastNLP import Callback


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
