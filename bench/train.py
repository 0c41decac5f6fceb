"""One run: seed, build the method on a fresh backbone, train with ONE fastNLP Trainer, evaluate.

``run_one(spec)`` returns the result row (see ``bench.record.schema.COLUMNS``). The loop is the same for
every method: it asks the method for its trainable parameters, its hyper-parameters and its
``train_step`` / ``evaluate_step``, never for its name. The epoch is selected on the ``select`` split
(fastNLP evaluates it after every epoch); the trainable state of the best epoch is kept in memory and
restored for the final evaluation on ``eval``, which is also evaluated with the last epoch's state.

What a run refuses to report as a result: Ctrl-C or SIGTERM propagates out of fastNLP (which would
otherwise swallow it and let a truncated run be recorded); a non-finite loss stops training at that
step with ``TrainingDiverged``; a last-epoch mean loss above ``DIVERGED_LOSS_FACTOR`` x ln(classes)
(worse than guessing, by far) makes the run ``failed``. The CPU time other processes used while the
run trained is measured (``CpuLoadMeter``) and a speed measured beside them is marked not clean.

With ``checkpoint_dir`` set, the loop saves epoch checkpoints and a run started again resumes from its
last one (``bench.checkpoint``): the row is the uninterrupted run's, with ``segments`` > 1 and times,
load and peak memory over all the processes it trained in.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from fastNLP import Accuracy, Callback, Evaluator, LRSchedCallback, Metric, Trainer
from fastNLP import logger as fastnlp_logger

from bench import IDENTITY_VERSION
from bench.backbones import load_backbone
from bench.checkpoint import SaveAfterEpochs, Segments, Snapshot, checkpoint_path, code_fingerprint, rng_state
from bench.checkpoint import load as load_checkpoint
from bench.data import encode_split, eval_loader, train_loader
from bench.grids import Budget, Variant
from bench.measure import StepTimer, matmul_peak_flops, peak_memory_mb, reset_peak_memory
from bench.record.provenance import accelerator_name, available_cores, core_affinity, git_state, this_cpu
from bench.record.schema import run_id
from bench.tasks import TaskData
from methods import METHODS
from methods.base import Method, MethodRefused
from methods.settings import CONSTANT, LINEAR_DECAY, Settings, TrainingSettings

COLLAPSE_SHARE = 0.98  # predictions this concentrated on one class count as a collapse
DIVERGED_LOSS_FACTOR = 10.0  # last-epoch loss above this x ln(classes) is a diverged run
QUIET_MARGIN_CORES = 0.25  # other processes may use this many cores beyond the ones the run leaves free


class TrainingDiverged(RuntimeError):
    """The training loss became non-finite or exploded: the run has no meaningful result."""


@dataclass(frozen=True)
class RunSpec:
    grid: str
    task: TaskData
    backbone: str
    variant: Variant
    seed: int
    budget: Budget
    device: str = "cpu"
    threads: int = 2
    bucketing: bool = True
    progress: bool = True
    checkpoint_dir: str | None = None  # epoch checkpoints go here (bench.checkpoint); None: none
    checkpoint_every_s: float = 600.0  # at most one checkpoint per this many seconds

    def settings(self) -> tuple[TrainingSettings, Settings]:
        """The typed settings this run uses: the method's defaults, the budget's batch size and length,
        the grid's overrides, then the budget's epoch cap."""
        values = {"batch_size": self.budget.batch_size, "max_len": self.budget.max_len, **self.variant.overrides}
        training, own = METHODS[self.variant.method].resolve(values)
        if self.budget.max_epochs is not None and training.epochs > self.budget.max_epochs:
            training = replace(training, epochs=self.budget.max_epochs)
        return training, own

    def hparams(self) -> dict[str, Any]:
        """Every value the run uses (what its row records): both settings objects and the data caps."""
        training, own = self.settings()
        return {"method": self.variant.method, **training.as_dict(), **own.as_dict(),
                "train_cap": self.budget.train_cap, "select_cap": self.budget.select_cap,
                "bucketing": self.bucketing}

    @functools.cached_property
    def run_id(self) -> str:
        """The run's id (``bench.record.schema.run_id`` of its identity), computed once per spec."""
        return run_id(self.identity())

    def identity(self) -> dict[str, Any]:
        """What defines the run: its row's run_id is the hash of this."""
        return {"grid": self.grid, "task": self.task.name, "backbone": self.backbone,
                "method": self.variant.name, "seed": self.seed, "budget": self.budget.name,
                "hparams": self.hparams(), "device": torch.device(self.device).type,
                "schema_version": IDENTITY_VERSION}


