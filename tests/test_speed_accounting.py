"""The loop-speed benchmark's in-epoch account: it sees the shared work in both loops and undoes its patches."""

from __future__ import annotations

import torch

from bench.backbones import load_backbone
from bench.execute.data import encode_split, train_loader
from bench.tasks import load_task
from benchmarks.speed import _fastnlp_epoch, _plain_epoch
from methods import build


def test_both_loops_account_the_same_work_and_restore_everything() -> None:
    loaded = load_backbone("random-bert-tiny")
    model = build("finetune", loaded.model, 2)
    data = encode_split(loaded.tokenizer, load_task("synthetic").train.head(96), 32)
    backward = torch.Tensor.backward
    for epoch in (_plain_epoch, _fastnlp_epoch):
        loader = train_loader(data, 32, 0, loaded.tokenizer.pad_token_id)
        epoch_s, work_s = epoch(model, loader, 1e-6)
        assert 0 < work_s < epoch_s, epoch.__name__
        assert torch.Tensor.backward is backward
        assert "train_step" not in vars(model)  # the wrapper is gone; the method shows through again
