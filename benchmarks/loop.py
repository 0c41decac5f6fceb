"""Whole-loop workloads: what a user waits for, through the real harness, beside plain PyTorch.

One sample of a method's workload is one real run (``bench.execute.loop.run_one``, the code path every grid
run takes) on a fixed small job: ``random-bert-small`` (BERT, 4 x 256) on the synthetic task, 256
training examples, one epoch, batch 32, 32 tokens at most, one thread. Two times come out of it:

* ``train``: the run's ``train_s``, i.e. the fastNLP loop over the harness's length-bucketed batches
  (sampler, collation), its callbacks, the method's step and the epoch-end ``select`` evaluation;
* ``eval``: the final evaluation pass over the ``eval`` split (fastNLP ``Evaluator``, the metric,
  the method's ``evaluate_step``), from the row's ``eval_samples_per_s``.

Right next to it, in the same process, a plain PyTorch loop (``PlainReference``: the same backbone
with a hand-written mean-pooling head, AdamW, nothing of the harness) trains on the same examples and
evaluates the same ``select`` and ``eval`` examples, in batches it made itself beforehand: sorted by
length (the least padding bucketing can reach) and padded by its own few lines, so a harness that
starts padding more, or bucketing worse, shows as slower instead of dragging the reference along.
A sample is the harness's time divided by the plain loop's; the order of the two alternates between
repeats. The ratio cancels most of the machine's speed and load, so a regression in any layer of the
harness (method, data, loop, callbacks, evaluation) raises it while a machine that is merely slower
does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from fastNLP import logger as fastnlp_logger
from torch import nn

from bench.backbones import load_backbone
from bench.config.grids import Budget, Variant
from bench.execute.data import Encoded, encode_split
from bench.execute.loop import run_one, seed_everything
from bench.plan import RunSpec, prime_task
from bench.tasks import TaskData, load_task

BACKBONE = "random-bert-small"
TASK = "synthetic"
BUDGET = Budget("loop-benchmark", train_cap=256, select_cap=64, max_epochs=1, max_len=32, batch_size=32)
THREADS = 1  # pinned: one thread is the least disturbed by a second process on a 2-core machine
SEED = 0
PHASES = ("train", "eval")


def workload_key(phase: str, method: str) -> str:
    return f"loop/{phase}/{BACKBONE}/{method}"


class PlainClassifier(nn.Module):
    """The reference model: a backbone, mean pooling over real tokens, one linear layer."""

    def __init__(self, backbone: nn.Module, num_labels: int = 2):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).float()
        return self.classifier((states * mask).sum(1) / mask.sum(1))


def sorted_batches(encoded: Encoded, size: int, pad_id: int) -> list[dict[str, torch.Tensor]]:
    """Examples sorted by length, cut into batches of ``size``, each right-padded to its longest."""
    order = sorted(range(len(encoded.labels)), key=lambda i: len(encoded.input_ids[i]))
    out = []
    for start in range(0, len(order), size):
        chunk = order[start:start + size]
        width = max(len(encoded.input_ids[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, :len(encoded.input_ids[i])] = torch.tensor(encoded.input_ids[i])
            mask[row, :len(encoded.input_ids[i])] = 1
        out.append({"input_ids": ids, "attention_mask": mask,
                    "target": torch.tensor([encoded.labels[i] for i in chunk], dtype=torch.long)})
    return out


@dataclass
class PlainReference:
    """A plain PyTorch training epoch and evaluation pass over batches collated once, up front, from
    the examples a run of ``BUDGET`` uses (``sorted_batches``)."""

    model: PlainClassifier
    optimizer: torch.optim.Optimizer
    train_batches: list[dict[str, torch.Tensor]]
    select_batches: list[dict[str, torch.Tensor]]
    eval_batches: list[dict[str, torch.Tensor]]

    @classmethod
    def build(cls, task: TaskData) -> PlainReference:
        seed_everything(SEED)
        loaded = load_backbone(BACKBONE)
        pad = loaded.tokenizer.pad_token_id or 0

        def batches(split, size: int) -> list[dict[str, torch.Tensor]]:
            return sorted_batches(encode_split(loaded.tokenizer, split, BUDGET.max_len), size, pad)

        model = PlainClassifier(loaded.model, task.num_labels)
        return cls(model, torch.optim.AdamW(model.parameters(), lr=1e-4),
                   batches(task.train.head(BUDGET.train_cap), BUDGET.batch_size),
                   batches(task.select.head(BUDGET.select_cap), 64), batches(task.eval, 64))

    def _infer(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.model.eval()
        with torch.inference_mode():
            for batch in batches:
                self.model(batch["input_ids"], batch["attention_mask"]).argmax(-1)

    def train_epoch(self) -> float:
        """Seconds for one epoch and the epoch-end ``select`` pass, as the harness's ``train_s`` counts."""
        start = time.perf_counter()
        self.model.train()
        for batch in self.train_batches:
            logits = self.model(batch["input_ids"], batch["attention_mask"])
            nn.functional.cross_entropy(logits, batch["target"]).backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self._infer(self.select_batches)
        return time.perf_counter() - start

    def evaluate(self) -> float:
        start = time.perf_counter()
        self._infer(self.eval_batches)
        return time.perf_counter() - start


def harness_run(method: str, task: TaskData) -> tuple[float, float]:
    """(train seconds, eval seconds) of one real run of ``method`` on the fixed job."""
    prime_task(task, None)
    spec = RunSpec(grid="loop-benchmark", task=task.name, backbone=BACKBONE, variant=Variant(method), seed=SEED,
                   budget=BUDGET, threads=THREADS, progress=False)
    row = run_one(spec, say=lambda _: None)
    return float(row["train_s"]), row["n_eval"] / float(row["eval_samples_per_s"])


def measure(methods: list[str], repeats: int, say: Callable[[str], None] = print) -> dict[str, list[float]]:
    """Per workload (``workload_key``), ``repeats`` samples of harness time / plain time."""
    torch.set_num_threads(THREADS)
    fastnlp_logger.setLevel("ERROR")
    task = load_task(TASK)
    plain = PlainReference.build(task)
    plain.train_epoch()  # warm-up: first-call imports (PEFT), allocations and kernel choices
    for method in methods:
        harness_run(method, task)
    samples: dict[str, list[float]] = {workload_key(p, m): [] for m in methods for p in PHASES}
    for repeat in range(repeats):
        start = time.perf_counter()
        for method in methods:
            if repeat % 2 == 0:
                harness = harness_run(method, task)
                reference = plain.train_epoch(), plain.evaluate()
            else:
                reference = plain.train_epoch(), plain.evaluate()
                harness = harness_run(method, task)
            for phase, ours, theirs in zip(PHASES, harness, reference, strict=True):
                samples[workload_key(phase, method)].append(ours / theirs)
        say(f"  whole loop: repeat {repeat + 1}/{repeats} ({len(methods)} methods, "
            f"{time.perf_counter() - start:.0f} s)")
    return samples