class PredictionShare(Metric):
    """Accuracy plus the share of the most frequent predicted class (collapse detection)."""

    def __init__(self, num_labels: int):
        super().__init__()
        self.register_element(name="correct", value=0, aggregate_method="sum")
        self.register_element(name="total", value=0, aggregate_method="sum")
        for c in range(num_labels):
            self.register_element(name=f"pred_{c}", value=0, aggregate_method="sum")
        self.num_labels = num_labels

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.correct += int((pred == target).sum())
        self.total += int(target.numel())
        for c in range(self.num_labels):
            setattr(self, f"pred_{c}", getattr(self, f"pred_{c}") + int((pred == c).sum()))

    def get_metric(self) -> dict[str, float]:
        total = max(int(self.total.get_scalar()), 1)
        top = max(int(getattr(self, f"pred_{c}").get_scalar()) for c in range(self.num_labels))
        return {"acc": int(self.correct.get_scalar()) / total, "top_share": top / total}


class KeepBestEpoch(Callback):
    """After each evaluation on ``select``, keep the trainable state if accuracy improved."""

    def __init__(self, model: Method):
        super().__init__()
        self.model = model
        self.best_acc, self.best_epoch, self.best_state = -1.0, 0, None
        self.evaluations = 0  # evaluation happens once per epoch, so this is the epoch number

    def on_evaluate_end(self, trainer, results) -> None:
        self.evaluations += 1
        acc = next(v for k, v in results.items() if k.startswith("acc#acc"))
        if acc > self.best_acc:
            self.best_acc, self.best_epoch = acc, self.evaluations
            self.best_state = self.model.trainable_state()

    def state(self) -> dict[str, Any]:
        return {"best_acc": self.best_acc, "best_epoch": self.best_epoch, "best_state": self.best_state,
                "evaluations": self.evaluations}

    def restore(self, state: dict[str, Any]) -> None:
        self.best_acc, self.best_epoch = state["best_acc"], state["best_epoch"]
        self.best_state, self.evaluations = state["best_state"], state["evaluations"]


class LastEpochLoss(Callback):
    """Mean training loss over the last epoch; stops training at the first non-finite loss."""

    def __init__(self):
        super().__init__()
        self.total: torch.Tensor | float = 0.0
        self.steps = self.global_steps = 0

    def on_train_epoch_begin(self, trainer) -> None:
        self.total, self.steps = 0.0, 0

    def on_before_backward(self, trainer, outputs) -> None:
        loss = outputs["loss"].detach()
        self.global_steps += 1
        if not bool(torch.isfinite(loss)):  # one tiny sync per step: a NaN must not train on
            raise TrainingDiverged(f"loss became {float(loss)} at step {self.global_steps} "
                                   f"(epoch {trainer.cur_epoch_idx + 1}); lower the learning rate")
        self.total = self.total + loss
        self.steps += 1

    def mean(self) -> float:
        return float(self.total) / self.steps if self.steps else float("nan")

    def state(self) -> dict[str, int]:
        return {"global_steps": self.global_steps}  # saved between epochs: the epoch's own sums start anew

    def restore(self, state: dict[str, int]) -> None:
        self.global_steps = state["global_steps"]


class Progress(Callback):
    """Live progress through ``say``: a line with the batch, loss and elapsed time whenever
    ``every_s`` seconds have passed within an epoch, and one line per epoch with its batches, time and
    ``select`` accuracy."""

    def __init__(self, say: Callable[[str], None], epochs: int, batches: int, every_s: float = 15.0):
        super().__init__()
        self.say, self.epochs, self.batches, self.every_s = say, epochs, batches, every_s
        self.seen = 0
        self.start = self.epoch_start = self.last = time.perf_counter()

    def on_train_epoch_begin(self, trainer) -> None:
        self.seen, self.epoch_start = 0, time.perf_counter()
        self.last = self.epoch_start

    def on_before_backward(self, trainer, outputs) -> None:
        self.seen += 1
        now = time.perf_counter()
        if now - self.last >= self.every_s and self.seen < self.batches:
            self.last = now
            self.say(f"    epoch {trainer.cur_epoch_idx + 1}/{self.epochs} batch {self.seen}/{self.batches} "
                     f"loss {float(outputs['loss'].detach()):.4f}, {now - self.epoch_start:.0f} s into the epoch")

    def on_evaluate_end(self, trainer, results) -> None:
        acc = next(v for k, v in results.items() if k.startswith("acc#acc"))
        self.say(f"    epoch {trainer.cur_epoch_idx}/{self.epochs} done: {self.seen} batches in "
                 f"{time.perf_counter() - self.epoch_start:.0f} s, select acc {acc:.4f} "
                 f"({time.perf_counter() - self.start:.0f} s into the run)")


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


