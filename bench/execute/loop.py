"""One run: seed, build the method on a fresh backbone, train with ONE fastNLP Trainer, evaluate.

``run_one(spec)`` returns the result row's measured part (see ``bench.record.schema.COLUMNS``); it reads
top to bottom as the stages of a run: build (seed, fresh backbone, method, encoded splits), check that
the method changes the logits, set up training (optimizer, schedule, loader, callbacks), restore from a
checkpoint, train, evaluate, measure. The loop is the same for every method: it asks the method for
its trainable parameters, its settings and its ``train_step`` / ``evaluate_step``, never for its name.
The epoch is selected on the ``select`` split (fastNLP evaluates it after every epoch); the trainable
state of the best epoch is kept in memory and restored for the final evaluation on ``eval``, which is
also evaluated with the last epoch's state.

What a run refuses to report as a result: Ctrl-C or SIGTERM propagates out of fastNLP (which would
otherwise swallow it and let a truncated run be recorded); a non-finite loss stops training at that
step with ``TrainingDiverged``; a last-epoch mean loss above ``DIVERGED_LOSS_FACTOR`` x ln(classes)
(worse than guessing, by far) makes the run ``failed``. The CPU time other processes used while the
run trained is measured (``CpuLoadMeter``) and a speed measured beside them is marked not clean.

With ``checkpoint_dir`` set, the loop saves epoch checkpoints and a run started again resumes from its
last one (``bench.execute.checkpoint``): the row is the uninterrupted run's, with ``segments`` > 1 and
times, load and peak memory over all the processes it trained in.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import torch
from fastNLP import Accuracy, Evaluator, LRSchedCallback, Trainer
from fastNLP import logger as fastnlp_logger

from bench.backbones import load_backbone
from bench.execute.callbacks import KeepBestEpoch, LastEpochLoss, PredictionShare, Progress, TrainingDiverged
from bench.execute.checkpoint import SaveAfterEpochs, Segments, Snapshot, checkpoint_path, code_fingerprint, rng_state
from bench.execute.checkpoint import load as load_checkpoint
from bench.execute.data import encode_split, eval_loader, train_loader
from bench.execute.measure import CpuLoadMeter, StepTimer, peak_memory_mb, reset_peak_memory, speed_is_clean
from bench.plan import RunSpec
from bench.record.provenance import accelerator_name, available_cores, git_state, this_cpu
from methods import METHODS
from methods.base import Method, MethodRefused
from methods.settings import CONSTANT, LINEAR_DECAY, TrainingSettings

COLLAPSE_SHARE = 0.98  # predictions this concentrated on one class count as a collapse
DIVERGED_LOSS_FACTOR = 10.0  # last-epoch loss above this x ln(classes) is a diverged run


def run_one(spec: RunSpec, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and evaluate one run; returns the result row's measured part (status ok, collapsed, or
    failed when training diverged). Raises on anything else; KeyboardInterrupt passes through."""
    run = TrainingRun(spec, say)
    run.build()
    run.check_effect()
    run.set_up_training()
    run.restore()
    run.train()
    return run.measured(*run.evaluate())


