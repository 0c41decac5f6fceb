"""The fastNLP callbacks and the metric the training loop runs with: epoch selection on ``select``, the
last epoch's loss (stopping at a non-finite one), live progress, and accuracy with the share of the most
frequent predicted class (collapse detection)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from fastNLP import Callback, Metric

from methods.base import Method


class TrainingDiverged(RuntimeError):
    """The training loss became non-finite or exploded: the run has no meaningful result."""


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