def _schedule(optimizer: torch.optim.Optimizer, total_steps: int, training: TrainingSettings):
    """The learning-rate factor per step: linear warm-up over ``warmup_ratio`` of the steps, then linear
    decay to 0 or constant, as ``training.schedule`` names. (Not transformers' schedules: their warm-up
    starts at factor 0 on step 0 where this starts at 1/warmup, and the committed rows used this one.)"""
    warmup = max(1, int(total_steps * training.warmup_ratio))
    after = {LINEAR_DECAY: lambda step: max(0.0, (total_steps - step) / max(1, total_steps - warmup)),
             CONSTANT: lambda step: 1.0}[training.schedule]

    def factor(step: int) -> float:
        return (step + 1) / warmup if step < warmup else after(step)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:
        pass


def _evaluate(model: Method, loader, device: str, num_labels: int) -> tuple[dict[str, float], float]:
    evaluator = Evaluator(model, dataloaders=loader, metrics={"acc": PredictionShare(num_labels)},
                          driver="torch", device=device, progress_bar=None, verbose=0)
    start = time.perf_counter()
    results = evaluator.run(num_eval_batch_per_dl=-1)
    seconds = time.perf_counter() - start
    acc = next(v for k, v in results.items() if k.startswith("acc#acc"))
    share = next(v for k, v in results.items() if k.startswith("top_share#acc"))
    return {"acc": acc, "top_share": share}, seconds


def build_model(spec: RunSpec) -> tuple[Method, object]:
    """Seed, load a fresh backbone and wrap it with the run's method."""
    seed_everything(spec.seed)
    loaded = load_backbone(spec.backbone)
    training, own = spec.settings()
    model = METHODS[spec.variant.method].load()(loaded.model, spec.task.num_labels, own, training)
    return model, loaded.tokenizer


