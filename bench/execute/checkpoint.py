"""Epoch checkpoints: a run longer than its process (a session's end, Ctrl-C, a preempted node) resumes
after its last saved epoch instead of starting again.

With checkpointing on, the loop saves, when an epoch begins at least ``every_s`` seconds after the run's
last save (and never after the last epoch), a ``Snapshot`` of everything the remaining epochs depend on:
the trainable tensors, the optimizer and schedule, the random number generators, the training sampler's
epoch, epoch selection's best state, and the running measurements (timed steps, samples, wall time, the
CPU time other processes took). The file, ``<folder>/<run_id>.pt``, is written to a temporary name and
renamed, so a kill mid-save leaves the previous checkpoint whole.

A checkpoint is data, never code: it holds tensors and plain values only and is read with
``torch.load(weights_only=True)``, whose unpickler refuses every class and function it was not told to
build. A file that asks for one (a crafted file, or one written before format 2) is set aside as unsafe
without running anything.

A run started again with the same run id (same grid, task, backbone, method, seed, budget,
hyper-parameters, device type) and the same training code (``code_fingerprint``: the sources of
``methods/`` and of every ``bench`` module the training loop imports) loads it and trains the remaining
epochs on the same batches with the same random draws: its row is the one an uninterrupted run writes
(tests check this bit for bit on a tiny backbone), except that ``segments`` counts the processes it
trained in and its speed is marked not clean when they ran on different machines. A checkpoint that
cannot be used (another run's, other code, unreadable, unsafe) is moved aside with a note and the run
starts from its first epoch. The launcher deletes a run's checkpoint once the run's row is recorded.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
import pickle
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from fastNLP import Callback

FORMAT = 2  # 2: plain data read with weights_only=True (1 pickled NumPy objects)
_ROOT = Path(__file__).resolve().parents[2]
TRAINING_ENTRY = "bench.execute.loop"  # the module whose import closure decides a run's numbers


def _imports(path: Path) -> set[str]:
    """Names of this project's modules (and of attributes of them) that the source at ``path`` imports,
    anywhere in it: imports inside functions count too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("bench", "methods")}


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None  # an attribute (``bench.config.grids.Budget``), not a module


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def training_sources(root: Path = _ROOT) -> list[Path]:
    """The sources that decide a run's numbers: every file of ``methods/`` (a registry entry names its
    implementation by string, so no import shows which method a run loads) and every ``bench`` module
    that the training loop imports, directly or through others, with their packages' ``__init__``.
    The CLI, launchers, reports, compare and reproduce are not among them."""
    names = {TRAINING_ENTRY, *(_module_name(root, path) for path in (root / "methods").rglob("*.py"))}
    pending, files = sorted(names), set()
    while pending:
        name = pending.pop()
        path = _module_file(root, name)
        if path is None:
            continue
        files.add(path)
        parents = {name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1)}
        for other in sorted((_imports(path) | parents) - names):
            names.add(other)
            pending.append(other)
    return sorted(files)


def code_fingerprint(root: Path = _ROOT) -> str:
    """A hash of ``training_sources``: a checkpoint is resumed only by the training code that wrote it.
    A change to the report, the CLI, a launcher, docs or results keeps checkpoints resumable."""
    digest = hashlib.sha256()
    for path in training_sources(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def checkpoint_path(folder: Path | str, rid: str) -> Path:
    return Path(folder) / f"{rid}.pt"


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every random number generator the loop draws from (Python, NumPy, torch CPU, and CUDA when used),
    as plain values and tensors only."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy

        kind, keys, position, has_gauss, gauss = numpy.random.get_state()
        state["numpy"] = {"kind": str(kind), "keys": torch.from_numpy(keys.astype("int64")), "position": int(position),
                          "has_gauss": int(has_gauss), "gauss": float(gauss)}
    except ImportError:
        pass
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy

        saved = state["numpy"]
        numpy.random.set_state((saved["kind"], saved["keys"].numpy().astype(numpy.uint32), saved["position"],
                                saved["has_gauss"], saved["gauss"]))
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclasses.dataclass
class Snapshot:
    """What a checkpoint holds: everything the remaining epochs of run ``run_id`` depend on."""

    run_id: str
    code: str  # code_fingerprint() of the code that wrote it
    git_sha: str  # the commit that wrote it, for the message when other code finds it
    epochs_done: int
    model: dict[str, torch.Tensor]  # the trainable tensors
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    sampler_epoch: int
    keeper: dict[str, Any]  # epoch selection's best state
    losses: dict[str, Any]
    timer: dict[str, Any]
    rng: dict[str, Any]
    segments: list[dict[str, Any]]  # the training processes so far (bench.execute.checkpoint.Segments)

    def payload(self) -> dict[str, Any]:
        return {"format": FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_payload(cls, payload: Any) -> Snapshot:
        """The snapshot a loaded payload holds; ValueError when it does not hold one."""
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in payload]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        return cls(**{name: payload[name] for name in names})


def save(path: Path, snapshot: Snapshot | dict[str, Any]) -> None:
    """Write ``snapshot`` atomically (temporary file, fsync, rename)."""
    payload = snapshot.payload() if isinstance(snapshot, Snapshot) else {"format": FORMAT, **snapshot}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_payload(path: Path) -> Any:
    """The data in a checkpoint file, read without running anything it holds: ``weights_only`` loading
    builds tensors and plain containers only. Raises ``UnsafeCheckpoint`` for a file that asks for more."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch wraps the refusal of a global (a class or function to call) in an UnpicklingError
        raise UnsafeCheckpoint(_first_line(str(exc))) from None


class UnsafeCheckpoint(Exception):
    """A checkpoint whose pickle asks to build or call something other than tensors and plain values."""


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if "Unsupported global" in line or "Unsupported operand" in line:
            return line.strip()[:160]
    return (text.strip().splitlines() or ["unknown"])[0][:160]


def load(path: Path, rid: str, fingerprint: str, say: Callable[[str], None]) -> Snapshot | None:
    """The checkpoint at ``path`` if it is this run's and this code's; else None. One that exists but
    cannot be used is renamed ``<name>.unused-<n>`` (kept, never resumed) and ``say`` tells why."""
    if not path.exists():
        return None
    try:
        payload = read_payload(path)
        problem = _mismatch(payload, rid, fingerprint)
    except UnsafeCheckpoint as exc:
        problem = (f"it is unsafe or foreign: loading it would run code it names ({exc}); nothing in it was "
                   f"run (a checkpoint written before format {FORMAT}, or a crafted file)")
    except Exception as exc:  # a cut or foreign file: say so and train from the start
        problem = f"it cannot be read ({type(exc).__name__}: {_first_line(str(exc))[:120]})"
    if problem is None:
        try:
            return Snapshot.from_payload(payload)
        except ValueError as exc:
            problem = f"it is not a whole checkpoint ({exc})"
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
                f"{fingerprint}: the training loop or a method changed); resume it from the commit that "
                f"wrote it ({payload.get('git_sha') or 'unknown'})")
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
