"""The whole-loop benchmark's reference batches, its samples, and the injections that prove the check."""

from __future__ import annotations

import pytest
import torch

import bench.execute.callbacks
import bench.execute.data
from bench.execute.data import Encoded
from benchmarks.inject import LAYERS, injection
from benchmarks.loop import PHASES, measure, sorted_batches, workload_key
from methods import METHODS


def test_reference_batches_are_sorted_by_length_and_padded_to_their_longest() -> None:
    encoded = Encoded([[5, 6, 7], [8], [9, 10], [11, 12, 13, 14], [15]], [0, 1, 0, 1, 1])
    batches = sorted_batches(encoded, 2, pad_id=0)
    assert [b["input_ids"].tolist() for b in batches] == [[[8], [15]], [[9, 10, 0], [5, 6, 7]],
                                                           [[11, 12, 13, 14]]]
    assert batches[1]["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert torch.cat([b["target"] for b in batches]).tolist() == [1, 1, 0, 0, 1]


def test_measure_gives_one_positive_ratio_per_repeat_and_phase() -> None:
    samples = measure(["finetune"], repeats=3, say=lambda _: None)
    assert set(samples) == {workload_key(phase, "finetune") for phase in PHASES}
    assert all(len(values) == 3 and all(0.2 < v < 20 for v in values) for values in samples.values())


def _targets(method: str) -> dict[str, tuple[object, str]]:
    cls = METHODS[method].load()
    return {"data": (bench.execute.data, "collate"),
            "callback": (bench.execute.callbacks.LastEpochLoss, "on_before_backward"),
            "eval": (bench.execute.callbacks.PredictionShare, "update"), "method-step": (cls, "train_step"),
            "padding": (bench.execute.data, "collate")}


@pytest.mark.parametrize("layer", LAYERS)
def test_an_injection_patches_its_layer_only_while_active(layer: str) -> None:
    method = next(iter(METHODS))
    owner, name = _targets(method)[layer]
    before = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
    with injection(layer, 0.0, method):
        assert getattr(owner, name) is not before
    after = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
    assert after is before


def test_the_padding_injection_pads_every_batch_to_the_maximum_and_keeps_the_examples() -> None:
    items = [([5, 6, 7], 1), ([8], 0)]
    plain = bench.execute.data.collate(0)(items)
    with injection("padding", 0.0, None):
        padded = bench.execute.data.collate(0)(items)
    assert padded["input_ids"].shape == (2, 32) and padded["attention_mask"].sum() == plain["attention_mask"].sum()
    assert padded["input_ids"][:, :3].tolist() == plain["input_ids"].tolist()
