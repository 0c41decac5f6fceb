"""Batches for training and evaluation: tokenise once, pad per batch, bucket by length.

Training batches are length-bucketed: each epoch shuffles the indices (seeded by run seed and epoch),
cuts them into chunks of ``bucket_batches`` batches, sorts each chunk by length and shuffles the
resulting batches, so a batch holds sentences of similar length and little padding. Evaluation batches
are sorted by length outright. ``bucketing=False`` gives plain random batches (for comparison).
Each batch is a dict whose keys match the methods' ``train_step`` / ``evaluate_step`` arguments.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.tasks import Split


@dataclass(frozen=True)
class Encoded:
    input_ids: list[list[int]]
    labels: list[int]

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def encode_split(tokenizer, split: Split, max_len: int) -> Encoded:
    """Tokenise every sentence once (with special tokens, truncated to ``max_len``)."""
    ids = tokenizer(list(split.texts), truncation=True, max_length=max_len)["input_ids"]
    return Encoded(ids, list(split.labels))


class _Examples(Dataset):
    def __init__(self, encoded: Encoded):
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded.labels)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.encoded.input_ids[i], self.encoded.labels[i]


class BucketBatchSampler(Sampler[list[int]]):
    """Seeded length-bucketed (or plain random) training batches; a new order every epoch."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, bucketing: bool = True,
                 bucket_batches: int = 50):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.bucketing, self.bucket_batches = bucketing, bucket_batches
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if not self.bucketing:
            yield from (order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size))
            return
        chunk = self.batch_size * self.bucket_batches
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start:start + chunk], key=self.lengths.__getitem__)
            batches += [part[i:i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        rng.shuffle(batches)
        yield from batches


class SortedBatchSampler(Sampler[list[int]]):
    """Evaluation batches in length order: least padding, same batches every time."""

    def __init__(self, lengths: list[int], batch_size: int):
        self.batch_size = batch_size  # fastNLP reads it (else it draws a batch to guess it)
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        self.batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)


def collate(pad_id: int):
    """Right-pad a list of (ids, label) to the batch's longest sentence."""

    def pad(items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in items)
        input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, (ids, _) in enumerate(items):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            mask[row, :len(ids)] = 1
        target = torch.tensor([label for _, label in items], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": mask, "target": target}

    return pad


def train_loader(encoded: Encoded, batch_size: int, seed: int, pad_id: int,
                 bucketing: bool = True) -> DataLoader:
    sampler = BucketBatchSampler(encoded.lengths(), batch_size, seed, bucketing)
    return DataLoader(_Examples(encoded), batch_sampler=sampler, collate_fn=collate(pad_id))


def eval_loader(encoded: Encoded, batch_size: int, pad_id: int) -> DataLoader:
    sampler = SortedBatchSampler(encoded.lengths(), batch_size)
    return DataLoader(_Examples(encoded), batch_sampler=sampler, collate_fn=collate(pad_id))
