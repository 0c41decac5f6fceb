"""Fixed workloads for the throughput benchmarks: backbones, batches and one-step closures.

Each workload is one training step (forward, backward, optimizer step, gradients set to None) or one
evaluation step on a fixed random batch, for a method on a fixed random backbone. ``plain`` is the
reference: the same backbone trained with a hand-written PyTorch step (mean pooling, linear, cross
entropy, AdamW) that uses nothing of the harness. Comparing a method's time with the reference of the
same backbone, measured in the same process, cancels most of the machine's speed and load.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bench.backbones import load_backbone
from bench.execute.loop import seed_everything
from benchmarks.loop import THREADS, PlainClassifier
from methods import METHODS
from methods import build as build_method

BATCH, TOKENS = 32, 32
BACKBONES = ("random-bert-tiny", "random-bert-small")  # 2 x 64 and 4 x 256
WORKLOADS = ("plain", *METHODS)  # every registered method, beside the hand-written reference


def fixed_batch(vocab: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (BATCH, TOKENS), generator=generator)
    lengths = torch.randint(TOKENS // 2, TOKENS + 1, (BATCH,), generator=generator)
    mask = (torch.arange(TOKENS)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask,
            "target": torch.randint(0, 2, (BATCH,), generator=generator)}


def build(backbone: str, workload: str) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    torch.set_num_threads(THREADS)
    seed_everything(0)
    loaded = load_backbone(backbone)
    model = PlainClassifier(loaded.model) if workload == "plain" else build_method(workload, loaded.model, 2)
    return model, fixed_batch(len(loaded.tokenizer))


def train_step(backbone: str, workload: str) -> Callable[[], None]:
    """A closure running one full training step."""
    model, batch = build(backbone, workload)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    if workload == "plain":
        def step() -> None:
            logits = model(batch["input_ids"], batch["attention_mask"])
            nn.functional.cross_entropy(logits, batch["target"]).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    else:
        def step() -> None:
            model.train_step(**batch)["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return step


def eval_step(backbone: str, workload: str) -> Callable[[], None]:
    """A closure running one evaluation step (inference mode)."""
    model, batch = build(backbone, workload)
    model.eval()
    if workload == "plain":
        def step() -> None:
            with torch.inference_mode():
                model(batch["input_ids"], batch["attention_mask"]).argmax(-1)
    else:
        def step() -> None:
            model.evaluate_step(**batch)
    return step
