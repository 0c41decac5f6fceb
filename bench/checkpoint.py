"""Epoch checkpoints: a run longer than its process (a session's end, Ctrl-C, a preempted node) resumes
after its last saved epoch instead of starting again.

With checkpointing on, the loop saves after an epoch's ``select`` evaluation, when at least ``every_s``
seconds passed since the run's last save (and never after the last epoch), everything the remaining
epochs depend on: the trainable tensors, the optimizer and schedule, the random number generators, the
training sampler's epoch, epoch selection's best state, and the running measurements (timed steps,
samples, wall time, the CPU time other processes took). The file, ``<folder>/<run_id>.pt``, is written
to a temporary name and renamed, so a kill mid-save leaves the previous checkpoint whole.

A run started again with the same run id (same grid, task, backbone, method, seed, budget,
hyper-parameters, device type) and the same training code (``code_fingerprint``: the sources of
``bench/`` and ``methods/``) loads it and trains the remaining epochs on the same batches with the same
random draws: its row is the one an uninterrupted run writes (tests check this bit for bit on a tiny
backbone), except that ``segments`` counts the processes it trained in and its speed is marked not
clean when they ran on different machines. A checkpoint that cannot be used (another run's, other code,
unreadable) is moved aside with a note and the run starts from its first epoch. The runner deletes a
run's checkpoint once the run's row is recorded.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from fastNLP import Callback

FORMAT = 1  # bump when the payload's keys change meaning
_ROOT = Path(__file__).resolve().parent.parent


def code_fingerprint(root: Path = _ROOT) -> str:
    """A hash of every Python source under ``bench/`` and ``methods/``: a checkpoint is resumed only by
    the code that wrote it (a change elsewhere, to results, reports or docs, does not matter)."""
    digest = hashlib.sha256()
    for package in ("bench", "methods"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def checkpoint_path(folder: Path | str, rid: str) -> Path:
    return Path(folder) / f"{rid}.pt"


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every random number generator the loop draws from (Python, NumPy, torch CPU, and CUDA when used)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy

        state["numpy"] = numpy.random.get_state()
    except ImportError:
        pass
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy

        numpy.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            torch.save({"format": FORMAT, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load(path: Path, rid: str, fingerprint: str, say: Callable[[str], None]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it is this run's and this code's; else None. One that exists but
    cannot be used is renamed ``<name>.unused-<n>`` (kept, never resumed) and ``say`` tells why."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        problem = _mismatch(payload, rid, fingerprint)
    except Exception as exc:  # a cut or foreign file: say so and train from the start
        problem = f"it cannot be read ({type(exc).__name__}: {str(exc)[:120]})"
    if problem is None:
        return payload
    aside = _aside(path)
    path.rename(aside)
    say(f"    checkpoint {path} not resumed: {problem}; moved to {aside.name}, training from the first epoch")
    return None


def _mismatch(payload: Any, rid: str, fingerprint: str) -> str | None:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return f"it is not a checkpoint of format {FORMAT}"
    if payload.get("run_id") != rid:
        return f"it belongs to run {payload.get('run_id')}"
    if payload.get("code") != fingerprint:
        return (f"it was written by other training code (fingerprint {payload.get('code')}, this code "
                f"{fingerprint}: bench/ or methods/ changed); resume it from the commit that wrote it "
                f"({payload.get('git_sha') or 'unknown'})")
    return None


def _aside(path: Path) -> Path:
    n = 1
    while (candidate := path.with_name(f"{path.name}.unused-{n}")).exists():
        n += 1
    return candidate


def remove(folder: Path | str | None, rid: str) -> None:
    """Delete run ``rid``'s checkpoint (its row is recorded), if there is one."""
    if folder is not None:
        checkpoint_path(folder, rid).unlink(missing_ok=True)


class SaveAfterEpochs(Callback):
    """Saves ``snapshot(trainer)`` to ``path`` when an epoch after ``first_epoch`` begins and ``every_s``
    seconds passed since this process's last save (or its start); restores ``rng`` when training begins.

    Saving as the next epoch begins, not as an epoch ends, sees every other callback's end-of-epoch
    work (epoch selection) whatever their order, and never saves after the last epoch."""

    def __init__(self, path: Path, every_s: float, snapshot: Callable[[Any], dict[str, Any]],
                 first_epoch: int = 0, rng: dict[str, Any] | None = None):
        super().__init__()
        self.path, self.every_s, self.snapshot = path, every_s, snapshot
        self.first_epoch, self.rng = first_epoch, rng
        self.last = time.perf_counter()
        self.saved_after = first_epoch  # the last epoch a checkpoint holds (0: none)

    def on_train_begin(self, trainer) -> None:
        if self.rng is not None:
            restore_rng(self.rng)
        self.last = time.perf_counter()

    def on_train_epoch_begin(self, trainer) -> None:
        done = trainer.cur_epoch_idx
        if done > self.first_epoch and time.perf_counter() - self.last >= self.every_s:
            save(self.path, self.snapshot(trainer))
            self.last, self.saved_after = time.perf_counter(), done


class Segments:
    """The processes one run trained in: those before this one (from its checkpoint) and this one.
    The row's wall times are sums over them, its peak memory their maximum, its CPU load the other
    processes' CPU time over all of them, and its speed clean only if they all ran on one kind of
    machine (``machine``: CPU, its features, threads, device)."""

    def __init__(self, earlier: list[dict[str, Any]], machine: str):
        self.earlier, self.machine = earlier, machine

    def with_current(self, train_s: float, run_s: float, other_cpu_s: float | None, wall_s: float,
                     peak: dict[str, float]) -> list[dict[str, Any]]:
        """Every segment, this one with what it measured so far."""
        return [*self.earlier, {"machine": self.machine, "train_s": train_s, "run_s": run_s,
                                "other_cpu_s": other_cpu_s, "wall_s": wall_s, "peak": peak}]

    @staticmethod
    def totals(segments: list[dict[str, Any]]) -> dict[str, Any]:
        others = [s["other_cpu_s"] for s in segments]
        wall = sum(s["wall_s"] for s in segments)
        return {"segments": len(segments), "train_s": sum(s["train_s"] for s in segments),
                "run_s": sum(s["run_s"] for s in segments),
                "other_cpu_load": None if None in others or wall <= 0 else sum(others) / wall,
                "peak": {key: max(s["peak"][key] for s in segments) for key in segments[-1]["peak"]},
                "one_machine": len({s["machine"] for s in segments}) == 1}