class TrainingRun:
    """The state of one run, built stage by stage in the order ``run_one`` calls them (each stage draws
    from the random generators in the same order as every earlier version of the loop: rows reproduce)."""

    def __init__(self, spec: RunSpec, say: Callable[[str], None]):
        self.spec, self.say = spec, say
        torch.set_num_threads(spec.threads)
        self.device = torch.device(spec.device)
        self.run_start = time.perf_counter()

    def build(self) -> None:
        """Seed, load a fresh backbone and wrap it with the method; cap and encode the splits."""
        spec, task, budget = self.spec, self.spec.task_data(), self.spec.budget
        self.task = task
        self.model, tokenizer = build_model(spec)
        self.training = self.model.train_settings
        self.train_split, self.select_split = task.train.head(budget.train_cap), task.select.head(budget.select_cap)
        self.pad_id = tokenizer.pad_token_id or 0
        self.train_data = encode_split(tokenizer, self.train_split, self.training.max_len)
        self.select_data = encode_split(tokenizer, self.select_split, self.training.max_len)
        self.eval_data = encode_split(tokenizer, task.eval, self.training.max_len)

    def check_effect(self) -> None:
        """Move the model to its device and refuse a method whose own parameters do not change the logits."""
        reset_peak_memory(self.device)
        self.model.to(self.device)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # a DataLoader draws a seed
            probe = next(iter(eval_loader(self.select_data, 8, self.pad_id)))
            problem = self.model.ineffective(probe["input_ids"].to(self.device),
                                             probe["attention_mask"].to(self.device))
        if problem:
            raise MethodRefused(problem)

    def set_up_training(self) -> None:
        """The optimizer over the trainable parameters, the training loader, the schedule and the callbacks."""
        training, spec = self.training, self.spec
        params = self.model.trainable_parameters()
        self.optimizer = getattr(torch.optim, training.optimizer)(params, lr=training.lr,
                                                                  weight_decay=training.weight_decay)
        self.loader = train_loader(self.train_data, training.batch_size, spec.seed, self.pad_id, spec.bucketing)
        self.epochs = training.epochs
        self.scheduler = _schedule(self.optimizer, self.epochs * len(self.loader), training)
        self.timer, self.keeper, self.losses = StepTimer(self.device), KeepBestEpoch(self.model), LastEpochLoss()
        self.callbacks = [self.timer, self.keeper, self.losses, LRSchedCallback(self.scheduler)]
        if spec.progress:
            self.callbacks.append(Progress(self.say, self.epochs, len(self.loader)))

    def restore(self) -> None:
        """With checkpoints on: the saving callback, and the state of the last saved epoch when there is one."""
        spec, rid = self.spec, self.spec.run_id
        saving = checkpoint_path(spec.checkpoint_dir, rid) if spec.checkpoint_dir is not None else None
        self.fingerprint = code_fingerprint() if saving else ""
        self.resumed = resumed = load_checkpoint(saving, rid, self.fingerprint, self.say) if saving else None
        self.segments = Segments(resumed.segments if resumed else [], _machine(spec))
        if saving is not None:
            self.written_by = git_state()[0]  # read once: a save must not wait on git
            self.callbacks.append(SaveAfterEpochs(saving, spec.checkpoint_every_s, self.snapshot,
                                                  resumed.epochs_done if resumed else 0,
                                                  resumed.rng if resumed else None))
        if resumed is None:
            return
        self.model.load_trainable_state(resumed.model)
        self.optimizer.load_state_dict(resumed.optimizer)
        self.scheduler.load_state_dict(resumed.scheduler)
        self.loader.batch_sampler.epoch = resumed.sampler_epoch
        self.keeper.restore(resumed.keeper)
        self.losses.restore(resumed.losses)
        self.timer.restore(resumed.timer)
        self.say(f"    resuming from the checkpoint after epoch {resumed.epochs_done}/{self.epochs} "
                 f"(training segment {len(resumed.segments) + 1})")

    def snapshot(self, running: Trainer) -> Snapshot:
        """What a checkpoint after the current epoch holds (called by ``SaveAfterEpochs`` while training)."""
        other, wall = self.meter.so_far()
        now = time.perf_counter()
        return Snapshot(run_id=self.spec.run_id, code=self.fingerprint, git_sha=self.written_by,
                        epochs_done=running.cur_epoch_idx, model=self.model.trainable_state(),
                        optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                        sampler_epoch=self.loader.batch_sampler.epoch, keeper=self.keeper.state(),
                        losses=self.losses.state(), timer=self.timer.state(), rng=rng_state(self.device),
                        segments=self.segments.with_current(now - self.train_start, now - self.run_start, other,
                                                            wall, peak_memory_mb(self.device)))

    def train(self) -> None:
        """Train the remaining epochs with one fastNLP Trainer, selecting on ``select``; refuse a diverged run."""
        fastnlp_logger.setLevel("ERROR")  # our Progress lines replace fastNLP's per-batch output
        trainer = Trainer(
            model=self.model, driver="torch", device=self.spec.device, train_dataloader=self.loader,
            optimizers=self.optimizer, n_epochs=self.epochs,
            evaluate_dataloaders={"select": eval_loader(self.select_data, 64, self.pad_id)},
            metrics={"acc": Accuracy()}, evaluate_every=-1, callbacks=self.callbacks, progress_bar=None,
            torch_kwargs={"set_grad_to_none": True},
        )
        if self.resumed is not None:
            trainer.cur_epoch_idx = self.resumed.epochs_done  # fastNLP trains the epochs from here to n_epochs
        self.train_start = time.perf_counter()
        with CpuLoadMeter() as self.meter:
            trainer.run(num_eval_batch_per_dl=-1, catch_KeyboardInterrupt=False)  # else a Ctrl-C ends training
        self.train_s = time.perf_counter() - self.train_start
        num_labels = self.task.num_labels
        diverged_above = DIVERGED_LOSS_FACTOR * math.log(num_labels)
        if self.losses.mean() > diverged_above:
            raise TrainingDiverged(f"last-epoch mean train loss {self.losses.mean():.4g} exceeds "
                                   f"{DIVERGED_LOSS_FACTOR:g} x ln({num_labels}) = {diverged_above:.3g}: training "
                                   "diverged; lower the learning rate")

    def evaluate(self) -> tuple[dict[str, float], dict[str, float], float]:
        """(last epoch's, selected epoch's) results on ``eval``, and the seconds of the latter evaluation."""
        eval_dl = eval_loader(self.eval_data, 64, self.pad_id)
        num_labels = self.task.num_labels
        last, eval_seconds = _evaluate(self.model, eval_dl, self.spec.device, num_labels)
        best = last  # when the last epoch is the selected one, the model already holds its state
        if self.keeper.best_state is not None and self.keeper.best_epoch != self.epochs:
            self.model.load_trainable_state(self.keeper.best_state)
            best, eval_seconds = _evaluate(self.model, eval_dl, self.spec.device, num_labels)
        return last, best, eval_seconds

    def measured(self, last: dict[str, float], best: dict[str, float], eval_seconds: float) -> dict[str, Any]:
        """The row's measured part: accuracies, counts, speeds, times, memory, load and status."""
        spec, task, timer, model, meter = self.spec, self.task, self.timer, self.model, self.meter
        total = Segments.totals(self.segments.with_current(self.train_s, time.perf_counter() - self.run_start,
                                                           meter.other_s, meter.wall_s, peak_memory_mb(self.device)))
        tokens_run = timer.padded_tokens + timer.samples * model.extra_input_tokens()
        flops_per_s = model.train_flops_per_token() * tokens_run / timer.seconds if timer.seconds else 0.0
        counts = model.parameter_counts()
        collapsed = best["top_share"] >= COLLAPSE_SHARE
        load = total["other_cpu_load"]
        clean = speed_is_clean(load, spec.threads, available_cores()) if self.device.type == "cpu" else None
        if not total["one_machine"]:
            clean = False  # its epochs were timed on different kinds of machine: no one speed to report
        return {
            **counts,
            "trainable_pct": round(100.0 * counts["trainable_params"] / counts["total_params"], 4),
            "train_loss": round(self.losses.mean(), 6), "acc": round(best["acc"], 6),
            "acc_last": round(last["acc"], 6), "acc_select": round(self.keeper.best_acc, 6),
            "best_epoch": self.keeper.best_epoch, "epochs": self.epochs,
            "majority_rate": round(task.eval.majority_rate(), 6),
            "pred_majority_share": round(best["top_share"], 6),
            "n_train": len(self.train_split), "n_select": len(self.select_split), "n_eval": len(task.eval),
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
    model = METHODS[spec.variant.method].load()(loaded.model, spec.task_data().num_labels, own, training)
    return model, loaded.tokenizer


def _machine(spec: RunSpec) -> str:
    """The kind of machine a training segment ran on, as far as its speed goes."""
    return f"{this_cpu()}, {spec.threads} threads, {accelerator_name(spec.device) or torch.device(spec.device).type}"