def run_one(spec: RunSpec, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and evaluate one run; returns the result row's measured part (status ok, collapsed, or
    failed when training diverged). Raises on anything else; KeyboardInterrupt passes through."""
    torch.set_num_threads(spec.threads)
    device = torch.device(spec.device)
    run_start = time.perf_counter()
    model, tokenizer = build_model(spec)
    training = model.train_settings
    budget, task = spec.budget, spec.task
    train_split, select_split = task.train.head(budget.train_cap), task.select.head(budget.select_cap)
    pad_id = tokenizer.pad_token_id or 0
    train_data = encode_split(tokenizer, train_split, training.max_len)
    select_data = encode_split(tokenizer, select_split, training.max_len)
    eval_data = encode_split(tokenizer, task.eval, training.max_len)

    reset_peak_memory(device)
    model.to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # a DataLoader draws a seed
        probe = next(iter(eval_loader(select_data, 8, pad_id)))
        problem = model.ineffective(probe["input_ids"].to(device), probe["attention_mask"].to(device))
    if problem:
        raise MethodRefused(problem)
    params = model.trainable_parameters()
    optimizer = getattr(torch.optim, training.optimizer)(params, lr=training.lr, weight_decay=training.weight_decay)
    loader = train_loader(train_data, training.batch_size, spec.seed, pad_id, spec.bucketing)
    epochs = training.epochs
    scheduler = _schedule(optimizer, epochs * len(loader), training)
    timer, keeper, losses = StepTimer(device), KeepBestEpoch(model), LastEpochLoss()
    callbacks = [timer, keeper, losses, LRSchedCallback(scheduler)]
    if spec.progress:
        callbacks.append(Progress(say, epochs, len(loader)))
    rid = spec.run_id
    saving = checkpoint_path(spec.checkpoint_dir, rid) if spec.checkpoint_dir is not None else None
    fingerprint = code_fingerprint() if saving else ""
    resumed = load_checkpoint(saving, rid, fingerprint, say) if saving else None
    segments = Segments(resumed.segments if resumed else [], _machine(spec))
    if saving is not None:
        written_by = git_state()[0]  # read once: a save must not wait on git

        def snapshot(running: Trainer) -> Snapshot:
            other, wall = meter.so_far()
            now = time.perf_counter()
            return Snapshot(run_id=rid, code=fingerprint, git_sha=written_by, epochs_done=running.cur_epoch_idx,
                            model=model.trainable_state(), optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), sampler_epoch=loader.batch_sampler.epoch,
                            keeper=keeper.state(), losses=losses.state(), timer=timer.state(), rng=rng_state(device),
                            segments=segments.with_current(now - train_start, now - run_start, other, wall,
                                                           peak_memory_mb(device)))

        callbacks.append(SaveAfterEpochs(saving, spec.checkpoint_every_s, snapshot,
                                         resumed.epochs_done if resumed else 0, resumed.rng if resumed else None))
    if resumed is not None:
        model.load_trainable_state(resumed.model)
        optimizer.load_state_dict(resumed.optimizer)
        scheduler.load_state_dict(resumed.scheduler)
        loader.batch_sampler.epoch = resumed.sampler_epoch
        keeper.restore(resumed.keeper)
        losses.restore(resumed.losses)
        timer.restore(resumed.timer)
        say(f"    resuming from the checkpoint after epoch {resumed.epochs_done}/{epochs} "
            f"(training segment {len(resumed.segments) + 1})")
    fastnlp_logger.setLevel("ERROR")  # our Progress lines replace fastNLP's per-batch output
    trainer = Trainer(
        model=model, driver="torch", device=spec.device, train_dataloader=loader, optimizers=optimizer,
        n_epochs=epochs, evaluate_dataloaders={"select": eval_loader(select_data, 64, pad_id)},
        metrics={"acc": Accuracy()}, evaluate_every=-1, callbacks=callbacks, progress_bar=None,
        torch_kwargs={"set_grad_to_none": True},
    )
    if resumed is not None:
        trainer.cur_epoch_idx = resumed.epochs_done  # fastNLP trains the epochs from here to n_epochs
    train_start = time.perf_counter()
    with CpuLoadMeter() as meter:
        trainer.run(num_eval_batch_per_dl=-1, catch_KeyboardInterrupt=False)  # else a Ctrl-C ends training
    train_s = time.perf_counter() - train_start
    diverged_above = DIVERGED_LOSS_FACTOR * math.log(task.num_labels)
    if losses.mean() > diverged_above:
        raise TrainingDiverged(f"last-epoch mean train loss {losses.mean():.4g} exceeds {DIVERGED_LOSS_FACTOR:g} x "
                               f"ln({task.num_labels}) = {diverged_above:.3g}: training diverged; lower the "
                               "learning rate")

    eval_dl = eval_loader(eval_data, 64, pad_id)
    last, eval_seconds = _evaluate(model, eval_dl, spec.device, task.num_labels)
    best = last  # when the last epoch is the selected one, the model already holds its state
    if keeper.best_state is not None and keeper.best_epoch != epochs:
        model.load_trainable_state(keeper.best_state)
        best, eval_seconds = _evaluate(model, eval_dl, spec.device, task.num_labels)
    total = Segments.totals(segments.with_current(train_s, time.perf_counter() - run_start, meter.other_s,
                                                  meter.wall_s, peak_memory_mb(device)))

    tokens_run = timer.padded_tokens + timer.samples * model.extra_input_tokens()
    flops_per_s = model.train_flops_per_token() * tokens_run / timer.seconds if timer.seconds else 0.0
    counts = model.parameter_counts()
    collapsed = best["top_share"] >= COLLAPSE_SHARE
    load = total["other_cpu_load"]
    clean = speed_is_clean(load, spec.threads, available_cores()) if device.type == "cpu" else None
    if not total["one_machine"]:
        clean = False  # its epochs were timed on different kinds of machine: no one speed to report
    return {
        **counts,
        "trainable_pct": round(100.0 * counts["trainable_params"] / counts["total_params"], 4),
        "train_loss": round(losses.mean(), 6), "acc": round(best["acc"], 6), "acc_last": round(last["acc"], 6),
        "acc_select": round(keeper.best_acc, 6), "best_epoch": keeper.best_epoch, "epochs": epochs,
        "majority_rate": round(task.eval.majority_rate(), 6),
        "pred_majority_share": round(best["top_share"], 6),
        "n_train": len(train_split), "n_select": len(select_split), "n_eval": len(task.eval),
        "train_samples_per_s": round(timer.samples_per_s(), 3),
        "train_tokens_per_s": round(timer.tokens_per_s(), 1),
        "train_flops_per_s": round(flops_per_s, 1),
        "eval_samples_per_s": round(len(task.eval) / eval_seconds, 3) if eval_seconds else 0.0,
        "train_s": round(total["train_s"], 3), "run_s": round(total["run_s"], 2),
        **total["peak"],
        "other_cpu_load": "" if load is None else round(load, 3),
        "speed_clean": "" if clean is None else clean, "segments": total["segments"],
        "status": "collapsed" if collapsed else "ok",
        "error": (f"predictions collapsed: {best['top_share']:.1%} of eval predictions are one class"
                  if collapsed else ""),
    }


def _machine(spec: RunSpec) -> str:
    """The kind of machine a training segment ran on, as far as its speed goes."""
    return f"{this_cpu()}, {spec.threads} threads, {accelerator_name(spec.device) or torch.device(spec.device).type}"


def hparams_json(spec: RunSpec) -> str:
    return json.dumps(spec.hparams(), sort_keys=True)


def measure_matmul_peak(device: str, precision: str = "fp32") -> float:
    """This machine's matmul peak in ``precision`` at the current thread count (FLOP/s), rounded for the
    row: a bf16 run's FLOP/s share is of the bf16 peak."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    value = matmul_peak_flops(torch.device(device), dtype=dtype)
    return float(f"{value:.4g}") if math.isfinite(value) else 0.0

