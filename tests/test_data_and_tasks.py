"""Tasks and batching: split sizes and determinism, SST-2 from a GLUE directory, bucketed batches."""

from __future__ import annotations

import pytest

from bench.data import BucketBatchSampler, SortedBatchSampler, collate
from bench.tasks import TaskError, load_task, resolve_task


def test_mr_splits_match_the_protocol() -> None:
    task = load_task("mr")
    assert (len(task.train), len(task.select), len(task.eval)) == (6464, 1000, 1066)
    for split in (task.select, task.eval):
        assert abs(sum(split.labels) / len(split) - 0.5) < 0.01  # stratified
    seen = set(task.train.texts) | set(task.select.texts)
    overlap = [t for t in task.eval.texts if t in seen]
    assert len(overlap) < 10  # MR has a handful of duplicate sentences, no split leakage beyond them
    again = load_task("mr")
    assert again.eval.texts == task.eval.texts and again.train.texts[:50] == task.train.texts[:50]


def test_sst2_from_a_glue_directory(tmp_path) -> None:
    train = "sentence\tlabel\n" + "".join(f"sentence number {i} \t{i % 2}\n" for i in range(1200))
    (tmp_path / "train.tsv").write_text(train)
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\na fine film \t1\na dull one \t0\n")
    task = load_task("sst2", str(tmp_path))
    assert (len(task.train), len(task.select), len(task.eval)) == (200, 1000, 2)
    assert task.eval.texts == ("a fine film", "a dull one") and task.eval.labels == (1, 0)
    chosen, note = resolve_task("auto", str(tmp_path))
    assert chosen.name == "sst2" and "sst2" in note


def test_sst2_missing_is_an_error_and_auto_falls_back(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("BENCH_SST2_DIR", raising=False)
    with pytest.raises(TaskError, match="--data-dir"):
        load_task("sst2")
    with pytest.raises(TaskError, match="needs train.tsv and dev.tsv"):
        load_task("sst2", str(tmp_path / "nowhere"))
    task, note = resolve_task("auto")
    assert task.name == "mr" and note.startswith("task auto -> mr (SST-2 unavailable")


def test_unknown_task_lists_the_accepted_ones() -> None:
    with pytest.raises(TaskError, match="accepted: auto, sst2, mr, synthetic"):
        load_task("imdb")


def test_bucketed_batches_cover_every_example_once_per_epoch() -> None:
    lengths = [(i * 37) % 50 + 1 for i in range(1000)]
    sampler = BucketBatchSampler(lengths, 32, seed=3, bucket_batches=5)
    first, second = list(sampler), list(sampler)
    for epoch in (first, second):
        assert sorted(i for b in epoch for i in b) == list(range(1000))
    assert first != second  # a new order each epoch
    assert first == list(BucketBatchSampler(lengths, 32, seed=3, bucket_batches=5))  # seeded
    padded = sum(len(b) * max(lengths[i] for i in b) for b in first)
    plain = BucketBatchSampler(lengths, 32, seed=3, bucketing=False)
    padded_random = sum(len(b) * max(lengths[i] for i in b) for b in plain)
    assert padded < 0.75 * padded_random  # bucketing removes most of the padding


def test_eval_batches_are_sorted_by_length() -> None:
    lengths = [5, 1, 4, 2, 3]
    batches = list(SortedBatchSampler(lengths, 2))
    assert batches == [[1, 3], [4, 2], [0]]


def test_collate_right_pads() -> None:
    out = collate(pad_id=0)([([2, 5, 3], 1), ([2, 3], 0)])
    assert out["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert out["target"].tolist() == [1, 0]
